package ssmsim

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mecd/mecd/test/nodesim/latency"
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
	dqlite  map[string]string // address -> dqMember/dqJoining/dqPartial
	addons  map[string]bool   // enabled by the user or a launch configuration
	pki     *kubePKI          // for `microk8s config`, made on first use
}

type member struct {
	instanceID, ip, hostname string
	role                     string
	dqliteRole               string // voter, standby, "" (worker or left)
	checkVerified            bool
	skipVerify               bool
	left                     bool
	joinedAt                 time.Time
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

// recomputeRoles applies dqlite's rule: the first three control-plane nodes
// (in join order, the founder first) vote, later ones stand by; workers do
// not run dqlite. A voter that goes is replaced by the oldest standby.
func (c *cluster) recomputeRoles() {
	voters := 0
	for _, m := range c.members {
		switch {
		case m.left || m.role != roleControlPlane:
			m.dqliteRole = ""
		case voters < maxVoters:
			m.dqliteRole = "voter"
			voters++
		default:
			m.dqliteRole = "standby"
		}
	}
	if l := c.member(c.leader); l == nil || l.left || l.role != roleControlPlane {
		for _, m := range c.members {
			if !m.left && m.role == roleControlPlane {
				c.leader = m.instanceID
				break
			}
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

type joinArgs struct {
	ip, port, token, check string
	worker, skipVerify     bool
}

// parseJoinArgs parses join's arguments; a non-empty problem is the error to print.
func parseJoinArgs(args []string) (ja joinArgs, problem string) {
	conn := ""
	for _, a := range args {
		switch {
		case a == "--worker":
			ja.worker = true
		case a == "--skip-verify":
			ja.skipVerify = true
		case a == "--controlplane", a == "--disable-low-memory-guard":
		case strings.HasPrefix(a, "-"):
			return ja, "Error: No such option: " + a
		case conn == "":
			conn = a
		default:
			return ja, "Error: Got unexpected extra argument (" + a + ")"
		}
	}
	parts := strings.Split(conn, "/")
	if conn == "" || len(parts) < 2 || len(parts) > 3 {
		return ja, "Please provide a connection string of the form <master_IP>:<master_PORT>/<token>"
	}
	hp := strings.SplitN(parts[0], ":", 2)
	ja.ip = hp[0]
	ja.port = clusterAgentPort
	if len(hp) == 2 {
		ja.port = hp[1]
	}
	ja.token = parts[1]
	if len(parts) == 3 {
		ja.check = parts[2]
	}
	return ja, ""
}

// joinOutcome says whether a failed join may work if simply tried again later
// (the leader not up yet, its token not registered yet): the launch
// configuration join retries those.
type joinOutcome struct {
	result
	retryable bool
}

// join is `microk8s join <ip>:25000/<token>[/<check>] [--worker] [--skip-verify]`
// on host j. Checks in this order, each failing as MicroK8s does:
//  1. nothing answers at <ip>:25000 (unknown address, leader not installed, other port): connection refused;
//  2. <ip> is j itself;
//  3. <check> given, no --skip-verify, and not the leader's certificate check: fingerprint mismatch;
//  4. token unknown or expired on the leader: invalid token (a single-use token is consumed here);
//  5. the leader's dqlite already knows j's address (a control-plane member, a
//     join under way or a partial one): "already known to dqlite";
//  6. j is an active member of a multi-node cluster (a worker joining again, or
//     a member of another cluster): "already part of a cluster";
//  7. j has partial state from an earlier failed join: it must `microk8s leave` first;
//
// then the join takes latency.Join and j becomes a member (control-plane, or
// worker with --worker). A join cut short (the process killed) leaves partial
// state on both sides, like an injected fault.
func (s *Sim) join(ctx context.Context, j *host, args []string) joinOutcome {
	ja, usage := parseJoinArgs(args)
	if usage != "" {
		return joinOutcome{result: failOut(1, usage+"\n")}
	}
	contacting := fmt.Sprintf("Contacting cluster at %s\n", ja.ip)

	s.mu.Lock()
	l := s.hostByIPLocked(j, ja.ip)
	if l == nil || !l.installed || ja.port != clusterAgentPort {
		s.mu.Unlock()
		return joinOutcome{retryable: true, result: failOut(1, contacting+fmt.Sprintf(
			"Connection failed. HTTPSConnectionPool(host='%s', port=%s): Max retries exceeded with url: /cluster/api/v2.0/join "+
				"(Caused by NewConnectionError(': Failed to establish a new connection: [Errno 111] Connection refused'))\n", ja.ip, ja.port))}
	}
	if l == j {
		s.mu.Unlock()
		return joinOutcome{result: failOut(1, contacting+fmt.Sprintf("Failed to join cluster. Error code 503. the joining node has the same IP (%s) as the node we contact\n", ja.ip))}
	}
	verified := false
	if ja.check != "" && !ja.skipVerify {
		if want := certCheck(l.certDER); ja.check != want {
			s.mu.Unlock()
			return joinOutcome{result: failOut(1, contacting+"Joining cluster failed. Fingerprint mismatch: the certificate of the cluster does not match the check in the connection string.\n")}
		}
		verified = true
	}
	tok := l.tokens[ja.token]
	if tok != nil && !tok.expiry.IsZero() && time.Now().After(tok.expiry) {
		delete(l.tokens, ja.token) // MicroK8s prunes expired tokens when it sees them
		tok = nil
	}
	if tok == nil {
		s.mu.Unlock()
		return joinOutcome{retryable: true, result: failOut(1, contacting+"Failed to join cluster. Error code 500. invalid token\n")}
	}
	if tok.singleUse {
		delete(l.tokens, ja.token)
	}
	lc := l.cluster
	if roleLocked(l) == roleWorker {
		s.mu.Unlock()
		return joinOutcome{result: failOut(1, contacting+"Failed to join cluster. Error code 501. not possible to join. This is not an HA MicroK8s cluster\n")}
	}
	if _, known := lc.dqlite[j.ip]; known {
		s.mu.Unlock()
		return joinOutcome{result: failOut(1, contacting+fmt.Sprintf("Failed to join cluster. Error code 504. the joining node (%s) is already known to dqlite\n", j.ip))}
	}
	if inMultiNodeLocked(j) {
		s.mu.Unlock()
		return joinOutcome{result: failOut(1, contacting+"Failed to join cluster. This node is already part of a MicroK8s cluster. Run 'microk8s leave' first.\n")}
	}
	if j.partial != "" {
		s.mu.Unlock()
		return joinOutcome{result: failOut(1, contacting+"Failed to join cluster. Error code 500. failed to join dqlite: this node holds cluster data from an earlier join that did not complete; run 'microk8s leave' first\n")}
	}
	lc.dqlite[j.ip] = dqJoining
	s.mu.Unlock()

	completed := s.sleep(ctx, latency.Join)

	s.mu.Lock()
	defer s.mu.Unlock()
	if !completed {
		lc.dqlite[j.ip] = dqPartial
		j.partial = "join of " + ja.ip + " interrupted"
		return joinOutcome{result: failOut(1, contacting+"Waiting for this node to finish joining the cluster. ..\n")}
	}
	role := roleControlPlane
	if ja.worker {
		role = roleWorker
		delete(lc.dqlite, j.ip) // workers do not run dqlite
	} else {
		lc.dqlite[j.ip] = dqMember
	}
	lc.removeMember(j.id) // a node that left and rejoins
	lc.members = append(lc.members, &member{
		instanceID: j.id, ip: j.ip, hostname: j.hostname, role: role,
		checkVerified: verified, skipVerify: ja.skipVerify, joinedAt: time.Now(),
	})
	lc.recomputeRoles()
	j.cluster = lc
	if ja.worker {
		return joinOutcome{result: success(contacting + "\nThe node has joined the cluster and will appear in the nodes list in a few seconds.\n\n" +
			"This worker node gets automatically configured with the API server endpoints.\n" +
			"If the API servers are behind a loadbalancer please set the '--refresh-interval' to '0s' in:\n" +
			"    /var/snap/microk8s/current/args/apiserver-proxy\n" +
			"and replace the API server endpoints with the one provided by the loadbalancer in:\n" +
			"    /var/snap/microk8s/current/args/traefik/provider.yaml\n\nSuccessfully joined the cluster.\n")}
	}
	return joinOutcome{result: success(contacting + "Waiting for this node to finish joining the cluster. .. .. .. .\nSuccessfully joined the cluster.\n")}
}

// joinFault applies an injected `microk8s join` failure: the join got far
// enough for the leader's dqlite to take the node in, then failed, leaving
// partial state on both sides (see the package documentation for the reset).
func (s *Sim) joinFault(ctx context.Context, j *host, args []string) {
	ja, usage := parseJoinArgs(args)
	if usage != "" {
		return
	}
	s.mu.Lock()
	l := s.hostByIPLocked(j, ja.ip)
	if l != nil && l != j && l.installed && j.installed && l.cluster != nil && !inMultiNodeLocked(j) {
		if _, known := l.cluster.dqlite[j.ip]; !known {
			l.cluster.dqlite[j.ip] = dqPartial
		}
		j.partial = "injected join fault"
	}
	s.mu.Unlock()
	s.sleep(ctx, latency.Join)
}

// launchConfigJoin runs the join of a launch configuration after install,
// retrying while the leader is not up or has not registered the token yet,
// for up to 600 s of AWS time (scaled, at least 2 s).
func (s *Sim) launchConfigJoin(h *host, args []string) {
	deadline := time.Now().Add(max(2*time.Second, time.Duration(600*s.lat.Scale()*float64(time.Second))))
	inst, _ := s.instance(h.id)
	argv := append([]string{"microk8s"}, args...)
	for {
		var out joinOutcome
		if f, failed := s.faults.CommandFault(inst.Tags, inst.LaunchIndex, argv); failed {
			s.joinFault(s.ctx, h, args[1:])
			out = joinOutcome{result: fail(f.ExitCode, f.Stderr)}
		} else {
			out = s.join(s.ctx, h, args[1:])
		}
		if out.code == 0 {
			s.mu.Lock()
			h.launchJoin, h.launchJoinErr = "joined", ""
			s.mu.Unlock()
			return
		}
		if !out.retryable || time.Now().After(deadline) || !sleepFor(s.ctx, 100*time.Millisecond) {
			msg := strings.TrimSpace(out.stdout + out.stderr)
			s.mu.Lock()
			h.launchJoin, h.launchJoinErr = "failed", msg
			s.mu.Unlock()
			s.log.WarnContext(s.ctx, "launch configuration join failed", "instanceId", h.id, "exit", out.code)
			return
		}
	}
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
// node r. A node that left, or that only a partial join put in dqlite, is
// removed; an active member only with --force (it is then marked partial and
// must leave before joining again).
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
	// Resolve a hostname to an address through the simulated hosts.
	ip := target
	for _, h := range s.hosts {
		if h.hostname == target {
			ip = h.ip
		}
	}
	for _, m := range c.members {
		if m.ip != ip && m.hostname != target {
			continue
		}
		if !m.left && !force {
			return failOut(1, fmt.Sprintf("Removal failed. Node %s is in state Ready. Run 'microk8s leave' on it first or use --force.\n", m.hostname))
		}
		c.removeMember(m.instanceID)
		delete(c.dqlite, m.ip)
		c.recomputeRoles()
		if th := s.hosts[m.instanceID]; th != nil && th.cluster == c && !m.left {
			// Forced out while it still believes it is a member.
			th.partial = "removed from cluster " + c.id + " with --force"
			s.newClusterLocked(th)
		}
		return success("")
	}
	if state, known := c.dqlite[ip]; known && state != dqMember {
		delete(c.dqlite, ip)
		return success("")
	}
	return failOut(1, fmt.Sprintf("Error from server (NotFound): nodes %q not found\nNode %s does not exist in Kubernetes.\n", target, target))
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
	t := &token{value: tok, singleUse: ttl == -1}
	if ttl != -1 {
		t.expiry = time.Now().Add(time.Duration(ttl) * time.Second)
	}
	h.tokens[tok] = t
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
