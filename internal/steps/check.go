package steps

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/mecd/mecd/internal/mec"
)

// CheckResult tells the state machine whether to go on or when to look again.
type CheckResult struct {
	Ready       bool   `json:"ready"`
	NextCheckAt string `json:"nextCheckAt,omitempty"` // RFC 3339 (a Wait state's TimestampPath)
	Online      int    `json:"online"`
	Total       int    `json:"total"`
}

// CheckNodes reports whether every node is running with its SSM agent
// Online. While not, it says when to look again: the interval grows with the
// time already waited, so slow nodes cost few extra transitions.
func (s *Steps) CheckNodes(ctx context.Context, st State) (CheckResult, error) {
	m, err := s.live(ctx, st.ClusterID)
	if err != nil {
		return CheckResult{}, err
	}
	ids := m.InstanceIDs()
	states, publicIPs, reasons, err := s.instanceStates(ctx, m.Region, ids)
	if err != nil {
		return CheckResult{}, err
	}
	for _, id := range ids {
		switch ec2types.InstanceStateName(states[id]) {
		case ec2types.InstanceStateNameShuttingDown, ec2types.InstanceStateNameTerminated,
			ec2types.InstanceStateNameStopping, ec2types.InstanceStateNameStopped:
			return CheckResult{}, stepErr(ErrNodeLost, "node %s is %s before the MEC was ready%s", id, states[id],
				s.launchFailure(ctx, m, reasons[id]))
		}
	}
	online, err := s.onlineAgents(ctx, m.Region, ids)
	if err != nil {
		return CheckResult{}, err
	}
	for id := range online {
		if states[id] != string(ec2types.InstanceStateNameRunning) {
			delete(online, id)
		}
	}
	now := s.now()
	res := CheckResult{Online: len(online), Total: len(ids)}
	if len(online) == len(ids) {
		_, err := s.Store.Update(ctx, m.ID, func(r *mec.MEC) error {
			for i := range r.Nodes {
				if ip := publicIPs[r.Nodes[i].InstanceID]; ip != "" {
					r.Nodes[i].PublicIP = ip
				}
			}
			r.EndStep(mec.StepNodesOnline, mec.OutcomeSucceeded, fmt.Sprintf("%d nodes Online", len(ids)), now)
			return nil
		})
		if err != nil {
			return CheckResult{}, err
		}
		res.Ready = true
		return res, nil
	}
	step := m.Step(mec.StepNodesOnline)
	waited := time.Duration(0)
	if step != nil {
		waited = now.Sub(step.StartedAt)
	}
	if waited > s.Env.NodeOnlineTimeout {
		var missing []string
		for _, n := range m.Nodes {
			if !online[n.InstanceID] {
				missing = append(missing, fmt.Sprintf("%s (node %d, %s)", n.InstanceID, n.Index, orUnknown(states[n.InstanceID])))
			}
		}
		sort.Strings(missing)
		return CheckResult{}, stepErr(ErrNodesNotOnline,
			"%s never reported Online to SSM within %v: check the subnet's route to the SSM endpoints and the instance profile",
			strings.Join(missing, ", "), s.Env.NodeOnlineTimeout)
	}
	res.NextCheckAt = now.Add(nextInterval(waited, s.Env.PollInterval)).Format(time.RFC3339Nano)
	return res, nil
}

// nextInterval: nothing is online before a typical boot, so the first look
// again comes at 4.5 poll intervals (45 s on AWS); after that half the time
// already waited, at most nine intervals. The number of checks then grows
// with the log of the wait, not with the wait (BENCHMARKS.md).
func nextInterval(waited, poll time.Duration) time.Duration {
	if first := poll * 9 / 2; waited < first {
		return first - waited
	}
	return min(max(waited/2, poll), 9*poll)
}

func orUnknown(s string) string {
	if s == "" {
		return "not found"
	}
	return s
}

// instanceStates reads each instance's state and public address. New ids may
// not be visible yet (EC2's eventual consistency answers
// InvalidInstanceID.NotFound for a while after RunInstances): then no state
// is known this time and the caller looks again.
func (s *Steps) instanceStates(ctx context.Context, region string, ids []string) (states, publicIPs map[string]string, reasons map[string]*ec2types.StateReason, err error) {
	states, publicIPs, reasons = map[string]string{}, map[string]string{}, map[string]*ec2types.StateReason{}
	err = eachInstance(ctx, s.AWS.EC2(region), &ec2.DescribeInstancesInput{InstanceIds: ids}, func(in ec2types.Instance) {
		id := aws.ToString(in.InstanceId)
		if in.State != nil {
			states[id] = string(in.State.Name)
		}
		publicIPs[id] = aws.ToString(in.PublicIpAddress)
		reasons[id] = in.StateReason
	})
	if apiCode(err) == "InvalidInstanceID.NotFound" {
		return map[string]string{}, map[string]string{}, reasons, nil
	}
	return states, publicIPs, reasons, err
}

// launchFailure explains an instance EC2 ended on its own. An encrypted
// volume whose KMS key EC2 cannot use for the launching role ends the
// instance at once with Client.InternalError (EC2 User Guide, "Instance
// terminates immediately"): the cause names the spec's key, or else the
// region's default EBS key, the usual culprit.
func (s *Steps) launchFailure(ctx context.Context, m *mec.MEC, r *ec2types.StateReason) string {
	if r == nil || aws.ToString(r.Code) == "" {
		return ""
	}
	msg := fmt.Sprintf(" (%s)", aws.ToString(r.Message))
	if aws.ToString(r.Code) != "Client.InternalError" {
		return msg
	}
	if k := m.Spec.EBSKmsKeyID; k != "" {
		return msg + ": EC2 could not encrypt the node's volumes with KMS key " + k + " (ebsKmsKeyId); its key policy must let the stack's " +
			"launch-nodes role use it through EC2 (kms:CreateGrant with kms:GrantIsForAWSResource, kms:GenerateDataKeyWithoutPlaintext, kms:Decrypt) " +
			"and the key must be enabled and in the MEC's region; or leave ebsKmsKeyId out for the region's default"
	}
	key := "the region's default EBS KMS key"
	if out, err := s.AWS.EC2(m.Region).GetEbsDefaultKmsKeyId(ctx, &ec2.GetEbsDefaultKmsKeyIdInput{}); err == nil && aws.ToString(out.KmsKeyId) != "" {
		key = "KMS key " + aws.ToString(out.KmsKeyId) + " (the region's default for EBS)"
	}
	return msg + ": EC2 could not encrypt the node's volumes with " + key +
		"; a customer managed key must let the launching role create grants for EC2 (kms:CreateGrant with kms:GrantIsForAWSResource), " +
		"or set ebsKmsKeyId to a key it may use"
}

// onlineAgents lists the instances whose SSM agent is Online, reading every
// page (a page holds 10 unless asked for more: an 11-node MEC needs two).
func (s *Steps) onlineAgents(ctx context.Context, region string, ids []string) (map[string]bool, error) {
	online := map[string]bool{}
	p := ssm.NewDescribeInstanceInformationPaginator(s.AWS.SSM(region), &ssm.DescribeInstanceInformationInput{
		Filters:    []ssmtypes.InstanceInformationStringFilter{{Key: aws.String("InstanceIds"), Values: ids}},
		MaxResults: aws.Int32(50),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe instance information: %w", err)
		}
		for _, ii := range page.InstanceInformationList {
			if ii.PingStatus == ssmtypes.PingStatusOnline {
				online[aws.ToString(ii.InstanceId)] = true
			}
		}
	}
	return online, nil
}
