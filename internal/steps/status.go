package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/store"
)

// StatusInput is the record-status task's input.
type StatusInput struct {
	Status mec.Status `json:"status"`
	State  State      `json:"state"`
}

// Summary is what a provisioning execution outputs: where to find the MEC.
type Summary struct {
	ClusterID           string     `json:"clusterId,omitempty"`
	Name                string     `json:"name,omitempty"`
	Status              mec.Status `json:"status"`
	Region              string     `json:"region,omitempty"`
	Endpoint            string     `json:"endpoint,omitempty"`
	KubeconfigParameter string     `json:"kubeconfigParameter,omitempty"`
	Nodes               []mec.Node `json:"nodes,omitempty"`
	FailedStep          string     `json:"failedStep,omitempty"`
	FailureCause        string     `json:"failureCause,omitempty"`
	Seconds             float64    `json:"seconds,omitempty"`
}

func summarize(m *mec.MEC) Summary {
	sum := Summary{ClusterID: m.ID, Name: m.Name, Status: m.Status, Region: m.Region, Endpoint: m.Endpoint,
		KubeconfigParameter: m.KubeconfigParameter, Nodes: m.Nodes, FailedStep: m.FailedStep, FailureCause: m.FailureCause}
	if m.ReadyAt != nil {
		sum.Seconds = m.ReadyAt.Sub(m.CreatedAt).Seconds()
	}
	return sum
}

// TeardownFailed is the pseudo-status the teardown machine records when its
// cleanup failed: the MEC stays DELETING, with the cause, so a new DELETE
// (or the sweeper) can start the teardown again.
const TeardownFailed mec.Status = "TEARDOWN_FAILED"

// RecordStatus moves a record to READY, FAILED, DELETING or DELETED. Moving a
// MEC that is still CREATING to DELETING stops its provisioning first.
func (s *Steps) RecordStatus(ctx context.Context, in StatusInput) (Summary, error) {
	id := in.State.ClusterID
	if id == "" {
		// Failed before a record existed (e.g. an invalid console spec).
		cause := ""
		if in.State.Error != nil {
			cause = causeText(in.State.Error)
		}
		return Summary{Status: mec.Failed, FailedStep: mec.StepRecord, FailureCause: cause}, nil
	}
	now := s.now()
	var stopArn string
	m, err := s.Store.Update(ctx, id, func(r *mec.MEC) error {
		stopArn = ""
		switch in.Status {
		case mec.Ready:
			if r.Status.Changing() {
				s.endScale(r, in.State.Error, now)
				return nil
			}
			if r.Status != mec.Creating {
				return stepErr(ErrCancelled, "MEC %s is %s, not CREATING", id, r.Status)
			}
			r.Status = mec.Ready
			r.ReadyAt = &now
			r.StartStep(mec.StepReady, now)
			r.EndStep(mec.StepReady, mec.OutcomeSucceeded, "", now)
		case mec.Failed:
			if r.Status != mec.Creating {
				return store.ErrNoChange // deleted meanwhile: the teardown owns the record now
			}
			cause := "unknown"
			if in.State.Error != nil {
				cause = causeText(in.State.Error)
			}
			failed := ""
			for i := range r.Steps {
				st := &r.Steps[i]
				if st.Outcome == mec.OutcomeRunning && st.Name != mec.StepRollback {
					if failed == "" {
						failed = st.Name
					}
					st.Outcome = mec.OutcomeFailed
					end := now
					st.EndedAt = &end
					st.Seconds = end.Sub(st.StartedAt).Seconds()
				}
			}
			if failed == "" {
				failed = lastFailedStep(r)
			}
			if failed == "" {
				// The step's Lambda died before it recorded its start.
				failed = r.PendingStep()
			}
			if in.State.CleanupEr != nil {
				r.EndStep(mec.StepRollback, mec.OutcomeFailed, causeText(in.State.CleanupEr), now)
				cause += " (rollback incomplete: " + causeText(in.State.CleanupEr) + ")"
			}
			r.FailedStep, r.FailureCause = failed, tail(cause, 2000)
			r.Status = mec.Failed
		case mec.Deleting:
			if r.Status == mec.Deleted {
				return store.ErrNoChange // a repeated teardown: cleanup finds nothing, DELETED stays
			}
			// A provisioning that never ended (neither READY nor FAILED) is
			// stopped, whether the record is still CREATING or the API
			// already marked it DELETING.
			if r.ReadyAt == nil && r.FailedStep == "" && (r.Status == mec.Creating || r.Status == mec.Deleting) {
				stopArn = r.ExecutionArn
			}
			// So is a scale that never ended: its steps stop at their next
			// look too, but a node command in flight would wait out its
			// time limit.
			if op := r.Operation(); op != nil && op.Outcome == mec.OutcomeRunning {
				stopArn = op.ExecutionArn
				r.EndOperation(mec.OutcomeFailed, "stopped: the MEC was deleted", now)
			}
			r.Status = mec.Deleting
			r.FailedStep, r.FailureCause = "", ""
			r.StartStep(mec.StepTeardown, now)
		case mec.Deleted:
			if r.Status == mec.Deleted {
				return store.ErrNoChange
			}
			r.Status = mec.Deleted
		case TeardownFailed:
			cause := "unknown"
			if in.State.Error != nil {
				cause = causeText(in.State.Error)
			}
			r.EndStep(mec.StepTeardown, mec.OutcomeFailed, tail(cause, 2000), now)
			r.FailedStep, r.FailureCause = mec.StepTeardown, tail(cause, 2000)
		default:
			return stepErr(ErrStep, "unknown status %q", in.Status)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Summary{ClusterID: id, Status: mec.Failed}, nil
		}
		return Summary{}, err
	}
	if stopArn != "" {
		// The provisioning must not race the teardown; its own steps also
		// stop at the next check, for executions whose ARN is unknown.
		_, err := s.SFN.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: aws.String(stopArn),
			Error: aws.String("Deleted"), Cause: aws.String("the MEC was deleted while it was being provisioned or scaled")})
		if err != nil && apiCode(err) != "ExecutionDoesNotExist" {
			return Summary{}, fmt.Errorf("stop provisioning %s: %w", stopArn, err)
		}
		s.Log.InfoContext(ctx, "provisioning stopped", "clusterId", id, "execution", stopArn)
	}
	s.Log.InfoContext(ctx, "record status", "clusterId", id, "status", m.Status, "failedStep", m.FailedStep)
	return summarize(m), nil
}

