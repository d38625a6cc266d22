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

// CheckNodes waits, inside this invocation, until every node is running with
// its SSM agent Online, looking again every 2 % of the time already waited
// (at least a tenth of the poll interval, at most half of it): the look that
// sees the last node comes at most 2 % of the wait after it came online, and
// the workflow pays one state transition however long the nodes take. AWS
// sends no event when an agent registers. Shortly before the invocation's
// own deadline it answers not ready, with a next check due at once: the
// state machine invokes it again.
func (s *Steps) CheckNodes(ctx context.Context, st State) (CheckResult, error) {
	budget := s.Env.NodeOnlineTimeout
	if s.Env.CheckWait > 0 {
		budget = min(budget, s.Env.CheckWait)
	}
	stop := s.now().Add(invocationBudget(ctx, budget))
	var states *nodeStates
	for {
		if states == nil || s.now().Sub(states.at) >= s.Env.PollInterval {
			// EC2's view (a node lost, the public address) changes slowly:
			// read it once a poll interval, the agents' status every look.
			m, err := s.live(ctx, st.ClusterID)
			if err != nil {
				return CheckResult{}, err
			}
			if states, err = s.readStates(ctx, m); err != nil {
				return CheckResult{}, err
			}
		}
		res, waited, err := s.checkOnce(ctx, states)
		if err != nil || res.Ready {
			return res, err
		}
		every := lookAgain(waited, s.Env.PollInterval)
		if s.now().Add(every).After(stop) {
			res.NextCheckAt = s.now().Format(time.RFC3339Nano)
			return res, nil
		}
		if err := s.sleep(ctx, every); err != nil {
			return CheckResult{}, err
		}
	}
}

// checkMargin is what an invocation that waits inside (CheckNodes,
// LaunchNodes) keeps of its time limit for answering.
const checkMargin = 10 * time.Second

// invocationBudget is how long a step may wait inside this invocation: at
// most limit, and until checkMargin before its deadline.
func invocationBudget(ctx context.Context, limit time.Duration) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		limit = min(limit, time.Until(d)-checkMargin)
	}
	return limit
}

// lookAgain is the interval to the next look: 2 % of the time waited,
// within [poll/10 (at least 50 ms), poll/2].
func lookAgain(waited, poll time.Duration) time.Duration {
	return min(max(waited/50, poll/10, 50*time.Millisecond), poll/2)
}

// nodeStates is EC2's view of a MEC's instances at one time.
type nodeStates struct {
	m                 *mec.MEC
	at                time.Time
	states, publicIPs map[string]string
	reasons           map[string]*ec2types.StateReason
}

func (s *Steps) readStates(ctx context.Context, m *mec.MEC) (*nodeStates, error) {
	states, publicIPs, reasons, err := s.instanceStates(ctx, m.Region, m.InstanceIDs())
	if err != nil {
		return nil, err
	}
	return &nodeStates{m: m, at: s.now(), states: states, publicIPs: publicIPs, reasons: reasons}, nil
}

// checkOnce looks at the agents once: ready when all are Online on running
// instances; an error when a node was lost or the wait timed out.
func (s *Steps) checkOnce(ctx context.Context, ns *nodeStates) (CheckResult, time.Duration, error) {
	m, states, publicIPs, reasons := ns.m, ns.states, ns.publicIPs, ns.reasons
	ids := m.InstanceIDs()
	for _, id := range ids {
		switch ec2types.InstanceStateName(states[id]) {
		case ec2types.InstanceStateNameShuttingDown, ec2types.InstanceStateNameTerminated,
			ec2types.InstanceStateNameStopping, ec2types.InstanceStateNameStopped:
			return CheckResult{}, 0, stepErr(ErrNodeLost, "node %s is %s before the MEC was ready%s", id, states[id],
				s.launchFailure(ctx, m, reasons[id]))
		}
	}
	online, err := s.onlineAgents(ctx, m.Region, ids)
	if err != nil {
		return CheckResult{}, 0, err
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
			return CheckResult{}, 0, err
		}
		res.Ready = true
		return res, 0, nil
	}
	step := m.Step(mec.StepNodesOnline)
	waited := time.Duration(0)
	if step != nil {
		waited = now.Sub(step.StartedAt)
	}
	if waited > s.Env.NodeOnlineTimeout {
		var missing []string
		for _, n := range m.MemberNodes() {
			if !online[n.InstanceID] {
				missing = append(missing, fmt.Sprintf("%s (node %d, %s)", n.InstanceID, n.Index, orUnknown(states[n.InstanceID])))
			}
		}
		sort.Strings(missing)
		return CheckResult{}, 0, stepErr(ErrNodesNotOnline,
			"%s never reported Online to SSM within %v: check the subnet's route to the SSM endpoints and the instance profile",
			strings.Join(missing, ", "), s.Env.NodeOnlineTimeout)
	}
	return res, waited, nil
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
