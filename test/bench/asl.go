package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Step Functions (Standard) bills a state transition for every state an
// execution enters, retries included. kumo keeps no execution history, so
// the benchmark counts them from the ASL: walking the success path, a
// polling loop's Choice takes its "done" branch on the k-th visit, where k is
// the number of invocations of the loop's Task (counted at the front).
const (
	provisionLoop     = "Are the nodes online?" // after "Check the nodes are online"
	provisionLoopTask = "check-nodes"
	teardownLoop      = "Is everything gone?" // after "Terminate the instances, then ..."
	teardownLoopTask  = "cleanup"
)

// Closed forms of the walks (checked against the ASL for k = 1..30 by
// validateFormulas): provision 5 + 3k (prepare, launch, its choice, k
// checks, k choices, k-1 waits, install-and-join, finalize, ready);
// teardown 1 + 3c.
func provisionFormula(k int) int { return 5 + 3*k }
func teardownFormula(c int) int  { return 1 + 3*c }

type aslState struct {
	Type    string `json:"Type"`
	Next    string `json:"Next"`
	End     bool   `json:"End"`
	Default string `json:"Default"`
	Choices []struct {
		Next string `json:"Next"`
	} `json:"Choices"`
}

type aslDef struct {
	StartAt string              `json:"StartAt"`
	States  map[string]aslState `json:"States"`
}

func loadASL(root, file string) (*aslDef, error) {
	b, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		return nil, fmt.Errorf("read ASL: %w", err)
	}
	var d aslDef
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("parse %s: %w", file, err)
	}
	return &d, nil
}

// walk follows the success path (Task Next, never Catch) and returns the
// states entered. At the Choice named loop, the first choice ("done") is
// taken on visit k, the Default before; other Choices take their first.
func (d *aslDef) walk(loop string, k int) ([]string, error) {
	if _, ok := d.States[loop]; !ok {
		return nil, fmt.Errorf("ASL has no state %q (the benchmark's transition count follows it)", loop)
	}
	return d.walkDecide(func(name string, visit int) bool { return name != loop || visit >= k })
}

// transitionModel is the ASL-derived count, checked once per run.
type transitionModel struct {
	prov, tear *aslDef
	ops        *aslDef
	Checked    string // what validateFormulas proved, for the report
	OpsChecked string // the day-2 paths walked
}

func newTransitionModel(root string) (*transitionModel, error) {
	p, err := loadASL(root, "statemachine/provision.asl.json")
	if err != nil {
		return nil, err
	}
	t, err := loadASL(root, "statemachine/teardown.asl.json")
	if err != nil {
		return nil, err
	}
	o, err := loadASL(root, "statemachine/scale.asl.json")
	if err != nil {
		return nil, err
	}
	m := &transitionModel{prov: p, tear: t, ops: o}
	return m, m.validateFormulas()
}

func (m *transitionModel) validateFormulas() error {
	for k := 1; k <= 30; k++ {
		pp, err := m.prov.walk(provisionLoop, k)
		if err != nil {
			return err
		}
		if len(pp) != provisionFormula(k) {
			return fmt.Errorf("provision ASL: %d states entered with %d checks, formula says %d: %v", len(pp), k, provisionFormula(k), pp)
		}
		tp, err := m.tear.walk(teardownLoop, k)
		if err != nil {
			return err
		}
		if len(tp) != teardownFormula(k) {
			return fmt.Errorf("teardown ASL: %d states entered with %d cleanups, formula says %d: %v", len(tp), k, teardownFormula(k), tp)
		}
	}
	one, _ := m.prov.walk(provisionLoop, 1)
	td, _ := m.tear.walk(teardownLoop, 1)
	up, err := opsPath(m.ops, "scale", 1, 1)
	if err != nil {
		return err
	}
	rp, err := opsPath(m.ops, "repair", 1, 1)
	if err != nil {
		return err
	}
	m.Checked = fmt.Sprintf("provision with one check: %v; teardown with one cleanup: %v", one, td)
	m.OpsChecked = fmt.Sprintf("scale with one check and one look at the removed instances: %v; repair: %v", up, rp)
	return nil
}

// transitions counts a window's state transitions from its invocations:
// the walk for the loop count, plus one per task invocation beyond the
// walk's (a retry, or the join's reset path: Reset + Join again).
func provisionTransitions(u usage, mecs int) (total, checks int) {
	checks = u.Fns[provisionLoopTask].Count
	// Per MEC: prepare, launch-nodes, record-status once; node-command
	// twice. A launch that waits for the node profile goes round its loop:
	// wait, launch again, choice.
	extra := max(0, u.Fns["prepare"].Count-mecs) + 3*max(0, u.Fns["launch-nodes"].Count-mecs) +
		max(0, u.Fns["node-command"].Count-2*mecs) + max(0, u.Fns["record-status"].Count-mecs)
	return 5*mecs + 3*checks + extra, checks
}

func teardownTransitions(u usage, mecs int) (total, cleanups int) {
	cleanups = u.Fns[teardownLoopTask].Count
	extra := max(0, u.Fns["record-status"].Count-2*mecs)
	return mecs + 3*cleanups + extra, cleanups
}
