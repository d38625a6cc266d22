package cli

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"
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

func TestOwnerShort(t *testing.T) {
	tests := []struct{ arn, want string }{
		{"arn:aws:sts::123456789012:assumed-role/Dev/alice", "Dev/alice"},
		{"arn:aws:iam::123456789012:user/bob", "user/bob"},
		{"arn:aws:iam::123456789012:root", "root"},
		{"arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/alice@example.com", "AWSReservedSSO_Admini…/alice@example.com"},
		{"", "-"},
	}
	for _, tc := range tests {
		if got := ownerShort(tc.arn); got != tc.want {
			t.Errorf("ownerShort(%q) = %q, want %q", tc.arn, got, tc.want)
		}
	}
}

// The listing's OWNER column and the detail's Owner line; a MEC without an
// owner keeps its columns ("-").
func TestOutputShowsTheOwner(t *testing.T) {
	now := time.Now()
	owned := &mec.MEC{Name: "edge-a", ID: "mec-a", Status: mec.Ready, Owner: "arn:aws:sts::123456789012:assumed-role/Dev/alice", CreatedAt: now}
	console := &mec.MEC{Name: "edge-b", ID: "mec-b", Status: mec.Ready, CreatedAt: now}
	var b bytes.Buffer
	if err := writeTable(&b, []*mec.MEC{owned, console}, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	head := strings.Fields(lines[0])
	col := slices.Index(head, "OWNER")
	if len(lines) != 3 || col < 0 {
		t.Fatalf("table:\n%s", b.String())
	}
	for i, want := range []string{"Dev/alice", "-"} {
		if f := strings.Fields(lines[i+1]); len(f) <= col || f[col] != want {
			t.Errorf("line %d: %q, want %s in column %d", i+1, lines[i+1], want, col)
		}
	}
	b.Reset()
	if err := writeMEC(&b, owned, now); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^Owner:\s+` + regexp.QuoteMeta(owned.Owner) + `$`).MatchString(b.String()) {
		t.Errorf("detail has no owner line:\n%s", b.String())
	}
}
