package main

import (
	"testing"
	"time"

	"github.com/mecd/mecd/internal/backend"
)

// The transition formulas the report uses hold for the repository's ASL.
func TestTransitionFormulasMatchTheASL(t *testing.T) {
	root, err := backend.RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	m, err := newTransitionModel(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.prov.walk("no such state", 1); err == nil {
		t.Error("walking to a missing loop state did not fail")
	}
	// Two checks: prepare, launch, choice, check, choice, wait, check, choice, install-and-join, finalize, ready.
	p, err := m.prov.walk(provisionLoop, 2)
	if err != nil || len(p) != 11 || p[5] != "Wait for the nodes" {
		t.Fatalf("walk with two checks: %v %v", p, err)
	}
}

func TestTransitionsFromInvocations(t *testing.T) {
	prov := usage{Fns: map[string]fnUse{
		"prepare": {Count: 1}, "launch-nodes": {Count: 2}, "check-nodes": {Count: 4}, // one wait for the profile
		"node-command":  {Count: 4}, // install-and-join, reset, join, finalize
		"record-status": {Count: 1},
	}}
	if got, k := provisionTransitions(prov, 1); got != provisionFormula(4)+3+2 || k != 4 {
		t.Errorf("provision transitions %d (k %d), want %d", got, k, provisionFormula(4)+3+2)
	}
	tear := usage{Fns: map[string]fnUse{"cleanup": {Count: 3}, "record-status": {Count: 2}}}
	if got, c := teardownTransitions(tear, 1); got != teardownFormula(3) || c != 3 {
		t.Errorf("teardown transitions %d (c %d), want %d", got, c, teardownFormula(3))
	}
}

func TestBilledMsRoundsUpEachInvocation(t *testing.T) {
	u := fnUse{Durations: []time.Duration{1500 * time.Microsecond, 2 * time.Millisecond, 10 * time.Microsecond}}
	if got := u.BilledMs(); got != 2+2+1 {
		t.Errorf("billed %d ms, want 5", got)
	}
	ds := []time.Duration{5, 1, 4, 2, 3}
	if pct(ds, 50) != 3 || pct(ds, 99) != 5 || pct(nil, 50) != 0 {
		t.Errorf("percentiles of %v: p50 %v p99 %v", ds, pct(ds, 50), pct(ds, 99))
	}
}

// TestOpsPaths: the day-2 walk of the scale workflow: 11 states with one
// check and one look, and each further look or check goes round a loop
// (wait, task, choice).
func TestOpsPaths(t *testing.T) {
	root, err := backend.RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	d, err := loadASL(root, "statemachine/scale.asl.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		kind string
		k, c int
		want int
	}{
		{"scale", 1, 1, 11}, {"scale", 2, 1, 14}, {"scale", 1, 3, 17}, {"repair", 1, 1, 11}, {"repair", 1, 2, 14},
	}
	for _, tc := range tests {
		p, err := opsPath(d, tc.kind, tc.k, tc.c)
		if err != nil || len(p) != tc.want {
			t.Errorf("%s k=%d c=%d: %d states %v (%v), want %d", tc.kind, tc.k, tc.c, len(p), p, err, tc.want)
		}
	}
	if p, _ := opsPath(d, "repair", 1, 1); p[6] != "Remove the lost nodes" {
		t.Errorf("a repair removes the lost nodes before the replacements join: %v", p)
	}
}
