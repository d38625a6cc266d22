package steps

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/node"
	"github.com/mecd/mecd/internal/nodepolicy"
	"github.com/mecd/mecd/internal/store"
)

type invocation struct {
	node mec.Node
	// node0: the node holds the endpoint (mints tokens, finishes builds).
	node0          bool
	status         string
	code           int32
	stdout, stderr string
}

// finishCommand reads the command's results, records them and resumes the workflow.
func (s *Steps) finishCommand(ctx context.Context, w *store.Wait) error {
	m, err := s.Store.Get(ctx, w.ClusterID)
	if err != nil {
		return err
	}
	invs, err := s.invocations(ctx, m, w)
	if err != nil {
		return err
	}
	var secrets []string
	if w.Step == mec.StepInstall || w.Step == mec.StepJoin || w.Step == mec.StepGrow {
		// Defence in depth: scripts never print the token, but a cause must
		// not carry it even if one did. The parameter holds "token/check".
		if p, err := s.AWS.SSM(w.Region).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(mec.TokenParam(w.ClusterID)), WithDecryption: aws.Bool(true)}); err == nil {
			v := aws.ToString(p.Parameter.Value)
			secrets = append(secrets, v, strings.SplitN(v, "/", 2)[0])
		}
	}
	var failures []string
	failed := map[string]bool{}
	joinsOnly := true // every failure is a node's join (exit 3), which a reset and a retry may mend
	early := failedFast(w, invs)
	for _, inv := range invs {
		if early && !terminalStatus[inv.status] {
			// Still running on a node that waits on the one that failed
			// (a fail-fast wait): the rollback ends it with its instance.
			// Otherwise an unfinished status (GetCommandInvocation lagging
			// the event) counts as a failure, never as a success.
			continue
		}
		if inv.status != "Success" {
			failed[inv.node.InstanceID] = true
			failures = append(failures, fmt.Sprintf("%s failed on %s (node %d): %s, exit %d: %s", w.Step, inv.node.InstanceID, inv.node.Index,
				inv.status, inv.code, redact(tail(inv.stderr, 1200), secrets...)))
			joinsOnly = joinsOnly && !inv.node0 && inv.code == joinFailedExit
		}
	}
	if w.Step == mec.StepGrow && len(failures) == 0 {
		// A scale has no finalize step: its grow is done only once node 0
		// finished in the command (addons, every node Ready, the
		// kubeconfig), which it says last. A script that left the finish
		// to a later step must not make a MEC READY unverified.
		for _, inv := range invs {
			if _, v := node.ParseOutput(inv.stdout); inv.node0 && v["finalized"] != "yes" {
				failed[inv.node.InstanceID] = true
				failures = append(failures, fmt.Sprintf("grow on %s (node %d) ended without finishing the scale (addons, every node Ready, the kubeconfig): %s",
					inv.node.InstanceID, inv.node.Index, redact(tail(inv.stderr, 1200), secrets...)))
			}
		}
	}
	outcome, detail := mec.OutcomeSucceeded, fmt.Sprintf("command %s on %d nodes", w.CommandID, len(invs))
	if len(failures) > 0 {
		outcome, detail = mec.OutcomeFailed, strings.Join(failures, "\n")
	}
	finalized, err := s.recordResults(ctx, w, invs, failed, outcome, detail, joinsOnly)
	if err != nil {
		return err
	}
	if len(failures) > 0 {
		name := ErrCommandFailed
		switch {
		case w.Step == mec.StepJoin:
			// Any failure of a join command (a hung join killed at its
			// time limit included) is mended by a reset and a retry.
			name = ErrJoinFailed
		case w.Step == mec.StepInstall && joinsOnly:
			name = ErrJoinFailed
		}
		s.Log.WarnContext(ctx, "node command failed", "clusterId", w.ClusterID, "step", w.Step, "commandId", w.CommandID, "failures", len(failures))
		_, err = s.SFN.SendTaskFailure(ctx, &sfn.SendTaskFailureInput{TaskToken: aws.String(w.Token),
			Error: aws.String(name), Cause: aws.String(tail(detail, 4000))})
	} else {
		if w.Step == mec.StepJoin || w.Step == mec.StepInstall || w.Step == mec.StepGrow {
			// Every node joined: the token has done its work.
			if _, derr := s.AWS.SSM(w.Region).DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(mec.TokenParam(w.ClusterID))}); derr != nil && apiCode(derr) != "ParameterNotFound" {
				return fmt.Errorf("delete join token: %w", derr)
			}
		}
		if finalized {
			// The kubeconfig is stored: the nodes need Parameter Store no more.
			if err := s.setNodePhase(ctx, m, nodepolicy.Phase{Stage: nodepolicy.Sealed}); err != nil {
				return err
			}
		}
		s.Log.InfoContext(ctx, "node command succeeded", "clusterId", w.ClusterID, "step", w.Step, "commandId", w.CommandID)
		_, err = s.SFN.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(w.Token),
			Output: aws.String(fmt.Sprintf(`{"step":%q,"commandId":%q}`, w.Step, w.CommandID))})
	}
	if err != nil && apiCode(err) != "TaskTimedOut" && apiCode(err) != "TaskDoesNotExist" {
		return fmt.Errorf("resume workflow: %w", err)
	}
	return nil
}

