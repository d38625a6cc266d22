package steps

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/node"
	"github.com/mecd/mecd/internal/nodepolicy"
	"github.com/mecd/mecd/internal/spec"
	"github.com/mecd/mecd/internal/store"
)

// DrainTimeout bounds draining one leaving node: a pod that will not go
// (a PodDisruptionBudget that allows no eviction) does not hold a scale.
const DrainTimeout = 120

// running is the operation a SCALING MEC runs, or an error that stops the
// step.
func running(m *mec.MEC) (*mec.Operation, error) {
	op := m.Operation()
	if !m.Status.Changing() || op == nil || op.Outcome != mec.OutcomeRunning {
		return nil, stepErr(ErrCancelled, "MEC %s is %s with no operation running: the scale stopped", m.ID, m.Status)
	}
	return op, nil
}

// added are the member nodes the running operation launched that have not
// joined yet.
func added(m *mec.MEC, op *mec.Operation) []mec.Node {
	var out []mec.Node
	for _, n := range m.MemberNodes() {
		if n.Operation == op.Number && !n.Joined && !m.IsNode0(n) {
			out = append(out, n)
		}
	}
	return out
}

// launchAdded launches the nodes a scale adds, in one RunInstances whose
// client token is the operation's, so a retried call finds the same
// instances; it does nothing once they are on the record.
func (s *Steps) launchAdded(ctx context.Context, m *mec.MEC) (LaunchResult, error) {
	op, err := running(m)
	if err != nil {
		return LaunchResult{}, err
	}
	have := 0
	for _, n := range m.Nodes {
		if n.Operation == op.Number {
			have++
		}
	}
	if len(op.Add) == 0 || have > 0 {
		return LaunchResult{Launched: true}, nil
	}
	if m, err = s.Store.Update(ctx, m.ID, func(r *mec.MEC) error { r.StartStep(mec.StepLaunch, s.now()); return nil }); err != nil {
		return LaunchResult{}, err
	}
	in, err := s.runInput(m, len(op.Add), fmt.Sprintf("%s-op%d", m.ID, op.Number))
	if err != nil {
		return LaunchResult{}, err
	}
	out, err := s.runInstances(ctx, m.Region, in)
	if err != nil {
		return LaunchResult{}, err
	}
	first, now := m.NextNodeIndex(), s.now()
	nodes := make([]mec.Node, 0, len(out.Instances))
	for _, inst := range out.Instances {
		i := int(aws.ToInt32(inst.AmiLaunchIndex))
		role := spec.RoleWorker
		if i < len(op.Add) {
			role = op.Add[i]
		}
		launched := now
		nodes = append(nodes, mec.Node{Index: first + i, InstanceID: aws.ToString(inst.InstanceId), Role: string(role), Operation: op.Number,
			PrivateIP: aws.ToString(inst.PrivateIpAddress), PublicIP: aws.ToString(inst.PublicIpAddress), LaunchedAt: &launched})
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Index < nodes[j].Index })
	ids := make([]string, 0, len(nodes))
	for _, n := range nodes {
		ids = append(ids, n.InstanceID)
	}
	var status mec.Status
	if _, err := s.Store.Update(ctx, m.ID, func(r *mec.MEC) error {
		status = r.Status
		r.Nodes = append(r.Nodes, nodes...)
		if r.Status.Changing() {
			r.EndStep(mec.StepLaunch, mec.OutcomeSucceeded, strings.Join(ids, " "), s.now())
			r.StartStep(mec.StepNodesOnline, s.now())
		}
		return nil
	}); err != nil {
		return LaunchResult{}, err
	}
	s.Log.InfoContext(ctx, "nodes added", "clusterId", m.ID, "operation", op.Number, "instances", strings.Join(ids, ","))
	if !status.Changing() {
		// A DELETE came during RunInstances: the teardown finds them by id
		// on the record; ending them here is sooner.
		if _, err := s.AWS.EC2(m.Region).TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
			s.Log.WarnContext(ctx, "terminate nodes of a deleted MEC", "clusterId", m.ID, "instances", strings.Join(ids, ","), "error", err)
		}
		return LaunchResult{}, stepErr(ErrCancelled, "MEC %s became %s while its new nodes launched", m.ID, status)
	}
	return LaunchResult{Launched: true}, nil
}

