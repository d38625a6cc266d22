package e2e

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/steps"
	"github.com/mecd/mecd/internal/sweep"
	"github.com/mecd/mecd/test/localrt"
	"github.com/mecd/mecd/test/nodesim/fault"
)

// scheduled invokes a function of the sweep schedule with the event the
// schedule sends.
func scheduled[T any](t *testing.T, rt *localrt.Runtime, fn string) T {
	t.Helper()
	var out T
	if err := rt.InvokeScheduled(context.Background(), fn, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func sweepNow(t *testing.T, rt *localrt.Runtime) sweep.Report {
	t.Helper()
	return scheduled[sweep.Report](t, rt, "sweeper")
}

// reapNow runs the reaper; a run another test's reaper kept out (its lock)
// is run again, bounded.
func reapNow(t *testing.T, rt *localrt.Runtime) steps.ReapResult {
	t.Helper()
	for range 100 {
		if res := scheduled[steps.ReapResult](t, rt, "reaper"); !res.Skipped {
			return res
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the reaper's lock stayed taken")
	return steps.ReapResult{}
}

// A teardown that failed leaves the MEC DELETING; the next sweep starts a
// new (numbered) teardown, which deletes it. No TTL is needed for that.
func TestFailedTeardownIsRestarted(t *testing.T) {
	rt := localrt.Get(t)
	name := localrt.UniqueName("retear")
	m := accepted(t, rt, `{"name":"`+name+`","nodeCount":1}`)
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
	m := accepted(t, rt, `{"name":"`+name+`","nodeCount":1}`)
	waitStep(t, rt, m.ID, mec.StepLaunch, mec.OutcomeSucceeded, 60*time.Second)
	if _, err := rt.Clients("").SFN.StopExecution(context.Background(), &sfn.StopExecutionInput{ExecutionArn: aws.String(m.ExecutionArn)}); err != nil {
		t.Fatal(err)
	}
	// A stopped execution does not stop the Lambda invocation it was
	// waiting on (check-nodes waits for the agents inside its invocation,
	// and records them Online): the sweeper's grace counts from the
	// record's last update, so wait until it has not changed for that long.
	grace := time.Duration(float64(60*time.Second) * rt.Sim.Latency.Scale())
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		code, _, b := call(t, rt, "GET", "/mecs/"+m.ID, "", nil)
		if code != http.StatusOK {
			t.Fatalf("GET /mecs/%s: %d %s", m.ID, code, b)
		}
		if idle := time.Since(decodeMEC(t, b).UpdatedAt); idle >= grace {
			break
		}
		time.Sleep(grace / 4)
	}
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

// plant makes what a lost race or an expired record leaves behind for a
// cluster id: a tagged instance and security group, a SecureString under
// its prefix, its node role and instance profile.
func plant(t *testing.T, rt *localrt.Runtime, id string) {
	t.Helper()
	ctx := context.Background()
	c := rt.Clients(rt.Region)
	tags := []ec2types.Tag{{Key: aws.String(mec.TagManaged), Value: aws.String("true")}, {Key: aws.String(mec.TagClusterID), Value: aws.String(id)}}
	ami, err := c.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(localrt.UbuntuAMIParameter("arm64"))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.EC2.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: ami.Parameter.Value, InstanceType: "t4g.medium", MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: tags}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EC2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String(mec.SecurityGroupName(id)), Description: aws.String("planted"),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeSecurityGroup, Tags: tags}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SSM.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(mec.KubeconfigParam(id)), Value: aws.String("planted"), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
		t.Fatal(err)
	}
	plantRole(t, rt, mec.NodeRoleName(id))
}

// plantRole makes node role name and its instance profile, as launch-nodes
// does: under the node boundary (which the stack lets the reaper rely on).
func plantRole(t *testing.T, rt *localrt.Runtime, roleName string) string {
	t.Helper()
	ctx := context.Background()
	ic := iam.NewFromConfig(rt.AWSConfig(""))
	name := aws.String(roleName)
	// The SDK retries a call whose answer came late (a busy machine): its
	// retry then finds what the first made.
	exists := func(err error) bool {
		var ae smithy.APIError
		return errors.As(err, &ae) && (ae.ErrorCode() == "EntityAlreadyExists" || ae.ErrorCode() == "LimitExceeded")
	}
	if _, err := ic.CreateRole(ctx, &iam.CreateRoleInput{RoleName: name, Path: aws.String(mec.NodeRolePath), AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[]}`),
		PermissionsBoundary: aws.String(rt.Deployed.NodeBoundaryArn)}); err != nil && !exists(err) {
		t.Fatal(err)
	}
	if _, err := ic.CreateInstanceProfile(ctx, &iam.CreateInstanceProfileInput{InstanceProfileName: name, Path: aws.String(mec.NodeRolePath)}); err != nil && !exists(err) {
		t.Fatal(err)
	}
	if _, err := ic.AddRoleToInstanceProfile(ctx, &iam.AddRoleToInstanceProfileInput{InstanceProfileName: name, RoleName: name}); err != nil && !exists(err) {
		t.Fatal(err)
	}
	return roleName
}

// reapUntilClean runs the reaper until nothing of ids is left (terminating
// instances take a few runs), within a bound.
func reapUntilClean(t *testing.T, rt *localrt.Runtime, ids ...string) {
	t.Helper()
	for i := 0; ; i++ {
		reapNow(t, rt)
		left := 0
		for _, id := range ids {
			leaks, err := rt.LeakAudit(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			left += len(leaks)
		}
		if left == 0 {
			return
		}
		if i == 40 {
			for _, id := range ids {
				leakFree(t, rt, id)
			}
		}
		time.Sleep(rt.Deployed.PollInterval())
	}
}

// The reaper deletes what belongs to a MEC that is DELETED or unknown once
// the grace period has passed, and nothing younger or of a live MEC.
func TestOrphansAreReaped(t *testing.T) {
	rt := localrt.Get(t)
	grace := steps.ReapGraceIntervals * rt.Deployed.PollInterval()

	// A DELETED MEC whose teardown missed an instance (a DELETE that raced the launch).
	name := localrt.UniqueName("reaped")
	deleted := accepted(t, rt, `{"name":"`+name+`","nodeCount":1}`)
	waitStatus(t, rt, deleted.ID, mec.Ready, 90*time.Second)
	deleteClean(t, rt, deleted.ID)
	plant(t, rt, deleted.ID)
	// A live MEC's resources are never the reaper's.
	live := provision(t, rt, `{"name":"`+localrt.UniqueName("kept")+`","nodeCount":1}`)
	// An unknown cluster id made before the grace period, and one made just
	// now (a grace period ahead: a busy machine must not age it past the
	// grace before the first run).
	old := mec.NewID(time.Now().Add(-2 * grace))
	young := mec.NewID(time.Now().Add(grace))
	plant(t, rt, old)
	plant(t, rt, young)
	// A spare node role left half made (no item: launch-nodes died between
	// the two) long ago; the pool's free spares are kept.
	halfMade := plantRole(t, rt, mec.SpareRoleName(time.Now().Add(-time.Hour)))
	pool := freeSpares(t, rt)

	if res := reapNow(t, rt); !slices.Contains(res.Orphans, old) || slices.Contains(res.Orphans, young) || slices.Contains(res.Orphans, live.summary.ClusterID) {
		t.Fatalf("first run: %+v, want %s reaped and neither %s nor %s", res, old, young, live.summary.ClusterID)
	}
	if leaks, _ := rt.LeakAudit(context.Background(), young); len(leaks) == 0 {
		t.Fatal("the reaper took resources younger than its grace period")
	}
	if _, err := iam.NewFromConfig(rt.AWSConfig("")).GetRole(context.Background(), &iam.GetRoleInput{RoleName: aws.String(halfMade)}); err == nil {
		t.Error("the half-made spare node role is still there")
	}
	// The pool's oldest spares stay, as many as SPARE_NODE_ROLES; launches
	// at once may have made more, which go.
	after := freeSpares(t, rt)
	if len(after) != min(len(pool), localrt.DefaultSpareNodeRoles) {
		t.Errorf("free spares %v after the reaper ran, from %v: want the pool kept at %d", after, pool, localrt.DefaultSpareNodeRoles)
	}
	time.Sleep(2 * grace) // the DELETED MEC's grace, and the young id's
	reapUntilClean(t, rt, old, deleted.ID, young)
	if got := findByName(t, rt, live.summary.Name); got.Status != mec.Ready {
		t.Fatalf("live MEC is %s", got.Status)
	}
	if leaks, _ := rt.LeakAudit(context.Background(), live.summary.ClusterID); len(leaks) == 0 {
		t.Fatal("the reaper took a READY MEC's resources")
	}
}