// invocations reads each target's result, in node order.
func (s *Steps) invocations(ctx context.Context, m *mec.MEC, w *store.Wait) ([]invocation, error) {
	byID := map[string]mec.Node{}
	for _, n := range m.Nodes {
		byID[n.InstanceID] = n
	}
	var invs []invocation
	for _, id := range w.Instances {
		inv, err := s.AWS.SSM(w.Region).GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(w.CommandID), InstanceId: aws.String(id)})
		if err != nil {
			return nil, fmt.Errorf("get command invocation %s on %s: %w", w.CommandID, id, err)
		}
		invs = append(invs, invocation{node: byID[id], node0: m.IsNode0(byID[id]), status: string(inv.Status), code: inv.ResponseCode,
			stdout: aws.ToString(inv.StandardOutputContent), stderr: aws.ToString(inv.StandardErrorContent)})
	}
	sort.Slice(invs, func(i, j int) bool { return invs[i].node.Index < invs[j].node.Index })
	return invs, nil
}

// failedFast says whether w's fail-fast target (node 0, whom the others
// wait on) failed: the wait then ended before the others did.
func failedFast(w *store.Wait, invs []invocation) bool {
	for _, inv := range invs {
		if w.FailFast != "" && inv.node.InstanceID == w.FailFast && terminalStatus[inv.status] && inv.status != "Success" {
			return true
		}
	}
	return false
}

// joinFailedExit is the exit status of a node script whose join failed
// (lib.sh join_failed).
const joinFailedExit = 3