func lastFailedStep(m *mec.MEC) string {
	for i := len(m.Steps) - 1; i >= 0; i-- {
		if m.Steps[i].Outcome == mec.OutcomeFailed && m.Steps[i].Name != mec.StepRollback {
			return m.Steps[i].Name
		}
	}
	return ""
}

// causeText makes a Catch's error readable: a Lambda failure's cause holds
// its {"errorMessage","errorType"} JSON, read wherever it starts in the cause.
func causeText(e *ErrorInfo) string {
	cause := e.Cause
	if i := strings.Index(cause, "{"); i >= 0 {
		var le struct {
			ErrorMessage string `json:"errorMessage"`
			ErrorType    string `json:"errorType"`
		}
		if err := json.Unmarshal([]byte(cause[i:]), &le); err == nil && le.ErrorMessage != "" {
			return fmt.Sprintf("%s: %s", le.ErrorType, le.ErrorMessage)
		}
	}
	if e.Error != "" && !strings.HasPrefix(cause, e.Error) {
		return e.Error + ": " + cause
	}
	return cause
}

// endScale ends r's running scale and makes it READY again: the spec says
// what runs (the member nodes; HA with 3 control-plane nodes or more),
// whether the scale succeeded or its undo left part of it. Steps still
// running end failed. It returns the ended operation.
func (s *Steps) endScale(r *mec.MEC, failure *ErrorInfo, now time.Time) *mec.Operation {
	op := r.Operation()
	if op == nil {
		r.Status = mec.Ready
		return nil
	}
	members, cps := r.MemberNodes(), 0
	for _, n := range members {
		if n.Role == "control-plane" {
			cps++
		}
	}
	ha := cps >= 3
	if op.Kind == mec.OperationScale || failure == nil {
		// A failed repair keeps the count asked for: the next repairs add
		// what is missing.
		r.Spec.NodeCount, r.Spec.HAControlPlane = len(members), &ha
	}
	r.Status = mec.Ready
	if failure == nil {
		detail := fmt.Sprintf("%d -> %d nodes", op.From, len(members))
		if op.Kind == mec.OperationRepair {
			detail = fmt.Sprintf("replaced %d lost nodes (%s)", len(op.Remove), strings.TrimPrefix(op.Detail, "lost "))
			if op.EndpointMoved {
				detail += fmt.Sprintf("; the endpoint moved to node %d: fetch the kubeconfig again", r.EndpointNode)
			}
		}
		r.DegradedCause = ""
		r.EndOperation(mec.OutcomeSucceeded, detail, now)
		return op
	}
	if op.Kind == mec.OperationRepair {
		// The lost nodes are out; what replaces them did not join.
		r.Status = mec.Degraded
		r.DegradedCause = tail(fmt.Sprintf("repair %d failed: %s", op.Number, causeText(failure)), 2000)
	}
	for i := range r.Steps {
		if st := &r.Steps[i]; st.Outcome == mec.OutcomeRunning {
			end := now
			st.Outcome, st.EndedAt, st.Seconds = mec.OutcomeFailed, &end, end.Sub(st.StartedAt).Seconds()
		}
	}
	r.EndOperation(mec.OutcomeFailed, tail(fmt.Sprintf("%s; the MEC has %d nodes", causeText(failure), len(members)), 2000), now)
	return op
}
