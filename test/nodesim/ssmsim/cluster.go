package ssmsim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

const (
	roleControlPlane = "control-plane"
	roleWorker       = "worker"
	clusterAgentPort = "25000"
	maxVoters        = 3
)

// dqlite membership states of an address.
const (
	dqMember  = "member"
	dqJoining = "joining" // a join is under way (its latency)
	dqPartial = "partial" // a join failed after the leader's dqlite took the node in
)

// cluster is a MicroK8s cluster: every installed host starts in its own and
// moves to another by joining it. Guarded by Sim.mu.
type cluster struct {
	id      string // founding instance id
	leader  string // current leader: the founder until it leaves
	members []*member
	dqlite  map[string]string  // address -> dqMember/dqJoining/dqPartial
	addons  map[string]bool    // enabled by the user or a launch configuration
	pki     *kubePKI           // for `microk8s config`, made on first use
	objects map[string]*object // what `kubectl apply` made (workloads.go)
	// classAnnotations: `kubectl annotate storageclass` on a class an
	// addon made (microk8s-hostpath), by class.
	classAnnotations map[string]map[string]string
	// apiDownUntil: the API server is unreachable until then, after a join
	// re-formed dqlite (fidelity.APIServerBlink).
	apiDownUntil time.Time
}

// apiDownLocked reports whether h's API server refuses connections now:
// after a join re-formed dqlite (for a while), or while its dqlite has no
// quorum. MicroK8s' datastore is k8s-dqlite, a Raft cluster of the voters:
// a write commits only with a majority of the voters (go-dqlite; Raft), so
// with 2 of 3 voters down the API server cannot serve.
func (s *Sim) apiDownLocked(h *host) bool {
	if h.cluster == nil {
		return false
	}
	return time.Now().Before(h.cluster.apiDownUntil) || !s.quorumLocked(h.cluster)
}

// quorumLocked reports whether a majority of c's dqlite voters run.
func (s *Sim) quorumLocked(c *cluster) bool {
	voters, up := 0, 0
	for _, m := range c.members {
		if m.dqliteRole != "voter" {
			continue
		}
		voters++
		if th := s.hosts[m.instanceID]; th == nil || th.downAt.IsZero() {
			up++
		}
	}
	return voters == 0 || 2*up > voters
}

// nodeMonitorGracePeriod: the node controller marks a node NotReady once its
// kubelet has not posted its status for this long (kube-controller-manager
// reference, --node-monitor-grace-period, 40 s), scaled with the latency
// model.
const nodeMonitorGracePeriod = 40 * time.Second

// memberDownLocked reports whether m's host is down long enough for its
// Kubernetes node to show NotReady.
func (s *Sim) memberDownLocked(m *member) bool {
	th := s.hosts[m.instanceID]
	if th == nil || th.downAt.IsZero() {
		return false
	}
	grace := nodeMonitorGracePeriod
	if s.lat != nil {
		grace = time.Duration(float64(grace) * s.lat.Scale())
	}
	return time.Since(th.downAt) >= grace
}

// Down is a host's instance stopping or terminating: its processes end.
// Called on the instance's state change (EC2 stopping, shutting-down).
func (s *Sim) Down(instanceID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.hosts[instanceID]; h != nil && h.downAt.IsZero() {
		h.downAt = time.Now()
	}
}

// apiRefused is kubectl's answer while the API server is down.
var apiRefused = fail(1, "The connection to the server 127.0.0.1:16443 was refused - did you specify the right host or port?\n")

type member struct {
	instanceID, ip, hostname string
	role                     string
	dqliteRole               string // voter, standby, "" (worker or left)
	checkVerified            bool
	skipVerify               bool
	left                     bool
	cordoned                 bool              // unschedulable (kubectl cordon, drain)
	labels, annotations      map[string]string // kubectl label / annotate
	joinedAt                 time.Time
	// lhNode: Longhorn made its node object here (longhorn.go), lhDisks
	// its disks (nil until it took them from the node's annotation).
	lhNode  bool
	lhDisks []lhDisk
}

// newClusterLocked puts h alone in a fresh cluster, as a fresh install does.
func (s *Sim) newClusterLocked(h *host) {
	c := &cluster{id: h.id, leader: h.id, dqlite: map[string]string{h.ip: dqMember}, addons: map[string]bool{}}
	c.members = []*member{{instanceID: h.id, ip: h.ip, hostname: h.hostname, role: roleControlPlane, joinedAt: time.Now()}}
	c.recomputeRoles()
	h.cluster = c
}

