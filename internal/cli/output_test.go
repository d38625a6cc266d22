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

// get and list say what a day-2 MEC is doing and what it lost.
func TestDay2Output(t *testing.T) {
	now := time.Now()
	at := now.Add(-time.Minute)
	m := &mec.MEC{ID: "mec-01", Name: "edge", Status: mec.Repairing, Region: "us-east-1", CreatedAt: now.Add(-time.Hour),
		DegradedCause: "node 0: instance i-0a is terminated (not by mecd)",
		Spec:          spec.Spec{Addons: []string{"dns", "edgex"}, DataVolumes: &spec.DataVolumes{Count: 1, SizeGiB: 100}},
		Addons:        []mec.AddonState{{Name: "dns", State: "enabled"}, {Name: "edgex", State: "ready", Seconds: 41}},
		Nodes: []mec.Node{
			{Index: 0, InstanceID: "i-0a", Role: "control-plane", State: mec.NodeTerminated, EndedAt: &at, Reason: "lost: instance i-0a is terminated; replaced by operation 2"},
			{Index: 1, InstanceID: "i-0b", Role: "control-plane"},
			{Index: 3, InstanceID: "i-0d", Role: "control-plane", Operation: 2},
		},
		Operations: []mec.Operation{{Number: 1, Kind: mec.OperationScale, From: 3, To: 4, Outcome: mec.OutcomeSucceeded, StartedAt: at},
			{Number: 2, Kind: mec.OperationRepair, From: 3, To: 3, Outcome: mec.OutcomeRunning, StartedAt: at}},
	}
	var b strings.Builder
	if err := writeMEC(&b, m, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"REPAIRING", "Lost:", "terminated (not by mecd)", "Former nodes:", "replaced by operation 2",
		"added by operation 2", "Operations:", "repair 3 -> 3", "scale 3 -> 4",
		"data 1 x 100 GiB", "dns enabled, edgex ready in 41s"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("get does not show %q:\n%s", want, b.String())
		}
	}
	if d := detail(m); !strings.Contains(d, "node 0") {
		t.Errorf("list detail %q", d)
	}
}
