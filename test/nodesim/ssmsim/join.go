package ssmsim

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/mecd/mecd/test/nodesim/fidelity"
	"github.com/mecd/mecd/test/nodesim/latency"
)

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
	if !l.consumeToken(ja.token) {
		s.mu.Unlock()
		return joinOutcome{retryable: true, result: failOut(1, contacting+"Failed to join cluster. Error code 500. invalid token\n")}
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
	// The cluster agent answers the join with its own kubelet arguments,
	// which the joining node takes as its own (microk8s-cluster-agent
	// pkg/api/v2/join.go; join.py store_base_kubelet_args): an argument
	// set on the cluster after this moment reaches j only if j is a member
	// by then (refresh_opt_in_config).
	j.kubeletArgs = maps.Clone(l.kubeletArgs)
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
	if !ja.worker && s.cfg.Fidelity.Happens(fidelity.APIServerBlink) && s.lat != nil {
		// A new control-plane member re-forms dqlite: the API server is
		// restarted and refuses connections for a while (join.py; microk8s
		// issues #1916, #1401).
		lc.apiDownUntil = time.Now().Add(s.lat.Delay(latency.APIServerBlink))
	}
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
			out = joinOutcome{result: failOut(f.ExitCode, f.Stderr)} // join.py prints on stdout
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
