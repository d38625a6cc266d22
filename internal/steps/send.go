package steps

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/mecd/mecd/internal/addons"
	"github.com/mecd/mecd/internal/backend"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/node"
	"github.com/mecd/mecd/internal/nodepolicy"
)

// MaxJoinAttempts bounds join retries (each after a reset).
const MaxJoinAttempts = 3

// CommandInput is the payload of a node-command callback task: Step is the
// node step (mec.StepInstall, StepJoin, StepReset or StepFinalize).
type CommandInput struct {
	TaskToken string `json:"taskToken"`
	ClusterID string `json:"clusterId"`
	Step      string `json:"step"`
}

// NodeCommand sends a step's node script through SSM Run Command and parks
// the task token; CommandEvents resumes the workflow when SSM reports the
// command finished. Invoked again for a step already running (Retry after
// States.Timeout), it re-registers the new token and checks the command's
// status itself, in case an event was lost.
func (s *Steps) NodeCommand(ctx context.Context, in CommandInput) (*struct{}, error) {
	if err := s.nodeCommand(ctx, in); err != nil {
		// Fail the task itself, with a name its Catch matches: a failed
		// invocation of a callback task's Lambda would leave the task
		// waiting for its timeout.
		name, msg := ErrStep, err.Error()
		var e *Error
		if errors.As(err, &e) {
			name, msg = e.Name, e.Msg
		} else if isTransient(err) {
			name = ErrTransient
		}
		s.Log.ErrorContext(ctx, "node command failed", "clusterId", in.ClusterID, "step", in.Step, "error", name, "cause", msg)
		if _, ferr := s.SFN.SendTaskFailure(ctx, &sfn.SendTaskFailureInput{TaskToken: aws.String(in.TaskToken),
			Error: aws.String(name), Cause: aws.String(tail(msg, 4000))}); ferr != nil {
			return nil, fmt.Errorf("%w (and send task failure: %v)", err, ferr)
		}
	}
	return nil, nil
}

func (s *Steps) nodeCommand(ctx context.Context, in CommandInput) error {
	if err := s.awaitPredecessor(ctx, in.ClusterID, in.Step); err != nil {
		return err
	}
	// The lease: the join token parameter and the command wait are made
	// here, and a teardown's cleanup must not finish before.
	m, release, err := s.lease(ctx, in.ClusterID, in.Step)
	if err != nil {
		return err
	}
	defer release()
	if st := m.Step(in.Step); st != nil && st.Outcome == mec.OutcomeRunning {
		if st.CommandID != "" {
			s.Log.InfoContext(ctx, "re-registering task token", "clusterId", m.ID, "step", in.Step, "commandId", st.CommandID)
			return s.register(ctx, m, in.Step, st.CommandID, in.TaskToken, nil)
		}
		// An invocation that started this attempt died (Lambda.Unknown,
		// retried) before it recorded its command, perhaps after sending
		// it: adopt that command rather than run the step twice at once.
		// Looked for before planning, which would make a new join token.
		cmdID, err := s.sentCommand(ctx, m, in.Step, st.StartedAt)
		if err != nil {
			return err
		}
		if cmdID != "" {
			s.Log.InfoContext(ctx, "adopting the command a failed invocation sent", "clusterId", m.ID, "step", in.Step, "commandId", cmdID)
			if err := s.recordCommand(ctx, m.ID, in.Step, cmdID); err != nil {
				return err
			}
			return s.register(ctx, m, in.Step, cmdID, in.TaskToken, nil)
		}
	}
	plan, err := s.plan(ctx, m, in.Step)
	if err != nil {
		return err
	}
	if len(plan.targets) == 0 {
		if _, err := s.Store.Update(ctx, m.ID, func(r *mec.MEC) error {
			r.EndStep(in.Step, mec.OutcomeSucceeded, plan.skip, s.now())
			return nil
		}); err != nil {
			return err
		}
		_, err := s.SFN.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(in.TaskToken), Output: aws.String(`{"skipped":true}`)})
		if c := apiCode(err); c == "TaskTimedOut" || c == "TaskDoesNotExist" {
			// The task timed out meanwhile: its retry skips again. As in finishCommand.
			return nil
		}
		return err
	}
	script, err := node.Render(plan.script, plan.vars)
	if err != nil {
		return err
	}
	if _, err := s.Store.Update(ctx, m.ID, func(r *mec.MEC) error { r.StartStep(in.Step, s.now()); return nil }); err != nil {
		return err
	}
	ids := make([]string, 0, len(plan.targets))
	for _, n := range plan.targets {
		ids = append(ids, n.InstanceID)
	}
	out, err := s.AWS.SSM(m.Region).SendCommand(ctx, &ssm.SendCommandInput{
		DocumentName: aws.String(backend.NodeDocument.Name),
		InstanceIds:  ids,
		Comment:      aws.String(commandComment(m.ID, in.Step)),
		Parameters: map[string][]string{
			"commands":         {script},
			"executionTimeout": {strconv.Itoa(int(s.commandTimeout(in.Step).Seconds()))},
		},
		TimeoutSeconds: aws.Int32(600),
	})
	if err != nil {
		return fmt.Errorf("send %s command: %w", in.Step, err)
	}
	cmdID := aws.ToString(out.Command.CommandId)
	s.Log.InfoContext(ctx, "node command sent", "clusterId", m.ID, "step", in.Step, "commandId", cmdID, "instances", strings.Join(ids, ","))
	if err := s.recordCommand(ctx, m.ID, in.Step, cmdID); err != nil {
		return err
	}
	return s.register(ctx, m, in.Step, cmdID, in.TaskToken, ids)
}

