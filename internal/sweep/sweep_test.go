package sweep

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/store"
)

// fakeStore answers Expired from a fixed list per status.
type fakeStore struct {
	expired map[mec.Status][]*mec.MEC
	updated []string
}

func (f *fakeStore) Expired(_ context.Context, st mec.Status, _ time.Time, limit int) ([]*mec.MEC, bool, error) {
	all := f.expired[st]
	return all[:min(limit, len(all))], len(all) > limit, nil
}

func (f *fakeStore) List(context.Context, store.ListQuery) ([]*mec.MEC, string, error) {
	return nil, "", nil
}

func (f *fakeStore) Update(_ context.Context, id string, fn func(*mec.MEC) error) (*mec.MEC, error) {
	f.updated = append(f.updated, id)
	m := &mec.MEC{ID: id}
	return m, fn(m)
}

// fakeSFN starts every teardown except those already running.
type fakeSFN struct{ running map[string]bool }

func (f *fakeSFN) StartExecution(_ context.Context, in *sfn.StartExecutionInput, _ ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error) {
	if f.running[aws.ToString(in.Name)] {
		return nil, &sfntypes.ExecutionAlreadyExists{}
	}
	return &sfn.StartExecutionOutput{ExecutionArn: aws.String("arn:aws:states:us-east-1:1:execution:td:" + aws.ToString(in.Name))}, nil
}

func (f *fakeSFN) DescribeExecution(context.Context, *sfn.DescribeExecutionInput, ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	return &sfn.DescribeExecutionOutput{Status: sfntypes.ExecutionStatusRunning}, nil
}

func TestSweep(t *testing.T) {
	past := time.Now().Add(-time.Hour)
	mk := func(id string) *mec.MEC { return &mec.MEC{ID: id, ExpiresAt: &past} }
	tests := []struct {
		name                    string
		ready, failed           []*mec.MEC
		running                 []string
		batch                   int
		started, alreadyRunning []string
		deferred                bool
	}{
		{name: "nothing expired", batch: 5},
		{name: "ready and failed MECs", ready: []*mec.MEC{mk("mec-a")}, failed: []*mec.MEC{mk("mec-b")}, batch: 5,
			started: []string{"mec-a", "mec-b"}},
		{name: "a running teardown is left alone", ready: []*mec.MEC{mk("mec-a"), mk("mec-c")}, running: []string{"teardown-mec-c"}, batch: 5,
			started: []string{"mec-a"}, alreadyRunning: []string{"mec-c"}},
		{name: "more than a batch defers the rest", ready: []*mec.MEC{mk("mec-a"), mk("mec-b")}, failed: []*mec.MEC{mk("mec-c")}, batch: 1,
			started: []string{"mec-a"}, deferred: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &fakeStore{expired: map[mec.Status][]*mec.MEC{mec.Ready: tt.ready, mec.Failed: tt.failed}}
			running := map[string]bool{}
			for _, n := range tt.running {
				running[n] = true
			}
			s := &Sweeper{Store: st, SFN: &fakeSFN{running: running}, TeardownArn: "arn:aws:states:us-east-1:1:stateMachine:td",
				Batch: tt.batch, Log: slog.New(slog.DiscardHandler)}
			rep, err := s.Run(context.Background(), events.CloudWatchEvent{ID: "e"})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rep.Started, tt.started) || !slices.Equal(rep.Running, tt.alreadyRunning) || rep.Deferred != tt.deferred {
				t.Fatalf("report %+v, want started %v running %v deferred %v", rep, tt.started, tt.alreadyRunning, tt.deferred)
			}
			// Every MEC whose teardown runs reads DELETING, started now or before.
			if want := append(slices.Clone(tt.started), tt.alreadyRunning...); !sameSet(st.updated, want) {
				t.Fatalf("recorded teardowns on %v, want %v", st.updated, want)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}
