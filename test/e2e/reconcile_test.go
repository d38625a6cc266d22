package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/sweep"
	"github.com/mecd/mecd/test/localrt"
	"github.com/mecd/mecd/test/nodesim/fault"
)

// sweepNow invokes the sweeper with the event its schedule sends.
func sweepNow(t *testing.T, rt *localrt.Runtime) sweep.Report {
	t.Helper()
	var rep sweep.Report
	if err := rt.InvokeScheduled(context.Background(), "sweeper", &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// A teardown that failed leaves the MEC DELETING; the next sweep starts a
// new (numbered) teardown, which deletes it. No TTL is needed for that.
func TestFailedTeardownIsRestarted(t *testing.T) {
	rt := localrt.Get(t)
	name := localrt.UniqueName("retear")
	code, _, m, b := create(t, rt, `{"name":"`+name+`","nodeCount":1}`, nil)
	if code != http.StatusAccepted {
		t.Fatalf("POST: %d %s", code, b)
	}
	waitStatus(t, rt, m.ID, mec.Ready, 90*time.Second)
	rt.Sim.Faults.FailAPI(fault.API{Service: "ec2", Action: "TerminateInstances", Rate: 1, Code: "UnauthorizedOperation"})
	t.Cleanup(rt.Sim.Faults.ClearAPIs)
	if code, _, b := call(t, rt, "DELETE", "/mecs/"+m.ID, "", nil); code != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", code, b)
	}
	failed := waitStep(t, rt, m.ID, mec.StepTeardown, mec.OutcomeFailed, 60*time.Second)
	if failed.Status != mec.Deleting {
		t.Fatalf("after a failed teardown the MEC is %s", failed.Status)
	}
	rt.Sim.Faults.ClearAPIs()
	time.Sleep(time.Duration(float64(60*time.Second) * rt.Sim.Latency.Scale())) // the sweeper's grace: 6 poll intervals
	rep := sweepNow(t, rt)
	if len(rep.TeardownsRestarted) == 0 || rep.TeardownsRestarted[0] != m.ID {
		t.Fatalf("sweep report %+v: no restart of %s", rep, m.ID)
	}
	gone := waitStatus(t, rt, m.ID, mec.Deleted, 60*time.Second)
	if gone.TeardownExecutionArn == failed.TeardownExecutionArn {
		t.Fatalf("the teardown was not run again: %s", gone.TeardownExecutionArn)
	}
	leakFree(t, rt, m.ID)
}

// A provisioning execution that died (here: stopped from outside) leaves
// its MEC CREATING; the next sweep rolls it back and records it FAILED.
func TestDeadProvisioningIsRolledBack(t *testing.T) {
	rt := localrt.Get(t)
	name := localrt.UniqueName("dead")
	code, _, m, b := create(t, rt, `{"name":"`+name+`","nodeCount":1}`, nil)
	if code != http.StatusAccepted {
		t.Fatalf("POST: %d %s", code, b)
	}
	waitStep(t, rt, m.ID, mec.StepLaunch, mec.OutcomeSucceeded, 60*time.Second)
	if _, err := rt.Clients("").SFN.StopExecution(context.Background(), &sfn.StopExecutionInput{ExecutionArn: aws.String(m.ExecutionArn)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Duration(float64(60*time.Second) * rt.Sim.Latency.Scale()))
	rep := sweepNow(t, rt)
	if len(rep.RolledBack) == 0 {
		t.Fatalf("sweep report %+v: no rollback of %s", rep, m.ID)
	}
	failed := waitStatus(t, rt, m.ID, mec.Failed, 60*time.Second)
	if failed.FailureCause == "" || failed.Step(mec.StepRollback) == nil {
		t.Fatalf("FAILED without a cause or rollback: %+v", failed)
	}
	leakFree(t, rt, m.ID)
}

// waitStep waits until a record's latest step name has the outcome.
func waitStep(t *testing.T, rt *localrt.Runtime, id, step, outcome string, within time.Duration) *mec.MEC {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, _, b := call(t, rt, "GET", "/mecs/"+id, "", nil)
		if code == http.StatusOK {
			m := decodeMEC(t, b)
			if s := m.Step(step); s != nil && s.Outcome == outcome {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("step %s of %s never %s", step, id, outcome)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