// recordResults writes what the command's output says into the record: the
// steps its markers timed, node 0's join check, which nodes joined (the
// install step's joins as one join step), the endpoint once the kubeconfig
// is stored, and the step's outcome.
func (s *Steps) recordResults(ctx context.Context, w *store.Wait, invs []invocation, failed map[string]bool, outcome, detail string, joinsOnly bool) (bool, error) {
	now := s.now()
	// The build is finished once node 0 stored the kubeconfig: in the
	// finalize step, or in the install command when every node joined in
	// time (its "::mecd-finalized" line).
	finalized := w.Step == mec.StepFinalize && outcome == mec.OutcomeSucceeded
	type output struct {
		markers []node.Marker
		values  map[string]string
	}
	outputs := make([]output, len(invs))
	for i, inv := range invs {
		outputs[i].markers, outputs[i].values = node.ParseOutput(inv.stdout)
		if (w.Step == mec.StepInstall || w.Step == mec.StepGrow) && outcome == mec.OutcomeSucceeded && inv.node0 && outputs[i].values["finalized"] == "yes" {
			finalized = true
		}
	}
	_, err := s.Store.Update(ctx, w.ClusterID, func(r *mec.MEC) error {
		var join *mec.Step // the install step's joins
		for i, inv := range invs {
			markers, values := outputs[i].markers, outputs[i].values
			if w.Step == mec.StepGrow || w.Step == mec.StepShrink {
				// A scale's step is its own record: its nodes' markers
				// are not the provisioning's steps.
				markers = nil
			}
			if w.Step == mec.StepShrink && values["removed"] != "" {
				// The nodes shrink.sh took out of the cluster, even when
				// it failed part way.
				out := strings.Split(values["removed"], ",")
				for j := range r.Nodes {
					if n := &r.Nodes[j]; n.State == mec.NodeLeaving && slices.Contains(out, n.PrivateIP) {
						n.Joined, n.Removed = false, true
					}
				}
			}
			for _, mk := range markers {
				if mk.Step == w.Step {
					continue
				}
				start, end := time.UnixMilli(mk.StartMs).UTC(), time.UnixMilli(mk.End).UTC()
				if mk.Step == mec.StepJoin && w.Step == mec.StepInstall {
					if join == nil {
						join = &mec.Step{Name: mec.StepJoin, StartedAt: start, EndedAt: &end}
					}
					if start.Before(join.StartedAt) {
						join.StartedAt = start
					}
					if end.After(*join.EndedAt) {
						join.EndedAt = &end
					}
					continue
				}
				r.Steps = append(r.Steps, mec.Step{Name: mk.Step, Outcome: mec.OutcomeSucceeded, StartedAt: start, EndedAt: &end,
					Seconds: end.Sub(start).Seconds(), Attempt: 1, Detail: "on " + inv.node.InstanceID})
			}
			if inv.node0 && values["check"] != "" {
				r.JoinCheck = values["check"]
			}
			if inv.node0 {
				for k, v := range values {
					if name, ok := strings.CutPrefix(k, "addon-"); ok {
						r.SetAddonState(addonState(name, v))
					}
				}
			}
		}
		if w.Step == mec.StepJoin || w.Step == mec.StepInstall || w.Step == mec.StepGrow {
			joined := map[string]bool{}
			joiners := 0
			for _, inv := range invs {
				if !inv.node0 {
					joiners++
					joined[inv.node.InstanceID] = inv.status == "Success"
				}
			}
			for i := range r.Nodes {
				if n := &r.Nodes[i]; joined[n.InstanceID] && !n.Joined {
					at := now
					n.Joined, n.JoinedAt = true, &at
				}
			}
			if w.Step == mec.StepInstall && joiners > 0 && (outcome == mec.OutcomeSucceeded || joinsOnly) {
				// The install step's joins are the join step's first attempt.
				if join == nil {
					join = &mec.Step{Name: mec.StepJoin, StartedAt: now, EndedAt: &now}
				}
				join.Outcome, join.Attempt, join.Detail = outcome, 1, fmt.Sprintf("%d nodes joined", joiners-len(failed))
				if outcome != mec.OutcomeSucceeded {
					join.Detail = detail
				}
				join.Seconds = join.EndedAt.Sub(join.StartedAt).Seconds()
				r.Steps = append(r.Steps, *join)
			}
		}
		if finalized {
			r.Endpoint = "https://" + r.EndpointHost() + ":16443"
			r.KubeconfigParameter = mec.KubeconfigParam(r.ID)
		}
		if st := r.Step(w.Step); st != nil && st.CommandID == w.CommandID {
			o, d := outcome, detail
			if w.Step == mec.StepInstall && outcome != mec.OutcomeSucceeded && joinsOnly {
				// MicroK8s runs everywhere: only joins failed, and the join
				// step (recorded above) carries them to the reset.
				o, d = mec.OutcomeSucceeded, fmt.Sprintf("command %s: MicroK8s runs on every node; %d joins failed", w.CommandID, len(failed))
			}
			r.EndStep(w.Step, o, d, now)
		}
		return nil
	})
	return finalized, err
}

// addonState reads an "::mecd-addon-NAME STATE" line's state: "enabled", or
// "ready:12s" (lib.sh apply_addon).
func addonState(name, v string) mec.AddonState {
	st := mec.AddonState{Name: name, State: v}
	if state, secs, ok := strings.Cut(v, ":"); ok {
		st.State = state
		if d, err := time.ParseDuration(secs); err == nil {
			st.Seconds = d.Seconds()
		}
	}
	return st
}
