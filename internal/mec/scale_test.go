package mec

import (
	"slices"
	"strings"
	"testing"

	"github.com/mecd/mecd/internal/spec"
)

// cluster makes a READY record whose member nodes have the given roles
// ("c" control plane, "w" worker), indices 0..n-1.
func cluster(roles string) *MEC {
	m := &MEC{ID: "mec-x", Status: Ready}
	cp := 0
	for i, r := range roles {
		role := spec.RoleWorker
		if r == 'c' {
			role, cp = spec.RoleControlPlane, cp+1
		}
		m.Nodes = append(m.Nodes, Node{Index: i, InstanceID: "i-" + string(rune('a'+i)), Role: string(role)})
	}
	ha := cp >= 3
	m.Spec = spec.Spec{NodeCount: len(roles), HAControlPlane: &ha}
	return m
}

func TestPlanScale(t *testing.T) {
	f, tr := false, true
	c, w := spec.RoleControlPlane, spec.RoleWorker
	tests := []struct {
		name    string
		nodes   string
		to      int
		ha      *bool
		remove  []int
		add     []spec.Role
		wantHA  bool
		refused bool
	}{
		{"3 to 5 adds workers", "ccc", 5, nil, nil, []spec.Role{w, w}, true, false},
		{"5 to 3 removes the newest workers", "cccww", 3, nil, []int{4, 3}, nil, true, false},
		{"3 to 2 without haControlPlane false is refused", "ccc", 2, nil, nil, nil, false, true},
		{"5 to 1 with haControlPlane true is refused", "cccww", 1, &tr, nil, nil, false, true},
		{"3 to 1 with haControlPlane false removes the newest control plane", "ccc", 1, &f, []int{2, 1}, nil, false, false},
		{"3 to 2 with haControlPlane false keeps 2 control-plane nodes", "ccc", 2, &f, []int{2}, nil, false, false},
		{"1 to 3 completes the control plane", "c", 3, nil, nil, []spec.Role{c, c}, true, false},
		{"2 non-HA to 3 replaces the worker", "cw", 3, nil, []int{1}, []spec.Role{c, c}, true, false},
		{"1 to 2 adds a worker", "c", 2, nil, nil, []spec.Role{w}, false, false},
		{"1 to 4 non-HA adds workers", "c", 4, &f, nil, []spec.Role{w, w, w}, false, false},
		{"5 to 4 removes one worker", "cccww", 4, nil, []int{4}, nil, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := cluster(tc.nodes)
			p, fields := PlanScale(m, spec.Scale{NodeCount: tc.to, HAControlPlane: tc.ha})
			if tc.refused {
				if fields["nodeCount"] == "" {
					t.Fatalf("not refused: %+v", p)
				}
				return
			}
			if fields != nil {
				t.Fatalf("refused: %v", fields)
			}
			if !slices.Equal(p.Remove, tc.remove) || !slices.Equal(p.Add, tc.add) {
				t.Fatalf("remove %v add %v, want %v %v", p.Remove, p.Add, tc.remove, tc.add)
			}
			if p.Spec.NodeCount != tc.to || *p.Spec.HAControlPlane != tc.wantHA {
				t.Fatalf("spec after: %d nodes, HA %v", p.Spec.NodeCount, *p.Spec.HAControlPlane)
			}
			if got := len(m.MemberNodes()) - len(p.Remove) + len(p.Add); got != tc.to {
				t.Fatalf("%d nodes after the plan, want %d", got, tc.to)
			}
		})
	}
}

// Longhorn keeps 3 replicas on 3 nodes: a MEC with replicated storage does
// not scale below 3, even with haControlPlane false; it scales above.
func TestPlanScaleKeepsReplicatedStorageNodes(t *testing.T) {
	f := false
	for _, tc := range []struct {
		to      int
		ha      *bool
		refused bool
	}{{2, &f, true}, {1, &f, true}, {3, nil, false}, {4, nil, false}} {
		m := cluster("ccc")
		m.Spec.Addons = []string{"dns", "replicated-storage"}
		_, fields := PlanScale(m, spec.Scale{NodeCount: tc.to, HAControlPlane: tc.ha})
		if got := fields["nodeCount"]; tc.refused != (got != "") || (tc.refused && !strings.Contains(got, "must be at least 3 with replicated-storage")) {
			t.Errorf("scale to %d: nodeCount %q, refused want %v", tc.to, got, tc.refused)
		}
	}
}
