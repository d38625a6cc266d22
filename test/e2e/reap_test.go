package e2e

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/steps"
	"github.com/mecd/mecd/test/localrt"
)

// reapNow invokes the reaper with the event its schedule sends.
func reapNow(t *testing.T, rt *localrt.Runtime) steps.ReapResult {
	t.Helper()
	var res steps.ReapResult
	if err := rt.InvokeScheduled(context.Background(), "reaper", &res); err != nil {
		t.Fatal(err)
	}
	return res
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
	ic := iam.NewFromConfig(rt.AWSConfig(""))
	name := aws.String(mec.NodeRoleName(id))
	if _, err := ic.CreateRole(ctx, &iam.CreateRoleInput{RoleName: name, Path: aws.String(mec.NodeRolePath), AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.CreateInstanceProfile(ctx, &iam.CreateInstanceProfileInput{InstanceProfileName: name, Path: aws.String(mec.NodeRolePath)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.AddRoleToInstanceProfile(ctx, &iam.AddRoleToInstanceProfileInput{InstanceProfileName: name, RoleName: name}); err != nil {
		t.Fatal(err)
	}
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
	code, _, deleted, b := create(t, rt, `{"name":"`+name+`","nodeCount":1}`, nil)
	if code != http.StatusAccepted {
		t.Fatalf("POST: %d %s", code, b)
	}
	waitStatus(t, rt, deleted.ID, mec.Ready, 90*time.Second)
	if code, _, b := call(t, rt, "DELETE", "/mecs/"+deleted.ID, "", nil); code != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", code, b)
	}
	waitStatus(t, rt, deleted.ID, mec.Deleted, 60*time.Second)
	plant(t, rt, deleted.ID)
	// An unknown cluster id made before the grace period, and one made just now.
	old := mec.NewID(time.Now().Add(-2 * grace))
	young := mec.NewID(time.Now())
	plant(t, rt, old)
	plant(t, rt, young)
	// A live MEC's resources are never the reaper's.
	live := provision(t, rt, `{"name":"`+localrt.UniqueName("kept")+`","nodeCount":1}`)

	if res := reapNow(t, rt); !slices.Contains(res.Orphans, old) || slices.Contains(res.Orphans, young) || slices.Contains(res.Orphans, live.summary.ClusterID) {
		t.Fatalf("first run: %+v, want %s reaped and neither %s nor %s", res, old, young, live.summary.ClusterID)
	}
	if leaks, _ := rt.LeakAudit(context.Background(), young); len(leaks) == 0 {
		t.Fatal("the reaper took resources younger than its grace period")
	}
	time.Sleep(grace) // the DELETED MEC's grace, and the young id's
	reapUntilClean(t, rt, old, deleted.ID, young)
	if got := findByName(t, rt, live.summary.Name); got.Status != mec.Ready {
		t.Fatalf("live MEC is %s", got.Status)
	}
	if leaks, _ := rt.LeakAudit(context.Background(), live.summary.ClusterID); len(leaks) == 0 {
		t.Fatal("the reaper took a READY MEC's resources")
	}
}
