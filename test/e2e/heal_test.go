package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/test/localrt"
)

// terminateBehindMecdsBack ends an instance as a person or another tool
// would: through EC2, with nothing said to mecd.
func terminateBehindMecdsBack(t *testing.T, rt *localrt.Runtime, ids ...string) {
	t.Helper()
	if _, err := rt.Clients("").EC2.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
		t.Fatal(err)
	}
}

// sweepUntil runs the sweep schedule until the MEC leaves READY (bounded):
// other tests' sweeps may start its repair first.
func sweepUntil(t *testing.T, rt *localrt.Runtime, id string, want ...mec.Status) *mec.MEC {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		sweepNow(t, rt)
		_, _, b := call(t, rt, "GET", "/mecs/"+id, "", nil)
		m := decodeMEC(t, b)
		for _, w := range want {
			if m.Status == w {
				return m
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("MEC %s never became %v after sweeps", id, want)
	return nil
}

// TestRepairLostNodes: a READY MEC whose node is lost behind mecd's back
// (its instance terminated, or its SSM agent gone) is found by the sweep
// schedule, REPAIRING, then READY again with the node replaced and 3
// voters; the lost node stays in the history with why.
func TestRepairLostNodes(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	tests := []struct {
		name  string
		nodes int
		lose  int  // index of the node lost
		agent bool // the agent stops instead of the instance
	}{
		{"node 0 of 3 terminated", 3, 0, false},
		{"a worker of 5 terminated", 5, 4, false},
		{"the agent of node 2 of 3 offline", 3, 2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := accepted(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":%d}`, localrt.UniqueName("heal"), tc.nodes))
			m = waitStatus(t, rt, m.ID, mec.Ready, 90*time.Second)
			lost := m.Nodes[tc.lose]
			if tc.agent {
				rt.Sim.Faults.StopAgent(lost.InstanceID)
			} else {
				terminateBehindMecdsBack(t, rt, lost.InstanceID)
			}
			began := time.Now()
			got := sweepUntil(t, rt, m.ID, mec.Repairing)
			if !strings.Contains(got.DegradedCause, lost.InstanceID) {
				t.Fatalf("REPAIRING does not say what is lost: %q", got.DegradedCause)
			}
			got = waitSettled(t, rt, m.ID, 2*time.Minute)
			healed := time.Since(began)
			if got.Status != mec.Ready {
				t.Fatalf("after the repair: %s (%s); operation %+v", got.Status, got.DegradedCause, got.Operation())
			}
			op := got.Operation()
			if op.Kind != mec.OperationRepair || op.Outcome != mec.OutcomeSucceeded {
				t.Fatalf("repair %+v", op)
			}
			cp, w, voters := members(t, rt, got)
			wantCP := min(tc.nodes, 3)
			if cp != wantCP || w != tc.nodes-wantCP || voters != 3 || len(got.MemberNodes()) != tc.nodes {
				t.Fatalf("after the repair: %d control plane, %d workers, %d voters, %d member nodes", cp, w, voters, len(got.MemberNodes()))
			}
			var was mec.Node
			for _, n := range got.Nodes {
				if n.InstanceID == lost.InstanceID {
					was = n
				}
			}
			if was.State != mec.NodeTerminated || was.EndedAt == nil || !strings.Contains(was.Reason, "lost") {
				t.Fatalf("the lost node's history: %+v", was)
			}
			code, _, kube := call(t, rt, "GET", "/mecs/"+m.ID+"/kubeconfig", "", nil)
			servers, err := kubeconfigServers(kube)
			if code != http.StatusOK || err != nil || len(servers) != 1 || servers[0] != got.Endpoint {
				t.Fatalf("kubeconfig after the repair: %d %v %v (endpoint %s)", code, servers, err, got.Endpoint)
			}
			if tc.lose == 0 {
				// The endpoint moved to the oldest surviving control-plane node.
				if got.EndpointNode != 1 || !op.EndpointMoved || !strings.Contains(got.Endpoint, got.Node0().PrivateIP) {
					t.Fatalf("endpoint node %d (%s), moved %v", got.EndpointNode, got.Endpoint, op.EndpointMoved)
				}
			} else if got.Endpoint != m.Endpoint || op.EndpointMoved {
				t.Fatalf("the endpoint moved from %s to %s without node 0 being lost", m.Endpoint, got.Endpoint)
			}
			t.Logf("lost node found and replaced in %.1f s (local scale)", healed.Seconds())
			deleteClean(t, rt, m.ID)
		})
	}
}

// TestQuorumLossIsReported: 2 of 3 voters lost leaves dqlite without a
// quorum; no repair can run, and the MEC says so instead of retrying.
func TestQuorumLossIsReported(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	m := accepted(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":3}`, localrt.UniqueName("quorum")))
	m = waitStatus(t, rt, m.ID, mec.Ready, 90*time.Second)
	terminateBehindMecdsBack(t, rt, m.Nodes[1].InstanceID, m.Nodes[2].InstanceID)
	got := sweepUntil(t, rt, m.ID, mec.Degraded, mec.Repairing)
	if got.Status != mec.Degraded || !strings.Contains(got.DegradedCause, "no quorum") || got.Operation() != nil {
		t.Fatalf("status %s, cause %q, operation %+v", got.Status, got.DegradedCause, got.Operation())
	}
	sweepNow(t, rt)
	_, _, b := call(t, rt, "GET", "/mecs/"+m.ID, "", nil)
	if again := decodeMEC(t, b); again.Status != mec.Degraded || len(again.Operations) != 0 {
		t.Fatalf("a second sweep: %s with %d operations", again.Status, len(again.Operations))
	}
	if code, _, b := call(t, rt, "PATCH", "/mecs/"+m.ID, `{"nodeCount":5}`, nil); code != http.StatusConflict {
		t.Fatalf("scale of a DEGRADED MEC: %d %s", code, b)
	}
	deleteClean(t, rt, m.ID)
}

// waitSettled waits until no operation runs on the MEC (bounded).
func waitSettled(t *testing.T, rt *localrt.Runtime, id string, within time.Duration) *mec.MEC {
	t.Helper()
	return waitFor(t, rt, id, within, func(m *mec.MEC) bool { return !m.Status.Changing() })
}
