package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/test/localrt"
	"github.com/mecd/mecd/test/nodesim/fault"
)

// members counts what node 0's MicroK8s sees: Kubernetes nodes by role and
// dqlite voters.
func members(t *testing.T, rt *localrt.Runtime, m *mec.MEC) (cp, workers, voters int) {
	t.Helper()
	h, ok := rt.Sim.SSMSim.Host(m.Node0().InstanceID)
	if !ok {
		t.Fatal("node 0 is not simulated")
	}
	for _, mem := range h.Members {
		if mem.Left {
			continue
		}
		if mem.Role == "worker" {
			workers++
		} else {
			cp++
		}
		if mem.Voter {
			voters++
		}
	}
	return cp, workers, voters
}

// scaleTo PATCHes the node count and, when the API accepts, follows the
// scale to READY.
func scaleTo(t *testing.T, rt *localrt.Runtime, id, body string) (int, *mec.MEC, []byte) {
	t.Helper()
	code, _, b := call(t, rt, "PATCH", "/mecs/"+id, body, map[string]string{"Content-Type": "application/json"})
	if code != http.StatusAccepted {
		return code, nil, b
	}
	if m := decodeMEC(t, b); m.Status != mec.Scaling {
		t.Fatalf("PATCH %s answered %s", body, m.Status)
	}
	return code, waitStatus(t, rt, id, mec.Ready, 2*time.Minute), b
}

