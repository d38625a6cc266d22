package mec

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mecd/mecd/internal/spec"
)

// MaxRepairAttempts bounds the repairs tried one after another for the
// same loss: after that many failed, the MEC stays DEGRADED with the cause.
const MaxRepairAttempts = 3

// RepairPlan replaces lost nodes: they are removed from the cluster and as
// many nodes of their roles join; Node0 is the node that holds the
// endpoint after it (another control-plane node when node 0 is lost).
type RepairPlan struct {
	Remove []int
	Add    []spec.Role
	Node0  int
	Why    string
}

// PlanRepair plans the repair of m's lost nodes (index -> why lost), or
// says why none can run: dqlite without a quorum (a majority of its voters
// lost: no write commits, so no node can join or be removed; MicroK8s
// cannot recover it by itself), the only control-plane node lost, or too
// many repairs failed in a row.
func PlanRepair(m *MEC, lost map[int]string) (RepairPlan, string) {
	var idx []int
	for i := range lost {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	var whys []string
	for _, i := range idx {
		whys = append(whys, fmt.Sprintf("node %d: %s", i, lost[i]))
	}
	why := strings.Join(whys, "; ")
	if missing := m.Spec.NodeCount - len(m.MemberNodes()); why == "" && missing > 0 {
		why = fmt.Sprintf("%d of %d nodes missing after a failed repair", missing, m.Spec.NodeCount)
	}
	var cps []Node
	lostCP := 0
	for _, n := range m.MemberNodes() {
		if n.Role == string(spec.RoleControlPlane) {
			cps = append(cps, n)
			if _, ok := lost[n.Index]; ok {
				lostCP++
			}
		}
	}
	// dqlite's voters (go-dqlite app/roles.go, RolesChanges.Adjust, with
	// MicroK8s' k8s-dqlite defaults of 3 voters): with 3 or more
	// control-plane nodes, 3 voters (the others stand by), and lost
	// control-plane nodes are taken for voters, the worst case; with fewer,
	// a cluster "too small" keeps one voter, its leader: node 0, the founder,
	// unless a repair moved the endpoint.
	voters, lostVoters := min(len(cps), 3), min(lostCP, 3)
	if len(cps) < 3 {
		voters, lostVoters = 1, 0
		if _, ok := lost[m.EndpointNode]; ok {
			lostVoters = 1
		}
	}
	switch {
	case voters > 0 && 2*(voters-lostVoters) <= voters:
		return RepairPlan{}, fmt.Sprintf("%s. dqlite has lost %d of its %d voters: the cluster has no quorum, so its datastore commits nothing and "+
			"no node can join or be removed. Start the lost instances again if they still exist, or delete the MEC and create it again", why, lostVoters, voters)
	case failedRepairs(m) >= MaxRepairAttempts:
		last := m.Operation()
		return RepairPlan{}, fmt.Sprintf("%s. %d repairs failed in a row (the last: %s): mecd stops trying; delete the MEC and create it again, "+
			"or scale it once the cause is fixed", why, MaxRepairAttempts, last.Detail)
	}
	p := RepairPlan{Remove: idx, Node0: m.EndpointNode, Why: why}
	for _, i := range idx {
		for _, n := range m.Nodes {
			if n.Index == i {
				p.Add = append(p.Add, spec.Role(n.Role))
			}
		}
	}
	// Nodes a failed repair did not replace are missing too.
	keptCP := len(cps) - lostCP
	for _, r := range p.Add {
		if r == spec.RoleControlPlane {
			keptCP++
		}
	}
	for i := len(m.MemberNodes()); i < m.Spec.NodeCount; i++ {
		role := spec.RoleWorker
		if keptCP < m.Spec.ControlPlaneCount() {
			role, keptCP = spec.RoleControlPlane, keptCP+1
		}
		p.Add = append(p.Add, role)
	}
	if _, ok := lost[m.EndpointNode]; ok {
		for _, n := range cps { // index order: the oldest first
			if _, gone := lost[n.Index]; !gone {
				p.Node0 = n.Index
				break
			}
		}
	}
	return p, ""
}

// failedRepairs counts the repairs that failed since the last operation
// that succeeded.
func failedRepairs(m *MEC) int {
	n := 0
	for i := len(m.Operations) - 1; i >= 0; i-- {
		op := m.Operations[i]
		if op.Outcome == OutcomeSucceeded {
			break
		}
		if op.Kind == OperationRepair && op.Outcome == OutcomeFailed {
			n++
		}
	}
	return n
}

// StartRepair records a planned repair as the next operation: the lost
// nodes leave (with why), the endpoint moves if its node is lost, and the
// MEC is REPAIRING.
func (m *MEC) StartRepair(p RepairPlan, now time.Time) *Operation {
	members := len(m.MemberNodes())
	op := Operation{Number: len(m.Operations) + 1, Kind: OperationRepair, From: members, To: members, StartedAt: now,
		Outcome: OutcomeRunning, Remove: p.Remove, Add: p.Add, HAControlPlane: m.Spec.HAControlPlane, Detail: "lost " + p.Why,
		EndpointMoved: p.Node0 != m.EndpointNode}
	for i := range m.Nodes {
		if n := &m.Nodes[i]; slices.Contains(p.Remove, n.Index) && n.Member() {
			n.State, n.Reason = NodeLeaving, fmt.Sprintf("lost: %s; replaced by operation %d", reasonOf(p.Why, n.Index), op.Number)
		}
	}
	m.EndpointNode = p.Node0
	m.Operations = append(m.Operations, op)
	m.Status, m.DegradedCause = Repairing, p.Why
	return m.Operation()
}

// reasonOf picks node i's part of a repair's why.
func reasonOf(why string, i int) string {
	prefix := fmt.Sprintf("node %d: ", i)
	for _, part := range strings.Split(why, "; ") {
		if strings.HasPrefix(part, prefix) {
			return strings.TrimPrefix(part, prefix)
		}
	}
	return why
}