// awaitPredecessor waits while another invocation of the same step holds
// the MEC's lease: Step Functions retries an invoke the Lambda service
// reported failed (Lambda.ServiceException, Lambda.Unknown), and the failed
// one may still be running, about to send the step's command. Sending
// again would run the same script twice at once on the nodes (seen: two
// finalize commands for one attempt). It returns once the lease is gone or
// expired, or the step's command is recorded (then the retry adopts it), or
// after the few seconds a live predecessor needs to send: one that crashed
// (out of memory, timed out) holds its lease until its own deadline, and
// the retry should not wait that out.
func (s *Steps) awaitPredecessor(ctx context.Context, id, step string) error {
	deadline := s.now().Add(max(3*s.Env.PollInterval, 5*time.Second))
	if d, ok := ctx.Deadline(); ok && d.Add(-5*time.Second).Before(deadline) {
		deadline = d.Add(-5 * time.Second)
	}
	every := max(s.Env.PollInterval/10, 50*time.Millisecond)
	for {
		m, err := s.Store.Get(ctx, id)
		if err != nil {
			return err
		}
		now := s.now()
		if m.Lease == nil || m.Lease.Step != step || !now.Before(m.Lease.Until) || !now.Before(deadline) {
			return nil
		}
		if st := m.Step(step); st != nil && st.CommandID != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// commandTimeout is the time limit of a step's command on a node.
func (s *Steps) commandTimeout(step string) time.Duration {
	if step == mec.StepJoin && s.Env.CommandTimeout > JoinTimeout {
		return JoinTimeout
	}
	return s.Env.CommandTimeout
}

// commandComment names a node command's MEC and step (SSM shows it; a
// retried invocation finds its predecessor's command by it).
func commandComment(clusterID, step string) string { return fmt.Sprintf("mecd %s %s", clusterID, step) }

// recordCommand notes the command of a step's current attempt.
func (s *Steps) recordCommand(ctx context.Context, clusterID, step, cmdID string) error {
	_, err := s.Store.Update(ctx, clusterID, func(r *mec.MEC) error {
		if st := r.Step(step); st != nil {
			st.CommandID = cmdID
			st.Detail = "command " + cmdID
		}
		if !slices.Contains(r.CommandIDs, cmdID) {
			r.CommandIDs = append(r.CommandIDs, cmdID)
		}
		return nil
	})
	return err
}

// sentCommand finds the command of a step's current attempt among those
// SSM ran on the step's first target since the attempt started ("" if none).
func (s *Steps) sentCommand(ctx context.Context, m *mec.MEC, step string, since time.Time) (string, error) {
	target := ""
	for _, n := range m.LiveNodes() {
		if step != mec.StepJoin || (n.Index != 0 && !n.Joined) {
			target = n.InstanceID
			break
		}
	}
	if target == "" {
		return "", nil
	}
	want := commandComment(m.ID, step)
	found := ""
	p := ssm.NewListCommandInvocationsPaginator(s.AWS.SSM(m.Region), &ssm.ListCommandInvocationsInput{
		InstanceId: aws.String(target), MaxResults: aws.Int32(50),
		// A minute of slack for clock skew between Lambda and SSM.
		Filters: []ssmtypes.CommandFilter{{Key: ssmtypes.CommandFilterKeyInvokedAfter, Value: aws.String(since.Add(-time.Minute).Format(time.RFC3339))}},
	})
	for p.HasMorePages() && found == "" {
		page, err := p.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("list command invocations: %w", err)
		}
		for _, inv := range page.CommandInvocations {
			if aws.ToString(inv.Comment) == want {
				found = aws.ToString(inv.CommandId) // newest first: the latest send
				break
			}
		}
	}
	return found, nil
}

type commandPlan struct {
	script  string
	targets []mec.Node
	vars    map[string]string
	skip    string // why nothing is sent
}

func (s *Steps) plan(ctx context.Context, m *mec.MEC, step string) (commandPlan, error) {
	n0 := m.Node0()
	if n0 == nil {
		return commandPlan{}, stepErr(ErrStep, "MEC %s has no nodes", m.ID)
	}
	switch step {
	case mec.StepInstall:
		return s.planInstall(ctx, m, n0)
	case mec.StepJoin:
		return s.planJoin(m, n0)
	case mec.StepReset:
		var failedIPs []string
		targets := []mec.Node{*n0}
		for _, nd := range m.Nodes {
			if nd.Index != 0 && !nd.Joined {
				failedIPs = append(failedIPs, nd.PrivateIP)
				targets = append(targets, nd)
			}
		}
		if len(failedIPs) == 0 {
			return commandPlan{skip: "no node to reset"}, nil
		}
		// Node 0 mints the retry's token: the last one may be near its end.
		return commandPlan{script: node.Reset, targets: targets, vars: map[string]string{
			"NODE0": n0.InstanceID, "FAILED_IPS": strings.Join(failedIPs, " "),
			"TOKEN_PARAM": mec.TokenParam(m.ID), "TOKEN_TTL": strconv.Itoa(int(JoinTokenTTL.Seconds())),
		}}, nil
	case mec.StepGrow:
		return s.planGrow(ctx, m, n0)
	case mec.StepShrink:
		return s.planShrink(ctx, m, n0)
	case mec.StepFinalize:
		if m.KubeconfigParameter != "" {
			// Node 0 finished the build in the install command.
			return commandPlan{skip: "the install command finished the build"}, nil
		}
		// Every node joined: the token is spent, node 0 may store the kubeconfig.
		if err := s.setNodePhase(ctx, m, nodePhase(m, nodepolicy.Joined)); err != nil {
			return commandPlan{}, err
		}
		vars := s.finalizeVars(m)
		vars["RETRY_SECONDS"] = retrySeconds(s.Env.PollInterval)
		return commandPlan{script: node.Finalize, targets: []mec.Node{*n0}, vars: vars}, nil
	}
	return commandPlan{}, stepErr(ErrStep, "unknown node step %q", step)
}

func (s *Steps) planInstall(ctx context.Context, m *mec.MEC, n0 *mec.Node) (commandPlan, error) {
	vars := map[string]string{
		"CHANNEL": m.Spec.Microk8sChannel, "CLUSTER_DNS": node.ClusterDNS(m.Spec.Addons), "NODE0": n0.InstanceID, "LEADER_IP": n0.PrivateIP, "TOKEN_PARAM": "",
		"TOKEN_TTL": strconv.Itoa(int(JoinTokenTTL.Seconds())), "WORKERS": joinWorkers(m),
		"READY_TIMEOUT": strconv.Itoa(int(s.Env.CommandTimeout.Seconds())),
		"RETRY_SECONDS": retrySeconds(s.Env.PollInterval),
		// Node 0 finishes the build in this command once every node
		// joined, waiting for the joins at most JoinWaitPolls poll
		// intervals; a later join leaves it to the finalize step.
		"JOIN_WAIT_MS": strconv.FormatInt(max(JoinWaitPolls*s.Env.PollInterval, minJoinWait).Milliseconds(), 10),
	}
	maps.Copy(vars, s.finalizeVars(m))
	stage := nodepolicy.Joined // one node: it stores the kubeconfig, no token
	if len(m.Nodes) > 1 {
		// Node 0 mints the token (microk8s add-node prints it, so it is on
		// no command line) and stores it; only the joiners may read it, and
		// they join as soon as it is there.
		stage = nodepolicy.Forming
		vars["TOKEN_PARAM"] = mec.TokenParam(m.ID)
		// mecd's own addons go after MicroK8s' (finalize_cluster).
		microk8s, _ := addons.Split(m.Spec.Addons)
		early, late := node.SplitAddons(microk8s)
		vars["EARLY_ADDONS"], vars["LATE_ADDONS"] = strings.Join(early, " "), strings.Join(late, " ")
	}
	if err := s.setNodePhase(ctx, m, nodePhase(m, stage)); err != nil {
		return commandPlan{}, err
	}
	// Node 0 first: the others wait on it (the command's fail-fast target).
	targets := append([]mec.Node{*n0}, slices.DeleteFunc(slices.Clone(m.Nodes), func(nd mec.Node) bool { return nd.Index == 0 })...)
	return commandPlan{script: node.Install, targets: targets, vars: vars}, nil
}

// finalizeVars are finalize_cluster's inputs (node scripts lib.sh), for
// node 0's install command and the finalize step.
func (s *Steps) finalizeVars(m *mec.MEC) map[string]string {
	microk8s, own := addons.Split(m.Spec.Addons)
	disks := ""
	if slices.ContainsFunc(own, func(a string) bool { ad, _ := addons.Get(a); return ad.DataVolumes }) {
		disks = strconv.Itoa(m.Spec.DataVolumeCount())
	}
	return map[string]string{
		// The data volumes per node the storage addon uses (lib.sh prepare_storage).
		"STORAGE_DISKS": disks,
		"ADDONS":        strings.Join(microk8s, " "), "OWN_ADDONS": strings.Join(own, " "), "EXPECTED_NODES": strconv.Itoa(len(m.Nodes)),
		// mecd's addons are given a third of the command's time (apply_addon).
		"ADDON_TIMEOUT": strconv.Itoa(max(1, int(s.Env.CommandTimeout.Seconds()/3))),
		"ENDPOINT_HOST": m.EndpointHost(), "KUBECONFIG_PARAM": mec.KubeconfigParam(m.ID), "VERIFY_ATTEMPTS": "90",
	}
}

// JoinWaitPolls bounds, in poll intervals (2 minutes on AWS), how long node
// 0's install command waits for every node to join before it leaves the
// rest of the build to the finalize step: a MicroK8s join takes a minute or
// two, and a failed one is retried by the reset and join steps only once
// this command ended. minJoinWait keeps the bound above the scripts' own
// time on a local runtime whose waits are scaled down.
const (
	JoinWaitPolls = 12
	minJoinWait   = 10 * time.Second
)

// joinWorkers lists the instances that join as workers.
func joinWorkers(m *mec.MEC) string {
	var workers []string
	for _, nd := range m.Nodes {
		if nd.Index != 0 && nd.Role == "worker" {
			workers = append(workers, nd.InstanceID)
		}
	}
	return strings.Join(workers, " ")
}

// planJoin joins again the nodes whose join failed, after their reset.
func (s *Steps) planJoin(m *mec.MEC, n0 *mec.Node) (commandPlan, error) {
	if st := m.Step(mec.StepJoin); st != nil && st.Attempt >= MaxJoinAttempts && st.Outcome != mec.OutcomeRunning {
		return commandPlan{}, stepErr(ErrJoinExhausted, "nodes failed to join %d times: %s", st.Attempt, st.Detail)
	}
	var targets []mec.Node
	for _, nd := range m.Nodes {
		if nd.Index != 0 && !nd.Joined {
			targets = append(targets, nd)
		}
	}
	return commandPlan{script: node.Join, targets: targets, skip: "no node to join", vars: map[string]string{
		"LEADER_IP": n0.PrivateIP, "TOKEN_PARAM": mec.TokenParam(m.ID), "WORKERS": joinWorkers(m),
		"READY_TIMEOUT": strconv.Itoa(int(s.commandTimeout(mec.StepJoin).Seconds())),
		"RETRY_SECONDS": retrySeconds(s.Env.PollInterval),
	}}, nil
}

// JoinTokenTTL is how long a join token stays valid on node 0: MicroK8s
// keeps a TTL token, used or not, until it expires, so it is sized to one
// join attempt (the join command's time limit) plus the time to send it. The
// finalize step also removes it from node 0 once every node joined.
const JoinTokenTTL = JoinTimeout + 5*time.Minute

// JoinTimeout bounds one join command: a MicroK8s join takes a minute or two.
const JoinTimeout = 10 * time.Minute

// retrySeconds is how long a node script waits before trying a busy tool
// again: the poll interval (10 s on AWS; the local runtime scales it).
func retrySeconds(poll time.Duration) string {
	return strconv.FormatFloat(poll.Seconds(), 'f', 3, 64)
}
