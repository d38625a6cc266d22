package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/spec"
	"github.com/mecd/mecd/internal/store"
)

// newStore runs the store against an in-process kumo DynamoDB (no front:
// kumo sends no CRC32, so this local client skips checking it).
func newStore(t *testing.T) *store.Store {
	t.Helper()
	c, table := store.NewTestTable(t, "records")
	return &store.Store{DB: c, Table: table, Retention: time.Hour}
}

func newMEC(name string) *mec.MEC {
	id := mec.NewID(time.Now())
	return &mec.MEC{ID: id, Name: name, Status: mec.Creating, Region: "us-east-1", Spec: spec.Spec{Name: name}}
}

func TestCreateClaimsTheName(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a := newMEC("edge-1")
	if err := s.Create(ctx, a, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, newMEC("edge-1"), nil); !errors.Is(err, store.ErrNameTaken) {
		t.Fatalf("second create with the same name: %v, want ErrNameTaken", err)
	}
	if owner, _ := s.NameOwner(ctx, "edge-1"); owner != a.ID {
		t.Fatalf("name owner %q, want %q", owner, a.ID)
	}
	// DELETED releases the name in the same transaction.
	if _, err := s.Update(ctx, a.ID, func(m *mec.MEC) error { m.Status = mec.Deleted; return nil }); err != nil {
		t.Fatal(err)
	}
	if owner, _ := s.NameOwner(ctx, "edge-1"); owner != "" {
		t.Fatalf("name still owned by %q after DELETED", owner)
	}
	if err := s.Create(ctx, newMEC("edge-1"), nil); err != nil {
		t.Fatalf("create after the name was freed: %v", err)
	}
	got, err := s.Get(ctx, a.ID)
	if err != nil || got.Status != mec.Deleted || got.DeletedAt == nil {
		t.Fatalf("deleted record: %+v %v", got, err)
	}
	if _, err := s.Get(ctx, "mec-nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
}

func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	m := newMEC("edge-2")
	if err := s.Create(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	const writers = 6
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := s.Update(ctx, m.ID, func(r *mec.MEC) error {
				r.StartStep(fmt.Sprintf("step-%d", i), time.Now())
				return nil
			})
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Get(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Steps) != writers || got.Version != 1+writers {
		t.Fatalf("steps %d version %d: an update was lost", len(got.Steps), got.Version)
	}
}

func TestSteps(t *testing.T) {
	m := newMEC("x")
	t0 := time.Unix(1000, 0)
	m.StartStep("join", t0)
	m.StartStep("join", t0.Add(time.Second)) // a retried invocation of the same attempt
	if len(m.Steps) != 1 || m.RunningStep() != "join" {
		t.Fatalf("steps %+v", m.Steps)
	}
	m.EndStep("join", mec.OutcomeFailed, "node 1 failed", t0.Add(2*time.Second))
	m.StartStep("join", t0.Add(3*time.Second))
	if st := m.Step("join"); st.Attempt != 2 || st.Outcome != mec.OutcomeRunning {
		t.Fatalf("second attempt %+v", st)
	}
	m.EndStep("join", mec.OutcomeSucceeded, "", t0.Add(5*time.Second))
	if st := m.Step("join"); st.Seconds != 2 || m.RunningStep() != "" {
		t.Fatalf("ended %+v running %q", st, m.RunningStep())
	}
}

func TestNewIDSortsByTime(t *testing.T) {
	var ids []string
	seen := map[string]bool{}
	t0 := time.Now()
	for i := 0; i < 200; i++ {
		id := mec.NewID(t0.Add(time.Duration(i) * time.Millisecond))
		if seen[id] || len(id) != 30 {
			t.Fatalf("id %q duplicate or wrong length", id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("ids do not sort by creation time")
	}
}

// A status event writes nothing for a command nobody registered (the
// sender learns earlier statuses from SSM); a registered wait takes
// statuses, one claim resumes it, a released claim can be taken again, and
// DeleteWaits removes it.
func TestCommandWait(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.SetWaitStatus(ctx, "cmd-1", "i-1", "Success"); !errors.Is(err, store.ErrNotFound) { // the event came first
		t.Fatalf("status of an unregistered command: %v, want ErrNotFound", err)
	}
	w, err := s.RegisterWait(ctx, store.Wait{CommandID: "cmd-1", Token: "tok-1", ClusterID: "mec-1", Step: "install",
		Region: "us-east-1", Instances: []string{"i-2", "i-1"}})
	if err != nil || w.Token != "tok-1" || !slices.Equal(w.Instances, []string{"i-1", "i-2"}) || len(w.Statuses) != 0 {
		t.Fatalf("registered: %+v %v", w, err)
	}
	if w, err = s.SetWaitStatus(ctx, "cmd-1", "i-1", "Success"); err != nil || w.Statuses["i-1"] != "Success" {
		t.Fatalf("status: %+v %v", w, err)
	}
	// A re-registration (a new task token) keeps the first targets.
	if w, err = s.RegisterWait(ctx, store.Wait{CommandID: "cmd-1", Token: "tok-2", Instances: []string{"i-9"}}); err != nil || len(w.Instances) != 2 {
		t.Fatalf("re-registered: %+v %v", w, err)
	}
	for i, want := range []bool{true, false} {
		if ok, err := s.ClaimWait(ctx, "cmd-1", "tok-2"); err != nil || ok != want {
			t.Fatalf("claim %d: %v %v, want %v", i, ok, err, want)
		}
	}
	if err := s.ReleaseWait(ctx, "cmd-1", "tok-2"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.ClaimWait(ctx, "cmd-1", "tok-2"); err != nil || !ok {
		t.Fatalf("claim after release: %v %v", ok, err)
	}
	if err := s.DeleteWaits(ctx, []string{"cmd-1", "cmd-never-registered"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetWaitStatus(ctx, "cmd-1", "i-2", "Success"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("status after DeleteWaits: %v, want ErrNotFound", err)
	}
	if ok, err := s.ClaimWait(ctx, "cmd-1", "tok-3"); err != nil || ok {
		t.Fatalf("claim of a deleted wait: %v %v, want false", ok, err)
	}
	if _, err := s.GetWait(ctx, "cmd-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetWait after DeleteWaits (and a late claim): %v, want ErrNotFound", err)
	}
}
