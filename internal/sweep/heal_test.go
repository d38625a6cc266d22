package sweep

import (
	"strings"
	"testing"
	"time"

	"github.com/mecd/mecd/internal/mec"
)

func TestLostNodes(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	m := &mec.MEC{Nodes: []mec.Node{{Index: 0, InstanceID: "i-0"}, {Index: 1, InstanceID: "i-1"},
		{Index: 2, InstanceID: "i-2", State: mec.NodeLeaving}}}
	tests := []struct {
		name   string
		states map[string]string
		pings  map[string]Ping
		lost   map[int]string // index -> part of why
	}{
		{"all running and Online", map[string]string{"i-0": "running", "i-1": "running"},
			map[string]Ping{"i-0": {"Online", now}, "i-1": {"Online", now}}, nil},
		{"terminated behind mecd's back", map[string]string{"i-0": "terminated", "i-1": "running"}, nil,
			map[int]string{0: "terminated (not by mecd)"}},
		{"stopped", map[string]string{"i-0": "running", "i-1": "stopped"}, nil, map[int]string{1: "stopped"}},
		{"gone from EC2's answer", map[string]string{"i-0": "running"}, nil, map[int]string{1: "unknown to EC2"}},
		{"an agent restart is not a loss", map[string]string{"i-0": "running", "i-1": "running"},
			map[string]Ping{"i-1": {"ConnectionLost", now.Add(-time.Minute)}}, nil},
		{"an agent gone for long", map[string]string{"i-0": "running", "i-1": "running"},
			map[string]Ping{"i-1": {"ConnectionLost", now.Add(-time.Hour)}}, map[int]string{1: "ConnectionLost since"}},
		{"a leaving node is mecd's own removal", map[string]string{"i-0": "running", "i-1": "running", "i-2": "shutting-down"}, nil, nil},
	}
	s := &Sweeper{LostAfter: 5 * time.Minute}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := s.lostNodes(m, tc.states, tc.pings, now)
			if len(got) != len(tc.lost) {
				t.Fatalf("lost %v, want %v", got, tc.lost)
			}
			for i, part := range tc.lost {
				if !strings.Contains(got[i], part) {
					t.Fatalf("node %d: %q, want it to say %q", i, got[i], part)
				}
			}
		})
	}
}
