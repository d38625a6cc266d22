package steps

import (
	"context"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/mecd/mecd/internal/config"
	"github.com/mecd/mecd/internal/mec"
	"log/slog"
	"testing"
	"time"
)

// agentsAt answers as EC2 and SSM would for instances that run from the
// start and whose agents register at online (a fake clock).
type agentsAt struct {
	EC2API
	SSMAPI
	clock              *time.Time
	online             map[string]time.Time
	ssmCalls, ec2Calls int
}

func (f *agentsAt) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.ec2Calls++
	var insts []ec2types.Instance
	for _, id := range in.InstanceIds {
		insts = append(insts, ec2types.Instance{InstanceId: aws.String(id), State: &ec2types.InstanceState{Name: ec2types.InstanceStateNameRunning}})
	}
	return &ec2.DescribeInstancesOutput{Reservations: []ec2types.Reservation{{Instances: insts}}}, nil
}

func (f *agentsAt) DescribeInstanceInformation(context.Context, *ssm.DescribeInstanceInformationInput, ...func(*ssm.Options)) (*ssm.DescribeInstanceInformationOutput, error) {
	f.ssmCalls++
	var list []ssmtypes.InstanceInformation
	for id, at := range f.online {
		if !f.clock.Before(at) {
			list = append(list, ssmtypes.InstanceInformation{InstanceId: aws.String(id), PingStatus: ssmtypes.PingStatusOnline})
		}
	}
	return &ssm.DescribeInstanceInformationOutput{InstanceInformationList: list}, nil
}

type bothAPIs struct{ f *agentsAt }

func (r bothAPIs) EC2(string) EC2API { return r.f }
func (r bothAPIs) SSM(string) SSMAPI { return r.f }

// check-nodes waits inside one invocation and sees the last agent at most
// 2 % of the wait after it registered (at least the 1 s floor), in typical
// and slow-tail cases; EC2 is read once a poll interval, not every look.
func TestCheckNodesSeesTheLastAgentWithinTwoPercent(t *testing.T) {
	tests := []struct {
		name string
		last time.Duration // the slowest agent registers this long after the wait began
	}{
		{"typical", 55 * time.Second},
		{"slow tail", 388 * time.Second},
		{"before the first look again", 300 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
			now := start
			f := &agentsAt{clock: &now, online: map[string]time.Time{"i-0": start.Add(tc.last / 2), "i-1": start.Add(tc.last), "i-2": start.Add(tc.last / 3)}}
			m := &mec.MEC{ID: "mec-1", Status: mec.Creating, Region: "us-east-1",
				Nodes: []mec.Node{{Index: 0, InstanceID: "i-0"}, {Index: 1, InstanceID: "i-1"}, {Index: 2, InstanceID: "i-2"}},
				Steps: []mec.Step{{Name: mec.StepNodesOnline, Outcome: mec.OutcomeRunning, StartedAt: start}}}
			s := &Steps{Store: &waitStore{m: m}, AWS: bothAPIs{f}, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return now },
				Env:   config.Env{PollInterval: 10 * time.Second, NodeOnlineTimeout: 15 * time.Minute},
				Sleep: func(_ context.Context, d time.Duration) error { now = now.Add(d); return nil }}
			ctx, cancel := context.WithTimeout(context.Background(), 900*time.Second)
			defer cancel()
			res, err := s.CheckNodes(ctx, State{ClusterID: m.ID})
			if err != nil || !res.Ready {
				t.Fatalf("%+v %v", res, err)
			}
			late := now.Sub(start.Add(tc.last))
			if allowed := max(tc.last/50, time.Second); late > allowed || late < 0 {
				t.Fatalf("saw the last agent %v after it registered, allowed %v", late, allowed)
			}
			if maxEC2 := int(tc.last/(10*time.Second)) + 2; f.ec2Calls > maxEC2 {
				t.Errorf("%d DescribeInstances calls for a %v wait: EC2 is read once a poll interval", f.ec2Calls, tc.last)
			}
		})
	}
}