func (c *cluster) member(id string) *member {
	for _, m := range c.members {
		if m.instanceID == id {
			return m
		}
	}
	return nil
}

func (c *cluster) removeMember(id string) {
	out := c.members[:0]
	for _, m := range c.members {
		if m.instanceID != id {
			out = append(out, m)
		}
	}
	c.members = out
}

// active is the number of members that did not leave.
func (c *cluster) active() int {
	n := 0
	for _, m := range c.members {
		if !m.left {
			n++
		}
	}
	return n
}

// recomputeRoles applies dqlite's rule (go-dqlite app/roles.go,
// RolesChanges: Assume at a node's start, Adjust by the leader every
// RolesAdjustmentFrequency, 30 s; MicroK8s' k8s-dqlite keeps the defaults
// of 3 voters and 3 stand-bys): the first three control-plane nodes (in
// join order, the founder first) vote, later ones stand by; a cluster of
// fewer than 3 dqlite nodes is "too small" and keeps one voter, its leader,
// the others spare; workers do not run dqlite. A voter that goes is
// replaced by the oldest standby. The simulator applies at once what
// Adjust does within 30 s.
func (c *cluster) recomputeRoles() {
	if l := c.member(c.leader); l == nil || l.left || l.role != roleControlPlane {
		for _, m := range c.members {
			if !m.left && m.role == roleControlPlane {
				c.leader = m.instanceID
				break
			}
		}
	}
	cps := 0
	for _, m := range c.members {
		if !m.left && m.role == roleControlPlane {
			cps++
		}
	}
	voters := 0
	for _, m := range c.members {
		switch {
		case m.left || m.role != roleControlPlane:
			m.dqliteRole = ""
		case cps < maxVoters && m.instanceID != c.leader:
			m.dqliteRole = "spare"
		case voters < maxVoters:
			m.dqliteRole = "voter"
			voters++
		default:
			m.dqliteRole = "standby"
		}
	}
}

// roleLocked is h's role in its cluster.
func roleLocked(h *host) string {
	if h.cluster != nil {
		if m := h.cluster.member(h.id); m != nil {
			return m.role
		}
	}
	return roleControlPlane
}

// inMultiNodeLocked: h is an active member of a cluster with other nodes.
func inMultiNodeLocked(h *host) bool {
	if h.cluster == nil {
		return false
	}
	m := h.cluster.member(h.id)
	return m != nil && !m.left && h.cluster.active() > 1
}

// leave is `microk8s leave` on h: it clears h's partial state; an active
// member of a multi-node cluster leaves it (listed NotReady there until a
// remove-node, out of dqlite at once) and is alone in a new cluster. It does
// not make a leader forget a partial join: that takes remove-node there.
func (s *Sim) leave(h *host) result {
	s.mu.Lock()
	defer s.mu.Unlock()
	h.partial = ""
	if inMultiNodeLocked(h) {
		c := h.cluster
		m := c.member(h.id)
		m.left = true
		delete(c.dqlite, h.ip)
		c.recomputeRoles()
		s.newClusterLocked(h)
	}
	return success("Generating new cluster certificates.\nWaiting for node to start. . \n")
}

