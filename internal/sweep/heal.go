package sweep

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mecd/mecd/internal/lifecycle"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/store"
)

// Healing: every run looks at the READY and DEGRADED MECs' nodes as EC2 and
// SSM see them, a few calls per region (not per MEC). A member node is
// lost when its instance is stopping, stopped, shutting down or terminated
// (outside mecd: mecd's own removals mark a node leaving first), or gone
// from EC2's answer, or when its SSM agent has been ConnectionLost for
// longer than LostAfter (commands can no longer reach it). A MEC with lost
// nodes gets a repair (mec.PlanRepair): REPAIRING, then READY again, or
// DEGRADED with the cause when the repair failed, when dqlite lost its
// quorum, or after mec.MaxRepairAttempts failed repairs.

// Fleet is what healing reads of a region's nodes.
type Fleet interface {
	// InstanceStates gives EC2's state name of each instance it lists (an
	// id missing from the answer is unknown to EC2).
	InstanceStates(ctx context.Context, region string, ids []string) (map[string]string, error)
	// AgentPings gives each listed instance's SSM agent status
	// (PingStatus) and its last ping.
	AgentPings(ctx context.Context, region string, ids []string) (map[string]Ping, error)
}

// Ping is an SSM agent's last report.
type Ping struct {
	Status string
	At     time.Time
}

// heal repairs the READY and DEGRADED MECs whose nodes are lost.
func (s *Sweeper) heal(ctx context.Context, now time.Time, rep *Report) error {
	if s.Fleet == nil || s.ScaleArn == "" {
		return nil
	}
	var ms []*mec.MEC
	for _, st := range []mec.Status{mec.Ready, mec.Degraded} {
		page, _, err := s.Store.List(ctx, store.ListQuery{Status: st, Limit: min(max(s.Batch, 1), store.MaxListLimit)})
		if err != nil {
			return fmt.Errorf("list %s MECs: %w", st, err)
		}
		ms = append(ms, page...)
	}
	byRegion := map[string][]string{}
	for _, m := range ms {
		for _, n := range m.MemberNodes() {
			byRegion[m.Region] = append(byRegion[m.Region], n.InstanceID)
		}
	}
	states, pings := map[string]string{}, map[string]Ping{}
	for region, ids := range byRegion {
		st, err := s.Fleet.InstanceStates(ctx, region, ids)
		if err != nil {
			return fmt.Errorf("instance states in %s: %w", region, err)
		}
		pg, err := s.Fleet.AgentPings(ctx, region, ids)
		if err != nil {
			return fmt.Errorf("agent status in %s: %w", region, err)
		}
		for k, v := range st {
			states[k] = v
		}
		for k, v := range pg {
			pings[k] = v
		}
	}
	for _, m := range ms {
		if now.Sub(m.UpdatedAt) < s.Grace {
			continue // just changed: what AWS says may lag it
		}
		lost := s.lostNodes(m, states, pings, now)
		if len(lost) == 0 && len(m.MemberNodes()) >= m.Spec.NodeCount {
			continue
		}
		if err := s.repair(ctx, m, lost, now, rep); err != nil {
			return err
		}
	}
	return nil
}

// lostNodes are m's member nodes EC2 or SSM says are gone, with why.
func (s *Sweeper) lostNodes(m *mec.MEC, states map[string]string, pings map[string]Ping, now time.Time) map[int]string {
	lost := map[int]string{}
	for _, n := range m.MemberNodes() {
		st, known := states[n.InstanceID]
		switch {
		case !known:
			lost[n.Index] = fmt.Sprintf("instance %s is unknown to EC2", n.InstanceID)
		case st != "running" && st != "pending":
			lost[n.Index] = fmt.Sprintf("instance %s is %s (not by mecd)", n.InstanceID, st)
		default:
			if p, ok := pings[n.InstanceID]; ok && p.Status == "ConnectionLost" && now.Sub(p.At) > s.LostAfter {
				lost[n.Index] = fmt.Sprintf("the SSM agent of %s is ConnectionLost since %s", n.InstanceID, p.At.Format(time.RFC3339))
			}
		}
	}
	return lost
}

