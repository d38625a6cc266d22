package mec

import (
	"slices"
	"strings"
	"testing"

	"github.com/mecd/mecd/internal/spec"
)

func TestPlanRepair(t *testing.T) {
	c, w := spec.RoleControlPlane, spec.RoleWorker
	tests := []struct {
		name      string
		nodes     string
		lost      []int
		failed    int // repairs that failed in a row before
		add       []spec.Role
		node0     int
		cannot    string // part of the refusal
		missingOf int    // spec node count above the members (a failed repair's)
	}{
		{"a worker", "cccww", []int{4}, 0, []spec.Role{w}, 0, "", 0},
		{"node 0 moves the endpoint", "ccc", []int{0}, 0, []spec.Role{c}, 1, "", 0},
		{"node 0 and a worker", "cccw", []int{0, 3}, 0, []spec.Role{c, w}, 1, "", 0},
		{"2 of 3 voters: no quorum", "ccc", []int{1, 2}, 0, nil, 0, "no quorum", 0},
		{"the only control plane of a non-HA MEC", "cw", []int{0}, 0, nil, 0, "no quorum", 0},
		{"node 0 of 2 (HA off): the only voter", "cc", []int{0}, 0, nil, 0, "no quorum", 0},
		{"node 1 of 2 (HA off): a spare of dqlite", "cc", []int{1}, 0, []spec.Role{c}, 0, "", 0},
		{"after 3 failed repairs", "ccc", []int{2}, MaxRepairAttempts, nil, 0, "repairs failed in a row", 0},
		{"2 failed repairs: one more try", "ccc", []int{2}, MaxRepairAttempts - 1, []spec.Role{c}, 0, "", 0},
		{"a node a failed repair did not replace", "cc", nil, 1, []spec.Role{c}, 0, "", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := cluster(tc.nodes)
			m.Spec.NodeCount += tc.missingOf
			if tc.missingOf > 0 {
				ha := true
				m.Spec.HAControlPlane = &ha
			}
			for i := 0; i < tc.failed; i++ {
				m.Operations = append(m.Operations, Operation{Number: i + 1, Kind: OperationRepair, Outcome: OutcomeFailed, Detail: "join failed"})
			}
			lost := map[int]string{}
			for _, i := range tc.lost {
				lost[i] = "instance terminated"
			}
			p, cannot := PlanRepair(m, lost)
			if tc.cannot != "" {
				if !strings.Contains(cannot, tc.cannot) {
					t.Fatalf("refusal %q, want it to say %q", cannot, tc.cannot)
				}
				return
			}
			if cannot != "" {
				t.Fatalf("refused: %s", cannot)
			}
			if !slices.Equal(p.Add, tc.add) || p.Node0 != tc.node0 || !slices.Equal(p.Remove, tc.lost) {
				t.Fatalf("plan %+v", p)
			}
			op := m.StartRepair(p, m.CreatedAt)
			if m.Status != Repairing || op.Kind != OperationRepair || op.EndpointMoved != (tc.node0 != 0) || m.EndpointNode != tc.node0 {
				t.Fatalf("after StartRepair: %s %+v, endpoint node %d", m.Status, op, m.EndpointNode)
			}
			for _, i := range tc.lost {
				if n := m.Nodes[i]; n.State != NodeLeaving || !strings.Contains(n.Reason, "instance terminated") {
					t.Fatalf("lost node %d: %+v", i, n)
				}
			}
		})
	}
}
