package mec

import (
	"fmt"
	"slices"
	"time"

	"github.com/mecd/mecd/internal/spec"
)

// ScalePlan is what a scale changes: the nodes that leave (by index) and
// the roles of the nodes that join, and the spec after it.
type ScalePlan struct {
	Spec   spec.Spec
	Remove []int
	Add    []spec.Role
}

// PlanScale plans scaling m's member nodes to sc.NodeCount. It refuses
// (fields, as the API's 400 names them) a change that would leave an HA
// control plane (3 dqlite voters) with fewer than 3 nodes unless the
// request says "haControlPlane": false: dqlite keeps a quorum only while a
// majority of its voters run, and a cluster of fewer than 3 dqlite nodes
// keeps a single voter (go-dqlite app/roles.go, RolesChanges.Adjust), so
// losing that node stops the cluster's datastore.
//
// Nodes leave workers first, then control-plane nodes, the newest first,
// never node 0 (it holds the endpoint). New nodes join as control plane
// while the control plane has fewer nodes than the scaled spec asks (3 with
// HA, else 1), else as workers. MicroK8s cannot turn a worker into a
// control-plane node in place (a node joins as one or the other), so when
// the new nodes alone cannot complete the control plane, workers are
// replaced by control-plane nodes.
func PlanScale(m *MEC, sc spec.Scale) (ScalePlan, map[string]string) {
	members := m.MemberNodes()
	wasHA := m.Spec.HAControlPlane != nil && *m.Spec.HAControlPlane
	if wasHA && len(members) >= 3 && sc.NodeCount < 3 && (sc.HAControlPlane == nil || *sc.HAControlPlane) {
		return ScalePlan{}, map[string]string{"nodeCount": fmt.Sprintf(
			"%d nodes would leave the HA control plane (3 dqlite voters) without a quorum to spare: one more lost node would stop the cluster; "+
				"ask for 3 or more, or send \"haControlPlane\": false to accept a control plane that does not survive a lost node", sc.NodeCount)}
	}
	if msg := spec.MinNodesMessage(m.Spec.Addons, sc.NodeCount); msg != "" {
		return ScalePlan{}, map[string]string{"nodeCount": msg}
	}
	next := m.Spec.Scaled(sc)
	wantCP := next.ControlPlaneCount()
	var cps, workers []Node
	for _, n := range members {
		if n.Role == string(spec.RoleControlPlane) {
			cps = append(cps, n)
		} else {
			workers = append(workers, n)
		}
	}
	newestFirst := func(ns []Node) []Node {
		out := slices.Clone(ns)
		slices.SortFunc(out, func(a, b Node) int { return b.Index - a.Index })
		return out
	}
	p := ScalePlan{Spec: next}
	// Workers leave first, then control-plane nodes, newest first. A
	// control-plane node beyond what the spec asks stays while the count
	// allows: it cannot become a worker in place.
	keepCP, total := len(cps), len(members)
	for _, n := range append(newestFirst(workers), newestFirst(cps)...) {
		if total <= sc.NodeCount {
			break
		}
		if m.IsNode0(n) {
			continue
		}
		p.Remove = append(p.Remove, n.Index)
		if n.Role == string(spec.RoleControlPlane) {
			keepCP--
		}
		total--
	}
	// The control plane the spec asks for: new nodes first, then workers
	// replaced.
	missingCP := max(wantCP-keepCP, 0)
	joining := sc.NodeCount - total
	for _, n := range newestFirst(workers) {
		if missingCP <= joining {
			break
		}
		if !slices.Contains(p.Remove, n.Index) {
			p.Remove = append(p.Remove, n.Index)
			joining++
		}
	}
	for i := 0; i < joining; i++ {
		role := spec.RoleWorker
		if i < missingCP {
			role = spec.RoleControlPlane
			keepCP++
		}
		p.Add = append(p.Add, role)
	}
	// The record says what runs: HA is 3 control-plane nodes or more.
	ha := keepCP >= 3
	p.Spec.HAControlPlane = &ha
	return p, nil
}

// StartScale records a planned scale as operation number len+1 and moves
// the MEC to SCALING; the spec becomes the scaled one once it succeeds.
func (m *MEC) StartScale(p ScalePlan, owner string, now time.Time) *Operation {
	op := Operation{Number: len(m.Operations) + 1, Kind: OperationScale, From: len(m.MemberNodes()), To: p.Spec.NodeCount,
		Owner: owner, StartedAt: now, Outcome: OutcomeRunning, Remove: p.Remove, Add: p.Add, HAControlPlane: p.Spec.HAControlPlane}
	m.Operations = append(m.Operations, op)
	m.Status = Scaling
	return m.Operation()
}
