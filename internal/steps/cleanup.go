package steps

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/store"
)

// CleanupInput is the rollback/teardown task's input.
type CleanupInput struct {
	Purpose string `json:"purpose"` // "rollback", "teardown", PurposeUndo or PurposeRelease
	// TaskEnded: the provisioning's own Catch runs this rollback, so the
	// task that failed (and any lease it left, crashed) has ended. A
	// teardown or the reconciler's rollback runs beside a provisioning that
	// may still be inside a task, and waits for its lease.
	TaskEnded bool  `json:"taskEnded,omitempty"`
	State     State `json:"state"`
}

// CleanupResult says whether everything is gone or when to look again.
type CleanupResult struct {
	Done        bool   `json:"done"`
	NextCheckAt string `json:"nextCheckAt,omitempty"`
	Remaining   int    `json:"remaining"`
}

// Cleanup removes everything a MEC may have in AWS: it terminates every
// instance tagged with the cluster id (found by tag, so a half-created MEC is
// cleaned too), and once they are terminated deletes the security group and
// every /mecd/<id>/ parameter. It is idempotent: run again, it finds less.
func (s *Steps) Cleanup(ctx context.Context, in CleanupInput) (CleanupResult, error) {
	id := in.State.ClusterID
	if id == "" {
		return CleanupResult{Done: true}, nil // failed before a record existed: nothing was made
	}
	switch in.Purpose {
	case PurposeUndo:
		return s.undoScale(ctx, id)
	case PurposeRelease:
		return s.release(ctx, id)
	}
	m, err := s.Store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return CleanupResult{Done: true}, nil
	}
	if err != nil {
		return CleanupResult{}, err
	}
	step := mec.StepRollback
	if in.Purpose == "teardown" {
		step = mec.StepTeardown
	}
	if st := m.Step(step); st == nil || st.Outcome != mec.OutcomeRunning {
		if m, err = s.Store.Update(ctx, id, func(r *mec.MEC) error { r.StartStep(step, s.now()); return nil }); err != nil {
			return CleanupResult{}, err
		}
	}
	started := m.Step(step).StartedAt
	if m.Leased(s.now()) && !in.TaskEnded {
		// A step that creates resources still runs (a DELETE raced it):
		// what it makes must exist before this looks.
		return s.notYet(s.now().Sub(started), 1, fmt.Sprintf("%s still runs", m.Lease.Step))
	}
	// One cleanup of a MEC at a time: Step Functions retries an invoke
	// that failed to answer (Lambda.Unknown, SdkClientException) while
	// the first may still run, and two that listed the same node role
	// would both delete it; the second's calls on a role gone are refused
	// (IAM authorizes them by an ARN it can no longer complete with the
	// role's path). The other looks again later.
	release, got, err := s.hold(ctx, cleanupLock+id)
	if err != nil {
		return CleanupResult{}, err
	}
	if !got {
		return s.notYet(s.now().Sub(started), 1, "another cleanup of this MEC runs")
	}
	defer release()
	c := s.AWS.EC2(m.Region)

	alive, err := s.terminate(ctx, c, m)
	if err != nil {
		return CleanupResult{}, err
	}
	waited := s.now().Sub(started)
	if alive > 0 {
		return s.notYet(waited, alive, fmt.Sprintf("%d instances still shutting down", alive))
	}
	if err := s.deleteGroups(ctx, c, m); err != nil {
		var e *Error
		if errors.As(err, &e) && e.Name == "DependencyViolation" {
			return s.notYet(waited, 1, e.Msg)
		}
		return CleanupResult{}, err
	}
	// A spare it took goes with it (never given back: its policy and tags
	// were the MEC's).
	if err := s.deleteNodeRole(ctx, m); err != nil {
		var e *Error
		if errors.As(err, &e) && e.Name == "DependencyViolation" {
			return s.notYet(waited, 1, e.Msg)
		}
		return CleanupResult{}, err
	}
	if err := s.deleteParameters(ctx, m); err != nil {
		return CleanupResult{}, err
	}
	// The nodes are gone: no command of theirs will be waited on again.
	if err := s.Store.DeleteWaits(ctx, m.CommandIDs); err != nil {
		return CleanupResult{}, err
	}
	why := "the MEC was deleted"
	if step == mec.StepRollback {
		why = "rolled back after a failed provisioning"
	}
	if _, err := s.Store.Update(ctx, id, func(r *mec.MEC) error {
		r.EndNodes(why, s.now())
		// The address and the parameter went with the nodes.
		r.Endpoint, r.KubeconfigParameter = "", ""
		r.EndStep(step, mec.OutcomeSucceeded, "instances terminated; security group, node role and parameters deleted", s.now())
		return nil
	}); err != nil {
		return CleanupResult{}, err
	}
	s.Log.InfoContext(ctx, "cleanup done", "clusterId", id, "purpose", step)
	return CleanupResult{Done: true}, nil
}

// cleanupLock names a MEC's cleanup lock (with its id).
const cleanupLock = "cleanup-"

func (s *Steps) notYet(waited time.Duration, remaining int, why string) (CleanupResult, error) {
	if limit := 2 * s.Env.CommandTimeout; waited > limit {
		return CleanupResult{}, stepErr(ErrCleanup, "after %v: %s", limit, why)
	}
	return CleanupResult{Remaining: remaining,
		NextCheckAt: s.now().Add(nextInterval(waited, s.Env.PollInterval)).Format(time.RFC3339Nano)}, nil
}

