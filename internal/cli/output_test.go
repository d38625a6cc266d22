package cli

import (
	"fmt"
	"testing"
	"time"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/spec"
)

// The CLI's progress is the plan's, step by step: after k steps succeeded
// and step k+1 runs, a CREATING MEC's line says so with the plan's names.
func TestDetailFollowsThePlan(t *testing.T) {
	now := time.Now()
	for _, nodes := range []int{1, 3} {
		m := &mec.MEC{Status: mec.Creating, Spec: spec.Spec{NodeCount: nodes}}
		plan := m.PlanFor()
		for k, step := range plan {
			m.StartStep(step, now)
			want := fmt.Sprintf("step %d/%d: %s", k+1, len(plan), step)
			if got := detail(m); got != want {
				t.Fatalf("%d nodes, after %d steps: %q, want %q", nodes, k, got, want)
			}
			m.EndStep(step, mec.OutcomeSucceeded, "", now)
		}
		if got, want := detail(m), fmt.Sprintf("step %d/%d", len(plan), len(plan)); got != want {
			t.Fatalf("%d nodes, all done: %q, want %q", nodes, got, want)
		}
	}
}