// TestScaleUpAndDown: 3 -> 5 -> 2 (refused) -> 3 -> 1 (haControlPlane
// false), every step READY with 3 voters whenever there are 3 nodes or
// more, the kubeconfig the same throughout, and nothing left after the
// teardown.
func TestScaleUpAndDown(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	m := accepted(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":3}`, localrt.UniqueName("scale")))
	m = waitStatus(t, rt, m.ID, mec.Ready, 90*time.Second)
	_, _, kube := call(t, rt, "GET", "/mecs/"+m.ID+"/kubeconfig", "", nil)

	steps := []struct {
		body          string
		code          int
		cp, w, voters int
		refusedField  string
		wantHA        bool
	}{
		{`{"nodeCount":5}`, http.StatusAccepted, 3, 2, 3, "", true},
		{`{"nodeCount":2}`, http.StatusBadRequest, 3, 2, 3, "nodeCount", true},
		{`{"nodeCount":3}`, http.StatusAccepted, 3, 0, 3, "", true},
		{`{"nodeCount":1,"haControlPlane":false}`, http.StatusAccepted, 1, 0, 1, "", false},
	}
	for i, st := range steps {
		code, got, b := scaleTo(t, rt, m.ID, st.body)
		if code != st.code {
			t.Fatalf("step %d %s: %d %s", i, st.body, code, b)
		}
		if st.refusedField != "" {
			if !strings.Contains(string(b), `"`+st.refusedField+`"`) || !strings.Contains(string(b), "haControlPlane") {
				t.Fatalf("step %d: the refusal does not name %s and the fix: %s", i, st.refusedField, b)
			}
			continue
		}
		op := got.Operation()
		if op == nil || op.Outcome != mec.OutcomeSucceeded {
			t.Fatalf("step %d %s: operation %+v", i, st.body, op)
		}
		cp, w, voters := members(t, rt, got)
		if cp != st.cp || w != st.w || voters != st.voters || len(got.MemberNodes()) != cp+w || got.Spec.NodeCount != cp+w ||
			*got.Spec.HAControlPlane != st.wantHA {
			t.Fatalf("step %d %s: MicroK8s has %d control plane, %d workers, %d voters; the record %d nodes (spec %d, HA %v)",
				i, st.body, cp, w, voters, len(got.MemberNodes()), got.Spec.NodeCount, *got.Spec.HAControlPlane)
		}
		for _, n := range got.Nodes {
			if !n.Live() && (n.EndedAt == nil || n.Reason == "") {
				t.Fatalf("step %d: node %d left without when and why: %+v", i, n.Index, n)
			}
		}
		if _, _, k := call(t, rt, "GET", "/mecs/"+m.ID+"/kubeconfig", "", nil); string(k) != string(kube) {
			t.Fatalf("step %d: the kubeconfig changed", i)
		}
		m = got
	}
	// Every node ever launched is on the record: 3 + 2 added, 4 gone.
	if len(m.Nodes) != 5 || len(m.LiveNodes()) != 1 || len(m.Operations) != 3 {
		t.Fatalf("history: %d nodes (%d live), %d operations", len(m.Nodes), len(m.LiveNodes()), len(m.Operations))
	}
	deleteClean(t, rt, m.ID)
}

// TestDeleteWinsOverAScale: a DELETE while a scale runs stops it and tears
// everything down, the nodes the scale launched included.
func TestDeleteWinsOverAScale(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	m := readyThenScaling(t, rt, "scaledel", 3)
	if code, _, b := call(t, rt, "PATCH", "/mecs/"+m.ID, `{"nodeCount":4}`, nil); code != http.StatusConflict || !strings.Contains(string(b), "SCALING") {
		t.Fatalf("a second operation while scaling: %d %s", code, b)
	}
	// Let it launch the new nodes first.
	waitFor(t, rt, m.ID, time.Minute, func(m *mec.MEC) bool { return len(m.Nodes) == 3 })
	deleteClean(t, rt, m.ID)
	_, _, b := call(t, rt, "GET", "/mecs/"+m.ID, "", nil)
	if op := decodeMEC(t, b).Operation(); op == nil || op.Outcome != mec.OutcomeFailed {
		t.Fatalf("the stopped scale: %+v", op)
	}
}

// TestAbortedScaleIsUndone: a scale whose execution ends without recording
// its outcome (aborted in the console) does not leave the MEC SCALING: the
// sweep schedule undoes it, and what it launched is gone.
func TestAbortedScaleIsUndone(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	m := readyThenScaling(t, rt, "scaleabort", 2)
	// Abort it once its node is launched, as a person would in the console.
	launched := waitFor(t, rt, m.ID, time.Minute, func(m *mec.MEC) bool { return len(m.Nodes) == 2 && m.Operation().ExecutionArn != "" })
	op := launched.Operation()
	if _, err := rt.Clients("").SFN.StopExecution(context.Background(), &sfn.StopExecutionInput{ExecutionArn: aws.String(op.ExecutionArn)}); err != nil {
		t.Fatal(err)
	}
	got := sweepUntil(t, rt, m.ID, mec.Ready)
	if o := got.Operation(); o.Outcome != mec.OutcomeFailed || !strings.Contains(o.Detail, "without recording") || len(got.MemberNodes()) != 1 {
		t.Fatalf("after the undo: %s, operation %+v, %d member nodes", got.Status, o, len(got.MemberNodes()))
	}
	cp, w, voters := members(t, rt, got)
	if cp != 1 || w != 0 || voters != 1 {
		t.Fatalf("MicroK8s after the undo: %d control plane, %d workers, %d voters", cp, w, voters)
	}
	for _, n := range got.Nodes {
		if n.Operation == 1 && n.State != mec.NodeTerminated {
			t.Fatalf("the aborted scale's node: %+v", n)
		}
	}
	deleteClean(t, rt, m.ID)
}

// waitFor polls the MEC until done holds (bounded) and returns it.
func waitFor(t *testing.T, rt *localrt.Runtime, id string, within time.Duration, done func(*mec.MEC) bool) *mec.MEC {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		_, _, b := call(t, rt, "GET", "/mecs/"+id, "", nil)
		if m := decodeMEC(t, b); done(m) {
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("MEC %s: the condition did not hold within %v", id, within)
	return nil
}

// readyThenScaling makes a READY 1-node MEC and asks for it to have n nodes.
func readyThenScaling(t *testing.T, rt *localrt.Runtime, prefix string, n int) *mec.MEC {
	t.Helper()
	m := accepted(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":1}`, localrt.UniqueName(prefix)))
	waitStatus(t, rt, m.ID, mec.Ready, 90*time.Second)
	if code, _, b := call(t, rt, "PATCH", "/mecs/"+m.ID, fmt.Sprintf(`{"nodeCount":%d}`, n), nil); code != http.StatusAccepted {
		t.Fatalf("PATCH: %d %s", code, b)
	}
	return m
}

// A scale whose node 0 cannot finish (here `microk8s config` fails there,
// so the kubeconfig cannot be stored again) fails naming why, and the MEC
// is READY with what joined, as after any scale that failed once its nodes
// joined (the operation says so). The install script used to leave the
// finish to a finalize step, which a scale does not have, and the scale
// was recorded succeeded, unverified.
func TestAScaleNodeZeroCannotFinishFails(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	name := localrt.UniqueName("scalefinish")
	m := accepted(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":1}`, name))
	m = waitStatus(t, rt, m.ID, mec.Ready, 90*time.Second)
	rt.Sim.Faults.FailCommand(fault.Command{Host: fault.Host{TagKey: mec.TagName, TagValue: name, Index: fault.AnyIndex},
		Prefix: "microk8s config", Stderr: "error: the cluster's certificates cannot be read\n"})
	code, _, b := call(t, rt, "PATCH", "/mecs/"+m.ID, `{"nodeCount":2,"haControlPlane":false}`, map[string]string{"Content-Type": "application/json"})
	if code != http.StatusAccepted {
		t.Fatalf("PATCH: %d %s", code, b)
	}
	got := waitFor(t, rt, m.ID, 2*time.Minute, func(m *mec.MEC) bool {
		return m.Status == mec.Ready && m.Operation() != nil && m.Operation().EndedAt != nil
	})
	op := got.Operation()
	for _, w := range []string{"microk8s config failed", "the scale is not finished", "the MEC has 2 nodes"} {
		if op.Outcome != mec.OutcomeFailed || !strings.Contains(op.Detail, w) {
			t.Errorf("the scale %s: %q lacks %q", op.Outcome, op.Detail, w)
		}
	}
	if st := got.Step(mec.StepGrow); st == nil || st.Outcome != mec.OutcomeFailed {
		t.Errorf("grow step %+v", st)
	}
	deleteClean(t, rt, m.ID)
}
