package sweep

import (
	"context"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/mecd/mecd/internal/lifecycle"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/store"
)

// Store is what the sweeper needs of the record store.
type Store interface {
	Expired(ctx context.Context, status mec.Status, now time.Time, limit int) ([]*mec.MEC, bool, error)
	List(ctx context.Context, q store.ListQuery) ([]*mec.MEC, string, error)
	Update(ctx context.Context, id string, fn func(*mec.MEC) error) (*mec.MEC, error)
}

// Sweeper starts the teardown of expired MECs.
type Sweeper struct {
	Store       Store
	SFN         lifecycle.Starter
	TeardownArn string
	RollbackArn string
	// ScaleArn runs repairs (the scale workflow); with Fleet nil or it
	// empty, no MEC is healed.
	ScaleArn string
	Fleet    Fleet
	// LostAfter: an SSM agent ConnectionLost for longer is taken for a lost
	// node (an agent restart or a short network cut is not).
	LostAfter time.Duration
	// CommandTimeout bounds each node command of a repair.
	CommandTimeout time.Duration
	// StaleAfter: a CREATING MEC of unknown execution that nothing updated
	// for this long is taken for dead (longer than any quiet spell of a
	// healthy provisioning: a node command and its retry).
	StaleAfter time.Duration
	// Grace: a MEC updated more recently is left alone (the API just created
	// it and is starting its execution, or a step is writing).
	Grace time.Duration
	// Batch bounds the teardowns started per run; the next run takes the rest.
	Batch int
	Log   *slog.Logger
	Now   func() time.Time
}

// Report says what one run did.
type Report struct {
	Expired  int      `json:"expired"`
	Started  []string `json:"started"`
	Running  []string `json:"alreadyRunning"`
	Deferred bool     `json:"deferred"` // more expired MECs than the batch: the next run continues
	// Reconciliation.
	TeardownsRestarted []string `json:"teardownsRestarted,omitempty"`
	RolledBack         []string `json:"rolledBack,omitempty"`
	Undone             []string `json:"undone,omitempty"`
	// Healing.
	Repairs  []string `json:"repairs,omitempty"`
	Degraded []string `json:"degraded,omitempty"`
}

// Statuses whose MECs expire.
var sweptStatuses = []mec.Status{mec.Ready, mec.Failed}

// Run handles one scheduled event.
func (s *Sweeper) Run(ctx context.Context, ev events.CloudWatchEvent) (Report, error) {
	now := time.Now().UTC()
	if s.Now != nil {
		now = s.Now().UTC()
	}
	batch := max(s.Batch, 1)
	var rep Report
	for _, status := range sweptStatuses {
		left := batch - len(rep.Started) - len(rep.Running)
		if left <= 0 {
			rep.Deferred = true
			break
		}
		expired, more, err := s.Store.Expired(ctx, status, now, left)
		if err != nil {
			return rep, err
		}
		rep.Deferred = rep.Deferred || more
		for _, m := range expired {
			rep.Expired++
			if err := s.teardown(ctx, m, status, &rep); err != nil {
				return rep, err
			}
		}
	}
	if err := s.reconcile(ctx, now, &rep); err != nil {
		return rep, err
	}
	if err := s.heal(ctx, now, &rep); err != nil {
		return rep, err
	}
	s.Log.InfoContext(ctx, "sweep done", "event", ev.ID, "expired", rep.Expired, "started", len(rep.Started),
		"alreadyRunning", len(rep.Running), "deferred", rep.Deferred,
		"teardownsRestarted", len(rep.TeardownsRestarted), "rolledBack", len(rep.RolledBack),
		"repairs", len(rep.Repairs), "degraded", len(rep.Degraded))
	return rep, nil
}

func (s *Sweeper) teardown(ctx context.Context, m *mec.MEC, status mec.Status, rep *Report) error {
	updated, started, err := lifecycle.Teardown(ctx, s.SFN, s.Store, s.TeardownArn, m)
	if updated == nil {
		return err
	}
	arn := updated.TeardownExecutionArn
	if !started {
		rep.Running = append(rep.Running, m.ID)
		s.Log.InfoContext(ctx, "teardown already running", "clusterId", m.ID, "execution", arn)
		return nil
	}
	rep.Started = append(rep.Started, m.ID)
	s.Log.InfoContext(ctx, "teardown started for an expired MEC", "clusterId", m.ID, "name", m.Name,
		"status", status, "expiresAt", m.ExpiresAt.Format(time.RFC3339), "execution", arn, "recordError", err)
	return nil
}