// planGrow joins a scale's new nodes: node 0 mints a token for them, they
// install (as at first boot) and join, and node 0 waits for them, enables
// the addons again (each already enabled one is skipped at once) and
// verifies every node Ready. The kubeconfig stays as it is: the endpoint
// (node 0) and the certificates do not change.
func (s *Steps) planGrow(ctx context.Context, m *mec.MEC, n0 *mec.Node) (commandPlan, error) {
	op, err := running(m)
	if err != nil {
		return commandPlan{}, err
	}
	joiners := added(m, op)
	if len(joiners) == 0 {
		return commandPlan{skip: "no node to add"}, nil
	}
	var workers, ids, ips []string
	for _, n := range joiners {
		ids, ips = append(ids, n.InstanceID), append(ips, n.PrivateIP)
		if n.Role == string(spec.RoleWorker) {
			workers = append(workers, n.InstanceID)
		}
	}
	vars := map[string]string{
		"CHANNEL": m.Spec.Microk8sChannel, "CLUSTER_DNS": node.ClusterDNS(m.Spec.Addons), "NODE0": n0.InstanceID, "LEADER_IP": n0.PrivateIP,
		"TOKEN_PARAM": mec.TokenParam(m.ID), "TOKEN_TTL": strconv.Itoa(int(JoinTokenTTL.Seconds())), "WORKERS": strings.Join(workers, " "),
		"READY_TIMEOUT": strconv.Itoa(int(s.Env.CommandTimeout.Seconds())), "RETRY_SECONDS": retrySeconds(s.Env.PollInterval),
		// The new nodes install MicroK8s (from their user data) before
		// they join, and a scale has no finalize step to leave the finish
		// to: node 0 waits for them up to 40% of the command's time, which
		// leaves it the half the finish needs (install.sh).
		"JOIN_WAIT_MS": strconv.FormatInt((s.Env.CommandTimeout * 2 / 5).Milliseconds(), 10),
		"EARLY_ADDONS": "", "LATE_ADDONS": "",
	}
	if op.EndpointMoved && m.KubeconfigParameter != "" {
		// The endpoint's node is lost: the kubeconfig pointed at it. Node
		// 0 now is another control-plane node, which stores the kubeconfig
		// again (same certificates, its address); it may write it once, so
		// the old one goes first.
		if _, err := s.AWS.SSM(m.Region).DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(mec.KubeconfigParam(m.ID))}); err != nil && apiCode(err) != "ParameterNotFound" {
			return commandPlan{}, fmt.Errorf("delete the kubeconfig of a lost endpoint: %w", err)
		}
		if m, err = s.Store.Update(ctx, m.ID, func(r *mec.MEC) error {
			r.Endpoint, r.KubeconfigParameter = "", ""
			return nil
		}); err != nil {
			return commandPlan{}, err
		}
	}
	maps.Copy(vars, s.finalizeVars(m))
	vars["EXPECTED_NODES"] = strconv.Itoa(len(m.MemberNodes()))
	vars["EXPECT_IPS"] = strings.Join(ips, " ")
	// Only the new nodes may read the token.
	if err := s.setNodePhase(ctx, m, nodepolicy.Phase{Stage: nodepolicy.Forming, Node0: n0.InstanceID, Joiners: ids}); err != nil {
		return commandPlan{}, err
	}
	return commandPlan{script: node.Install, targets: append([]mec.Node{*n0}, joiners...), vars: vars}, nil
}

// planShrink takes the leaving nodes out of the cluster, from node 0: a
// scale's chosen nodes are marked leaving first, so a failure part way
// knows which nodes the scale had chosen; an undo's are the nodes it added
// that did not join (a join that failed after dqlite took the node in
// leaves an entry that a later join of the address would meet as "already
// known": remove-node --force clears it).
func (s *Steps) planShrink(ctx context.Context, m *mec.MEC, n0 *mec.Node) (commandPlan, error) {
	op, err := running(m)
	if err != nil {
		return commandPlan{}, err
	}
	if op.Undoing {
		// The operation failed, perhaps before its grow step sealed the
		// node role: no node keeps a way to the token, and the token goes.
		if err := s.setNodePhase(ctx, m, nodepolicy.Phase{Stage: nodepolicy.Sealed}); err != nil {
			return commandPlan{}, err
		}
		if _, err := s.AWS.SSM(m.Region).DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(mec.TokenParam(m.ID))}); err != nil && apiCode(err) != "ParameterNotFound" {
			return commandPlan{}, fmt.Errorf("delete join token: %w", err)
		}
	}
	var ips []string
	if _, err := s.Store.Update(ctx, m.ID, func(r *mec.MEC) error {
		ips = ips[:0]
		for i := range r.Nodes {
			n := &r.Nodes[i]
			if !op.Undoing && slices.Contains(op.Remove, n.Index) && n.Member() && !r.IsNode0(*n) {
				n.State, n.Reason = mec.NodeLeaving, fmt.Sprintf("scaled from %d to %d nodes (operation %d)", op.From, op.To, op.Number)
			}
			if n.State == mec.NodeLeaving && !n.Removed {
				ips = append(ips, n.PrivateIP)
			}
		}
		return nil
	}); err != nil {
		return commandPlan{}, err
	}
	if len(ips) == 0 {
		return commandPlan{skip: "no node to remove"}, nil
	}
	// A lost node runs no pods to move: deleting its Node object lets
	// Kubernetes delete them (a drain would wait on a kubelet that is gone).
	drain := "yes"
	if op.Kind == mec.OperationRepair {
		drain = "no"
	}
	return commandPlan{script: node.Shrink, targets: []mec.Node{*n0}, vars: map[string]string{
		"LEAVING": strings.Join(ips, " "), "DRAIN": drain, "DRAIN_TIMEOUT": strconv.Itoa(DrainTimeout), "RETRY_SECONDS": retrySeconds(s.Env.PollInterval),
	}}, nil
}