// removeNode is `microk8s remove-node <ip|hostname> [--force]` on control-plane
// node r, as MicroK8s scripts/wrappers/remove_node.py does it: an address is
// resolved to the Kubernetes node with that InternalIP; a node that is not a
// Kubernetes node fails ("does not exist in Kubernetes", exit 1), and with
// --force its address is first removed from dqlite (a join that failed part
// way); a node registered with dqlite (a control-plane member that did not
// leave) needs --force, which removes it from dqlite; then the Kubernetes
// node is deleted. A worker does not run dqlite and goes without --force.
// A node forced out while it still runs believes it is a member; it must
// leave before it joins again.
func (s *Sim) removeNode(r *host, args []string) result {
	target, force := "", false
	for _, a := range args {
		switch {
		case a == "--force":
			force = true
		case strings.HasPrefix(a, "-"):
			return failOut(2, fmt.Sprintf("Error: No such option: %s\n", a))
		case target == "":
			target = a
		}
	}
	if target == "" {
		return failOut(2, "Usage: microk8s remove-node [OPTIONS] NODE\nError: Missing argument 'NODE'.\n")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := r.cluster
	if roleLocked(r) == roleWorker {
		return failOut(1, "This MicroK8s deployment is acting as a node in a cluster. Please use the microk8s remove-node on the control plane.\n")
	}
	if target == r.ip || target == r.hostname {
		return failOut(1, "Removal failed. Node "+target+" is the local node. Use 'microk8s leave' to remove it from the cluster.\n")
	}
	var m *member
	for _, cand := range c.members {
		if cand.ip == target || cand.hostname == target {
			m = cand
			break
		}
	}
	if m == nil {
		out := fmt.Sprintf("Node %s does not exist in Kubernetes.\n", target)
		if force {
			out += fmt.Sprintf("Attempting to remove %s from dqlite.\n", target)
			if _, known := c.dqlite[target]; known {
				out += "Removing node entry found in dqlite.\n"
				delete(c.dqlite, target)
			}
		}
		return failOut(1, out)
	}
	if _, inDqlite := c.dqlite[m.ip]; inDqlite {
		if !force {
			return failOut(1, fmt.Sprintf("Removal failed. Node %s is registered with dqlite. Please, run first 'microk8s leave' on the departing node. \n"+
				"If the node is not available anymore and will never attempt to join the cluster in the future use the '--force' flag \n"+
				"to unregister the node while removing it.\n", m.hostname))
		}
		delete(c.dqlite, m.ip)
	}
	c.removeMember(m.instanceID)
	c.recomputeRoles()
	if th := s.hosts[m.instanceID]; th != nil && th.cluster == c && !m.left {
		// Out while it still believes it is a member.
		th.partial = "removed from cluster " + c.id
		s.newClusterLocked(th)
	}
	return success("")
}

// addNode is `microk8s add-node [--token T] [--token-ttl S] [--format F]`.
// Without --token-ttl the token is single-use, as in MicroK8s.
func (s *Sim) addNode(h *host, args []string) result {
	tok, ttl, format := "", -1, "pretty"
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		if !hasVal && i+1 < len(args) && (a == "--token" || a == "-t" || a == "--token-ttl" || a == "-l" || a == "--format") {
			i++
			val = args[i]
		}
		switch name {
		case "--token", "-t":
			tok = val
		case "--token-ttl", "-l":
			n, err := strconv.Atoi(val)
			if err != nil {
				return fail(2, fmt.Sprintf("usage: microk8s add-node [-h] [--token-ttl TOKEN_TTL] [--token TOKEN] [--format {pretty,short,token,token-check,json,yaml}]\nmicrok8s add-node: error: argument --token-ttl/-l: invalid int value: '%s'\n", val))
			}
			ttl = n
		case "--format":
			format = val
		default:
			return fail(2, fmt.Sprintf("usage: microk8s add-node [-h] [--token-ttl TOKEN_TTL] [--token TOKEN] [--format {pretty,short,token,token-check,json,yaml}]\nmicrok8s add-node: error: unrecognized arguments: %s\n", a))
		}
	}
	switch format {
	case "pretty", "short", "token", "token-check", "json", "yaml":
	default:
		return fail(2, fmt.Sprintf("microk8s add-node: error: argument --format: invalid choice: '%s'\n", format))
	}
	if tok == "" {
		tok = randomString(32, "0123456789abcdef")
	}
	if len(tok) < 32 {
		return failOut(1, "Invalid token size.  It must be 32 characters long.\n")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if roleLocked(h) == roleWorker && inMultiNodeLocked(h) {
		return failOut(1, "This MicroK8s deployment is acting as a node in a cluster. Please use the microk8s add-node on the control plane.\n")
	}
	if err := h.addToken(tok, ttl); err != nil {
		return failOut(1, fmt.Sprintf("Traceback (most recent call last):\nOSError: %v\n", err))
	}
	check := certCheck(h.certDER)
	url := fmt.Sprintf("%s:%s/%s/%s", h.ip, clusterAgentPort, tok, check)
	switch format {
	case "short":
		return success("microk8s join " + url + "\n")
	case "token":
		return success(tok + "\n")
	case "token-check":
		return success(tok + "/" + check + "\n")
	case "json":
		return success(fmt.Sprintf("{\n  \"token\": \"%s/%s\",\n  \"urls\": [\n    \"%s\"\n  ]\n}\n", tok, check, url))
	case "yaml":
		return success(fmt.Sprintf("token: %s/%s\nurls:\n- %s\n\n", tok, check, url))
	}
	return success("From the node you wish to join to this cluster, run the following:\n" +
		"microk8s join " + url + "\n\n" +
		"Use the '--worker' flag to join a node as a worker not running the control plane, eg:\n" +
		"microk8s join " + url + " --worker\n\n" +
		"If the node you are adding is not reachable through the default interface you can use one of the following:\n" +
		"microk8s join " + url + "\n")
}
