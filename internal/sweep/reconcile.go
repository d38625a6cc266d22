package sweep

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/mecd/mecd/internal/lifecycle"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/store"
)

// Reconciliation: no MEC stays in a transient status. On every run, with or
// without a TTL:
//   - a DELETING MEC whose teardown is not running gets a new one (numbered,
//     at most lifecycle's 20 attempts, then it stays DELETING with the cause);
//   - a CREATING MEC whose provisioning is no longer running (timed out after
//     its 2 h, aborted, lost) is rolled back and recorded FAILED; one whose
//     execution is unknown (a console run) is taken for dead once nothing
//     updated it for StaleAfter;
//   - a SCALING or REPAIRING MEC whose operation's execution is no longer
//     running (timed out, aborted) gets the operation's undo, which ends it
//     READY (a repair: DEGRADED) with the operation failed.

// reconcile looks at every CREATING, DELETING, SCALING and REPAIRING MEC,
// at most Batch of each.
func (s *Sweeper) reconcile(ctx context.Context, now time.Time, rep *Report) error {
	for _, st := range []mec.Status{mec.Deleting, mec.Creating, mec.Scaling, mec.Repairing} {
		if st.Changing() && s.ScaleArn == "" {
			continue
		}
		ms, _, err := s.Store.List(ctx, store.ListQuery{Status: st, Limit: min(max(s.Batch, 1), store.MaxListLimit)})
		if err != nil {
			return fmt.Errorf("list %s MECs: %w", st, err)
		}
		for _, m := range ms {
			if now.Sub(m.UpdatedAt) < s.Grace {
				continue
			}
			var err error
			switch {
			case st == mec.Deleting:
				err = s.restartTeardown(ctx, m, rep)
			case st.Changing():
				err = s.undoIfDead(ctx, m, now, rep)
			default:
				err = s.rollBackIfDead(ctx, m, now, rep)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// running reports whether an execution runs, and how it ended if not ("" if
// it does not exist).
func (s *Sweeper) running(ctx context.Context, arn string) (bool, string, error) {
	out, err := s.SFN.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	var nf *sfntypes.ExecutionDoesNotExist
	switch {
	case errors.As(err, &nf):
		return false, "", nil
	case err != nil:
		return false, "", fmt.Errorf("describe execution %s: %w", arn, err)
	}
	return out.Status == sfntypes.ExecutionStatusRunning, string(out.Status), nil
}

func (s *Sweeper) restartTeardown(ctx context.Context, m *mec.MEC, rep *Report) error {
	if m.TeardownExecutionArn != "" {
		if run, _, err := s.running(ctx, m.TeardownExecutionArn); err != nil || run {
			return err
		}
	}
	updated, started, err := lifecycle.Teardown(ctx, s.SFN, s.Store, s.TeardownArn, m)
	if updated == nil {
		// Out of numbered attempts, or Step Functions refused: the cause stays
		// on the record, and the next run tries again.
		s.Log.WarnContext(ctx, "cannot restart the teardown", "clusterId", m.ID, "error", err)
		return nil
	}
	if started {
		rep.TeardownsRestarted = append(rep.TeardownsRestarted, m.ID)
		s.Log.InfoContext(ctx, "teardown restarted", "clusterId", m.ID, "execution", updated.TeardownExecutionArn)
	}
	return nil
}

func (s *Sweeper) rollBackIfDead(ctx context.Context, m *mec.MEC, now time.Time, rep *Report) error {
	why := ""
	if m.ExecutionArn != "" {
		run, status, err := s.running(ctx, m.ExecutionArn)
		if err != nil || run {
			return err
		}
		why = fmt.Sprintf("the provisioning execution ended %s without recording a result", orGone(status))
	} else {
		if now.Sub(m.UpdatedAt) < s.StaleAfter {
			return nil
		}
		why = fmt.Sprintf("nothing updated the MEC for %v and no provisioning execution is known", now.Sub(m.UpdatedAt).Round(time.Second))
	}
	if step := m.RunningStep(); step != "" {
		why += " (it was at step " + step + ")"
	}
	arn, started, err := lifecycle.StartRollback(ctx, s.SFN, s.RollbackArn, m, "ProvisioningLost", why)
	if err != nil {
		return err
	}
	if started {
		rep.RolledBack = append(rep.RolledBack, m.ID)
		s.Log.InfoContext(ctx, "rolling back a dead provisioning", "clusterId", m.ID, "why", why, "execution", arn)
	}
	return nil
}

func orGone(status string) string {
	if status == "" {
		return "(it no longer exists)"
	}
	return status
}

func (s *Sweeper) undoIfDead(ctx context.Context, m *mec.MEC, now time.Time, rep *Report) error {
	op := m.Operation()
	if op == nil {
		return nil
	}
	why := ""
	if op.ExecutionArn != "" {
		run, status, err := s.running(ctx, op.ExecutionArn)
		if err != nil || run {
			return err
		}
		why = fmt.Sprintf("the %s execution ended %s without recording its outcome", op.Kind, orGone(status))
	} else {
		if now.Sub(m.UpdatedAt) < s.StaleAfter {
			return nil
		}
		why = fmt.Sprintf("nothing updated the MEC for %v and no %s execution is known", now.Sub(m.UpdatedAt).Round(time.Second), op.Kind)
	}
	arn, started, err := lifecycle.StartUndo(ctx, s.SFN, s.ScaleArn, m, why)
	if err != nil {
		return err
	}
	if started {
		rep.Undone = append(rep.Undone, m.ID)
		s.Log.InfoContext(ctx, "undoing a dead operation", "clusterId", m.ID, "operation", op.Number, "why", why, "execution", arn)
	}
	return nil
}
