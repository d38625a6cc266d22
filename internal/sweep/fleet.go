package sweep

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// EC2API and SSMAPI are what AWSFleet calls.
type EC2API interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

// SSMAPI is the part of SSM AWSFleet calls.
type SSMAPI interface {
	DescribeInstanceInformation(ctx context.Context, in *ssm.DescribeInstanceInformationInput, opts ...func(*ssm.Options)) (*ssm.DescribeInstanceInformationOutput, error)
}

// AWSFleet reads nodes through EC2 and SSM, a client per region.
type AWSFleet struct {
	EC2 func(region string) EC2API
	SSM func(region string) SSMAPI
}

// NewAWSFleet builds an AWSFleet whose clients are made from cfg, once per region.
func NewAWSFleet(cfg aws.Config) *AWSFleet {
	var mu sync.Mutex
	ec2s, ssms := map[string]*ec2.Client{}, map[string]*ssm.Client{}
	return &AWSFleet{
		EC2: func(r string) EC2API {
			mu.Lock()
			defer mu.Unlock()
			if ec2s[r] == nil {
				ec2s[r] = ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.Region = r })
			}
			return ec2s[r]
		},
		SSM: func(r string) SSMAPI {
			mu.Lock()
			defer mu.Unlock()
			if ssms[r] == nil {
				ssms[r] = ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.Region = r })
			}
			return ssms[r]
		},
	}
}

// chunks splits ids into slices of at most n.
func chunks(ids []string, n int) [][]string {
	var out [][]string
	for len(ids) > n {
		out = append(out, ids[:n])
		ids = ids[n:]
	}
	if len(ids) > 0 {
		out = append(out, ids)
	}
	return out
}

// InstanceStates asks by an instance-id filter, not InstanceIds: an id EC2
// no longer knows fails a whole InstanceIds request
// (InvalidInstanceID.NotFound) but is only absent from a filtered answer.
// A filter takes at most 200 values (EC2 API reference, Filter).
func (f *AWSFleet) InstanceStates(ctx context.Context, region string, ids []string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range chunks(ids, 200) {
		p := ec2.NewDescribeInstancesPaginator(f.EC2(region), &ec2.DescribeInstancesInput{
			Filters: []ec2types.Filter{{Name: aws.String("instance-id"), Values: part}}})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describe instances: %w", err)
			}
			for _, r := range page.Reservations {
				for _, in := range r.Instances {
					if in.State != nil {
						out[aws.ToString(in.InstanceId)] = string(in.State.Name)
					}
				}
			}
		}
	}
	return out, nil
}

// AgentPings filters by InstanceIds, at most 50 values a filter
// (InstanceInformationStringFilter).
func (f *AWSFleet) AgentPings(ctx context.Context, region string, ids []string) (map[string]Ping, error) {
	out := map[string]Ping{}
	for _, part := range chunks(ids, 50) {
		p := ssm.NewDescribeInstanceInformationPaginator(f.SSM(region), &ssm.DescribeInstanceInformationInput{
			Filters: []ssmtypes.InstanceInformationStringFilter{{Key: aws.String("InstanceIds"), Values: part}}})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describe instance information: %w", err)
			}
			for _, ii := range page.InstanceInformationList {
				out[aws.ToString(ii.InstanceId)] = Ping{Status: string(ii.PingStatus), At: aws.ToTime(ii.LastPingDateTime)}
			}
		}
	}
	return out, nil
}