// terminate asks EC2 to terminate every live instance of the MEC and
// returns how many are not terminated yet.
func (s *Steps) terminate(ctx context.Context, c EC2API, m *mec.MEC) (int, error) {
	var toStop []string
	alive, seen := 0, map[string]bool{}
	visit := func(in ec2types.Instance) {
		id := aws.ToString(in.InstanceId)
		seen[id] = true
		if in.State == nil || in.State.Name == ec2types.InstanceStateNameTerminated {
			return
		}
		alive++
		if in.State.Name != ec2types.InstanceStateNameShuttingDown {
			toStop = append(toStop, id)
		}
	}
	if err := eachInstance(ctx, c, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + mec.TagClusterID), Values: []string{m.ID}},
	}}, visit); err != nil {
		return 0, err
	}
	// A tag search lags new instances (EC2 eventual consistency): the live
	// nodes the record knows are looked up by id too. Not visible yet
	// counts as alive, so the cleanup looks again.
	var unseen []string
	for _, n := range m.LiveNodes() {
		if !seen[n.InstanceID] {
			unseen = append(unseen, n.InstanceID)
		}
	}
	if len(unseen) > 0 {
		err := eachInstance(ctx, c, &ec2.DescribeInstancesInput{InstanceIds: unseen}, visit)
		switch {
		case apiCode(err) == "InvalidInstanceID.NotFound":
			alive += len(unseen)
		case err != nil:
			return 0, err
		}
	}
	if len(toStop) > 0 {
		if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: toStop}); err != nil {
			return 0, fmt.Errorf("terminate instances: %w", err)
		}
		s.Log.InfoContext(ctx, "terminating instances", "clusterId", m.ID, "region", m.Region, "instances", strings.Join(toStop, ","))
	}
	return alive, nil
}

// eachInstance calls fn on every instance DescribeInstances lists for in.
func eachInstance(ctx context.Context, c EC2API, in *ec2.DescribeInstancesInput, fn func(ec2types.Instance)) error {
	p := ec2.NewDescribeInstancesPaginator(c, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("describe instances: %w", err)
		}
		for _, r := range page.Reservations {
			for _, inst := range r.Instances {
				fn(inst)
			}
		}
	}
	return nil
}

// groupGone reports whether EC2 says a security group does not exist.
func (s *Steps) groupGone(ctx context.Context, c EC2API, id string) bool {
	_, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{id}})
	return apiCode(err) == "InvalidGroup.NotFound"
}

func (s *Steps) deleteGroups(ctx context.Context, c EC2API, m *mec.MEC) error {
	groups := map[string]bool{}
	if m.SecurityGroupID != "" {
		groups[m.SecurityGroupID] = true
	}
	out, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + mec.TagClusterID), Values: []string{m.ID}},
	}})
	if err != nil {
		return fmt.Errorf("describe security groups: %w", err)
	}
	for _, g := range out.SecurityGroups {
		groups[aws.ToString(g.GroupId)] = true
	}
	for id := range groups {
		_, err := c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(id)})
		if apiCode(err) == "UnauthorizedOperation" && s.groupGone(ctx, c, id) {
			// The policy allows deleting mecd-tagged groups only, and a group
			// already deleted (a repeated teardown) has no tags to show: AWS
			// does not document whether it then answers NotFound or
			// UnauthorizedOperation, so ask whether the group still exists.
			err = nil
		}
		switch apiCode(err) {
		case "":
			s.Log.InfoContext(ctx, "security group deleted", "clusterId", m.ID, "region", m.Region, "group", id)
		case "InvalidGroup.NotFound":
		case "DependencyViolation":
			// Terminated instances may hold the group for a little while.
			return stepErr("DependencyViolation", "security group %s still in use", id)
		default:
			return fmt.Errorf("delete security group %s: %w", id, err)
		}
	}
	return nil
}

func (s *Steps) deleteParameters(ctx context.Context, m *mec.MEC) error {
	c := s.AWS.SSM(m.Region)
	var names []string
	p := ssm.NewGetParametersByPathPaginator(c, &ssm.GetParametersByPathInput{Path: aws.String(mec.ParamPrefix(m.ID)), Recursive: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list parameters: %w", err)
		}
		for _, prm := range page.Parameters {
			names = append(names, aws.ToString(prm.Name))
		}
	}
	for len(names) > 0 {
		n := min(len(names), 10) // DeleteParameters takes at most 10 names
		if _, err := c.DeleteParameters(ctx, &ssm.DeleteParametersInput{Names: names[:n]}); err != nil {
			return fmt.Errorf("delete parameters: %w", err)
		}
		s.Log.InfoContext(ctx, "parameters deleted", "clusterId", m.ID, "region", m.Region, "names", strings.Join(names[:n], ","))
		names = names[n:]
	}
	return nil
}

// nextInterval is when the teardown looks again: nothing is terminated
// before a typical terminate, so the first look again comes at 4.5 poll
// intervals (45 s on AWS); after that half the time already waited, at most
// nine intervals. The number of looks grows with the log of the wait, not
// with the wait (BENCHMARKS.md).
func nextInterval(waited, poll time.Duration) time.Duration {
	if first := poll * 9 / 2; waited < first {
		return first - waited
	}
	return min(max(waited/2, poll), 9*poll)
}
