package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mecd/mecd/internal/backend"
)

// benchJSON is test/artifacts/bench.json: the figures a machine checks.
type benchJSON struct {
	Overhead   []overheadRow `json:"overhead"`
	Cost       []costRow     `json:"cost"`
	Operations []opsRow      `json:"operations,omitempty"`
}

// opsRow is one day-2 operation (section 5).
type opsRow struct {
	Operation   string  `json:"operation"`
	Kind        string  `json:"kind"`
	Seconds     float64 `json:"seconds"`
	Transitions int     `json:"transitions"`
	Invocations int     `json:"invocations"`
}

type overheadRow struct {
	Scale        float64 `json:"scale"`
	Mode         string  `json:"mode"`
	Nodes        int     `json:"nodes"`
	ReadySeconds float64 `json:"readySeconds"`
	// BoundSeconds is boot + max(agent online, install at first boot:
	// seeding + snap install) + join + addons,
	// from the same run's latency model.
	BoundSeconds float64 `json:"boundSeconds"`
	Ratio        float64 `json:"ratio"`
}

type costRow struct {
	Mode                 string `json:"mode"`
	Nodes                int    `json:"nodes"`
	ProvisionTransitions int    `json:"provisionTransitions"`
	TeardownTransitions  int    `json:"teardownTransitions"`
	ProvisionInvocations int    `json:"provisionInvocations"`
}

// writeJSON writes the run's overhead and cost rows to
// test/artifacts/bench.json and returns its path ("" outside the repository).
func writeJSON(res *results) (string, error) {
	root, err := backend.RepoRoot(".")
	if err != nil {
		return "", nil
	}
	path := filepath.Join(root, "test", "artifacts", "bench.json")
	var out benchJSON
	for _, r := range okRuns(res, func(*mecRun) bool { return true }) {
		ready, bound := r.readySeconds(), r.nodeBound()
		out.Overhead = append(out.Overhead, overheadRow{Scale: r.Scale, Mode: string(r.Mode), Nodes: r.Nodes,
			ReadySeconds: ready, BoundSeconds: bound, Ratio: ready / bound})
		pt, _ := provisionTransitions(r.Prov, 1)
		tt, _ := teardownTransitions(r.Tear, 1)
		out.Cost = append(out.Cost, costRow{Mode: string(r.Mode), Nodes: r.Nodes, ProvisionTransitions: pt, TeardownTransitions: tt,
			ProvisionInvocations: r.Prov.invocations()})
	}
	for _, r := range res.Ops {
		if r.Err == nil {
			out.Operations = append(out.Operations, opsRow{Operation: r.What, Kind: r.Kind, Seconds: r.Seconds,
				Transitions: r.Transitions, Invocations: r.Use.invocations()})
		}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}