// errSkip: the record changed under the sweep; the next run looks again.
var errSkip = errors.New("skip")

// update applies fn to the record; ok is false when it did not apply: an
// error, or errSkip (then err is nil).
func (s *Sweeper) update(ctx context.Context, id string, fn func(*mec.MEC) error) (m *mec.MEC, ok bool, err error) {
	m, err = s.Store.Update(ctx, id, fn)
	if errors.Is(err, errSkip) {
		return nil, false, nil
	}
	return m, err == nil, err
}

// repair starts the repair of m's lost nodes, or records why none can run.
func (s *Sweeper) repair(ctx context.Context, m *mec.MEC, lost map[int]string, now time.Time, rep *Report) error {
	// First DEGRADED with what is lost (the record says so even if the
	// repair cannot start), then REPAIRING.
	_, why := mec.PlanRepair(m, lost)
	if why == "" {
		why = lostText(lost)
	}
	degraded, ok, err := s.update(ctx, m.ID, func(r *mec.MEC) error {
		if (r.Status != mec.Ready && r.Status != mec.Degraded) || r.Version != m.Version {
			return errSkip
		}
		if r.Status == mec.Degraded && r.DegradedCause == why {
			return store.ErrNoChange
		}
		r.Status, r.DegradedCause = mec.Degraded, why
		return nil
	})
	if !ok {
		return err
	}
	var cannot string
	updated, ok, err := s.update(ctx, m.ID, func(r *mec.MEC) error {
		cannot = ""
		if r.Status != mec.Degraded || r.Version != degraded.Version {
			return errSkip
		}
		plan, why := mec.PlanRepair(r, lost)
		if why != "" {
			cannot = why
			return store.ErrNoChange // DEGRADED with this cause already
		}
		r.StartRepair(plan, now)
		return nil
	})
	switch {
	case !ok:
		return err
	case cannot != "":
		rep.Degraded = append(rep.Degraded, m.ID)
		s.Log.WarnContext(ctx, "MEC degraded, no repair", "clusterId", m.ID, "cause", cannot)
		return nil
	case updated.Status != mec.Repairing:
		return nil
	}
	op := updated.Operation()
	arn, err := lifecycle.StartScale(ctx, s.SFN, s.ScaleArn, updated, s.CommandTimeout)
	if err != nil {
		s.Log.ErrorContext(ctx, "start repair", "clusterId", m.ID, "error", err)
		_, uerr := s.Store.Update(ctx, m.ID, func(r *mec.MEC) error {
			if o := r.Operation(); r.Status != mec.Repairing || o == nil || o.Number != op.Number || o.ExecutionArn != "" {
				return store.ErrNoChange
			}
			r.Status, r.DegradedCause = mec.Degraded, r.DegradedCause+" (the repair could not be started: the next sweep tries again)"
			r.EndOperation(mec.OutcomeFailed, "the repair workflow could not be started", now)
			return nil
		})
		return uerr
	}
	if _, err := s.Store.Update(ctx, m.ID, func(r *mec.MEC) error {
		if o := r.Operation(); o != nil && o.Number == op.Number && o.ExecutionArn == "" {
			o.ExecutionArn = arn
			return nil
		}
		return store.ErrNoChange
	}); err != nil {
		s.Log.WarnContext(ctx, "record repair execution", "clusterId", m.ID, "execution", arn, "error", err)
	}
	rep.Repairs = append(rep.Repairs, m.ID)
	s.Log.InfoContext(ctx, "repair started", "clusterId", m.ID, "operation", op.Number, "lost", op.Detail, "execution", arn)
	return nil
}

// lostText says which nodes are lost, in index order.
func lostText(lost map[int]string) string {
	idx := slices.Sorted(maps.Keys(lost))
	parts := make([]string, 0, len(idx))
	for _, i := range idx {
		parts = append(parts, fmt.Sprintf("node %d: %s", i, lost[i]))
	}
	return strings.Join(parts, "; ")
}
