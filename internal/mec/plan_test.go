package mec

import (
	"slices"
	"testing"
	"time"

	"github.com/mecd/mecd/internal/spec"
)

func TestPlanForFollowsThePlan(t *testing.T) {
	all := Plan()
	noToken := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == StepJoinToken })
	tests := []struct {
		name  string
		nodes int
		steps []string // recorded
		want  []string
	}{
		{"three nodes", 3, nil, all},
		{"one node registers no join token", 1, nil, noToken},
		{"retries, resets, rollback and teardown are not progress", 3, []string{StepReset, StepRollback, StepTeardown, StepStart}, all},
		{"a step a newer workflow records counts, after the plan", 3, []string{StepRecord, "upgrade"}, append(slices.Clone(all), "upgrade")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &MEC{Spec: spec.Spec{NodeCount: tt.nodes}}
			for _, s := range tt.steps {
				m.Steps = append(m.Steps, Step{Name: s, Outcome: OutcomeSucceeded})
			}
			if got := m.PlanFor(); !slices.Equal(got, tt.want) {
				t.Fatalf("PlanFor = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestComputeProgressCountsLatestAttempts(t *testing.T) {
	now := time.Now()
	m := New(spec.Spec{Name: "edge-1", NodeCount: 3}, "test", now)
	m.StartStep(StepResolve, now)
	m.EndStep(StepResolve, OutcomeSucceeded, "", now)
	m.StartStep(StepSecurityGroup, now)
	m.EndStep(StepSecurityGroup, OutcomeFailed, "", now)
	m.StartStep(StepSecurityGroup, now) // a retry: its latest attempt runs
	p := m.ComputeProgress()
	if p.Done != 2 || p.Running != StepSecurityGroup || len(p.Steps) != len(Plan()) || m.Progress != p {
		t.Fatalf("progress %+v", p)
	}
}

func TestTeardownExecutionNames(t *testing.T) {
	const sm = "arn:aws:states:eu-west-1:123456789012:stateMachine:mecd-teardown"
	for attempt, want := range map[int]string{0: "teardown-mec-1", 1: "teardown-mec-1", 2: "teardown-mec-1-2"} {
		if got := TeardownExecution("mec-1", attempt); got != want {
			t.Errorf("attempt %d: %s, want %s", attempt, got, want)
		}
	}
	if got := ExecutionArn(sm, "mec-1"); got != "arn:aws:states:eu-west-1:123456789012:execution:mecd-teardown:mec-1" {
		t.Errorf("ExecutionArn = %s", got)
	}
	if got := ExecutionArn("not-an-arn", "x"); got != "" {
		t.Errorf("ExecutionArn of a bad ARN = %q", got)
	}
}

func TestIDTimeReadsNewID(t *testing.T) {
	at := time.Date(2026, 12, 2, 8, 30, 0, 123e6, time.UTC)
	if got, ok := IDTime(NewID(at)); !ok || !got.Equal(at) {
		t.Fatalf("IDTime = %v %v, want %v", got, ok, at)
	}
	if _, ok := IDTime("mec-nope"); ok {
		t.Fatal("a malformed id has a time")
	}
}