// Cleanup purposes of a scale.
const (
	// PurposeUndo: the scale failed; the nodes it added that did not join
	// leave, the nodes it chose to remove that are still in the cluster stay.
	PurposeUndo = "undo"
	// PurposeRelease: the leaving nodes, out of the cluster, are terminated.
	PurposeRelease = "release"
)

// undoScale marks what a failed scale leaves behind. A MEC no longer
// SCALING (deleted meanwhile) is the teardown's: nothing is marked.
func (s *Steps) undoScale(ctx context.Context, id string) (CleanupResult, error) {
	_, err := s.Store.Update(ctx, id, func(r *mec.MEC) error {
		op, err := running(r)
		if err != nil {
			return store.ErrNoChange
		}
		op.Undoing = true
		for i := range r.Nodes {
			n := &r.Nodes[i]
			switch {
			case n.Member() && n.Operation == op.Number && !n.Joined && !r.IsNode0(*n):
				n.State, n.Reason = mec.NodeLeaving, fmt.Sprintf("rolled back: it had not joined when operation %d failed", op.Number)
			case op.Kind == mec.OperationScale && n.State == mec.NodeLeaving && !n.Removed && n.Operation != op.Number:
				// Chosen to leave, still in the cluster: it stays. (A
				// repair's lost nodes stay leaving: they are lost.)
				n.State, n.Reason = "", ""
			}
		}
		return nil
	})
	if err != nil {
		return CleanupResult{}, err
	}
	return CleanupResult{Done: true}, nil
}

// release terminates the leaving nodes and, once EC2 says they are
// terminated, records them so. A MEC no longer SCALING is the teardown's.
func (s *Steps) release(ctx context.Context, id string) (CleanupResult, error) {
	m, err := s.Store.Get(ctx, id)
	if err != nil {
		return CleanupResult{}, err
	}
	if !m.Status.Changing() {
		return CleanupResult{Done: true}, nil
	}
	var leaving []string
	for _, n := range m.Nodes {
		if n.State == mec.NodeLeaving {
			leaving = append(leaving, n.InstanceID)
		}
	}
	if len(leaving) == 0 {
		return CleanupResult{Done: true}, nil
	}
	if st := m.Step(mec.StepRelease); st == nil || st.Outcome != mec.OutcomeRunning {
		if m, err = s.Store.Update(ctx, id, func(r *mec.MEC) error { r.StartStep(mec.StepRelease, s.now()); return nil }); err != nil {
			return CleanupResult{}, err
		}
	}
	c := s.AWS.EC2(m.Region)
	alive, gone := 0, map[string]bool{}
	var toStop []string
	err = eachInstance(ctx, c, &ec2.DescribeInstancesInput{InstanceIds: leaving}, func(in ec2types.Instance) {
		switch {
		case in.State == nil:
		case in.State.Name == ec2types.InstanceStateNameTerminated:
			gone[aws.ToString(in.InstanceId)] = true
		case in.State.Name == ec2types.InstanceStateNameShuttingDown:
			alive++
		default:
			alive++
			toStop = append(toStop, aws.ToString(in.InstanceId))
		}
	})
	if err != nil && apiCode(err) != "InvalidInstanceID.NotFound" {
		return CleanupResult{}, err
	}
	if len(toStop) > 0 {
		if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: toStop}); err != nil {
			return CleanupResult{}, fmt.Errorf("terminate leaving nodes: %w", err)
		}
		s.Log.InfoContext(ctx, "terminating leaving nodes", "clusterId", id, "instances", strings.Join(toStop, ","))
	}
	if len(gone) < len(leaving) {
		// Not listed yet counts as alive: EC2 is eventually consistent.
		return s.notYet(s.now().Sub(m.Step(mec.StepRelease).StartedAt), max(alive, len(leaving)-len(gone)), "leaving nodes still shutting down")
	}
	if _, err := s.Store.Update(ctx, id, func(r *mec.MEC) error {
		now := s.now()
		for i := range r.Nodes {
			if n := &r.Nodes[i]; n.State == mec.NodeLeaving && gone[n.InstanceID] {
				end := now
				n.State, n.EndedAt, n.PublicIP, n.Joined = mec.NodeTerminated, &end, "", false
			}
		}
		r.EndStep(mec.StepRelease, mec.OutcomeSucceeded, fmt.Sprintf("%d nodes terminated", len(gone)), now)
		return nil
	}); err != nil {
		return CleanupResult{}, err
	}
	return CleanupResult{Done: true}, nil
}
