package steps

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/mecd/mecd/internal/config"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/spec"
)

// slowProfileEC2 refuses the instance profile until the clock reaches ready,
// as RunInstances does until IAM propagated a new profile.
type slowProfileEC2 struct {
	EC2API
	clock *time.Time
	ready time.Time
	calls int
}

func (f *slowProfileEC2) RunInstances(context.Context, *ec2.RunInstancesInput, ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	f.calls++
	if f.clock.Before(f.ready) {
		return nil, &smithy.GenericAPIError{Code: "InvalidParameterValue",
			Message: "Value (arn:aws:iam::1:instance-profile/mecd/p) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN"}
	}
	return &ec2.RunInstancesOutput{Instances: []ec2types.Instance{{InstanceId: aws.String("i-1"), AmiLaunchIndex: aws.Int32(0)}}}, nil
}

type ec2Only struct{ c EC2API }

func (r ec2Only) EC2(string) EC2API { return r.c }
func (r ec2Only) SSM(string) SSMAPI { return nil }

// A profile IAM takes a minute to propagate (slow, but seen on AWS) delays
// the launch; it does not fail the MEC. The launch tries again every tenth
// of a poll interval within its invocation, then hands the wait to the
// state machine, and gives up only after minutes.
func TestLaunchWaitsForTheProfile(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	m := &mec.MEC{ID: "mec-1", Status: mec.Creating, Spec: spec.Spec{NodeCount: 1, InstanceType: "t4g.medium", RootVolumeGiB: 30},
		Resolved: &mec.Resolved{AmiID: "ami-1", SubnetID: "subnet-1"}, SecurityGroupID: "sg-1",
		InstanceProfileArn: "arn:aws:iam::1:instance-profile/mecd/p"}
	fake := &slowProfileEC2{clock: &now, ready: now.Add(time.Minute)}
	s := &Steps{Store: &waitStore{m: m}, AWS: ec2Only{fake}, Env: config.Env{PollInterval: 10 * time.Second},
		Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }}
	var slept []time.Duration
	s.Sleep = func(_ context.Context, d time.Duration) error { slept = append(slept, d); now = now.Add(d); return nil }
	invocations := 0
	for i := 0; ; i++ {
		invocations++
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(60*time.Second))
		res, err := s.LaunchNodes(ctx, State{ClusterID: m.ID})
		cancel()
		if err != nil {
			t.Fatalf("after %v: %v", now.Sub(fake.ready.Add(-time.Minute)), err)
		}
		if res.Launched {
			break
		}
		next, err := time.Parse(time.RFC3339Nano, res.NextCheckAt)
		if err != nil || !next.After(now) || next.Sub(now) > time.Minute {
			t.Fatalf("next check %q from %v", res.NextCheckAt, now)
		}
		now = next
		if i > 20 {
			t.Fatal("still not launched")
		}
	}
	if len(m.Nodes) != 1 || fake.calls < 2 {
		t.Fatalf("nodes %+v after %d RunInstances calls", m.Nodes, fake.calls)
	}
	// Launched within a second of the profile being usable, in two
	// invocations (one wait of the state machine), not one a poll interval.
	if late := now.Sub(fake.ready); late > time.Second || late < 0 {
		t.Fatalf("launched %v after the profile was usable", late)
	}
	if invocations != 2 || slept[0] != time.Second {
		t.Fatalf("%d invocations, sleeps %v", invocations, slept)
	}
	if limit := profileWaitPolls * s.Env.PollInterval; limit < 2*time.Minute {
		t.Fatalf("gives up after %v: IAM's tail is longer", limit)
	}
}

// A teardown's cleanup does not look while a step that creates resources
// holds the MEC's lease (a DELETE raced the launch): it looks again later,
// so the group, role or instances that step makes are not left behind.
func TestCleanupWaitsForALeasedStep(t *testing.T) {
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	m := &mec.MEC{ID: "mec-1", Status: mec.Deleting, Region: "us-east-1",
		Lease: &mec.Lease{Step: mec.StepLaunch, Until: now.Add(30 * time.Second)}}
	s := &Steps{Store: &waitStore{m: m}, AWS: ssmOnly{}, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return now },
		Env: config.Env{PollInterval: 10 * time.Second, CommandTimeout: 30 * time.Minute}}
	res, err := s.Cleanup(context.Background(), CleanupInput{Purpose: "teardown", State: State{ClusterID: "mec-1"}})
	if err != nil || res.Done || res.NextCheckAt == "" {
		t.Fatalf("cleanup under a lease: %+v %v, want not done and a time to look again", res, err)
	}
	s.Now = func() time.Time { return now.Add(31 * time.Second) } // the lease lapsed (its Lambda is gone)
	if m.Leased(s.Now()) {
		t.Fatal("a lease past its deadline still holds")
	}
	// The provisioning's own rollback knows its failed task ended: a lease
	// that task left (it crashed) does not make the rollback wait.
	s.Now = func() time.Time { return now }
	defer func() {
		if recover() == nil {
			t.Fatal("the rollback after the failed task waited for its lease instead of cleaning up")
		}
	}()
	_, _ = s.Cleanup(context.Background(), CleanupInput{Purpose: "rollback", TaskEnded: true, State: State{ClusterID: "mec-1"}})
}

// Every node gets the root volume and the spec's data volumes, each gp3,
// encrypted with the spec's key and deleted with the instance.
func TestBlockDevices(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dv      *spec.DataVolumes
		key     string
		devices []string
		sizes   []int32
	}{
		{name: "root only", devices: []string{"/dev/sda1"}, sizes: []int32{30}},
		{name: "count 0", dv: &spec.DataVolumes{Count: 0, SizeGiB: 100}, devices: []string{"/dev/sda1"}, sizes: []int32{30}},
		{name: "the seed's 3 x 100", dv: &spec.DataVolumes{Count: 3, SizeGiB: 100}, key: "alias/edge",
			devices: []string{"/dev/sda1", "/dev/sdf", "/dev/sdg", "/dev/sdh"}, sizes: []int32{30, 100, 100, 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &mec.MEC{Spec: spec.Spec{RootVolumeGiB: 30, DataVolumes: tc.dv, EBSKmsKeyID: tc.key},
				Resolved: &mec.Resolved{RootDevice: "/dev/sda1"}}
			got := blockDevices(m)
			if len(got) != len(tc.devices) {
				t.Fatalf("%d mappings, want %d: %+v", len(got), len(tc.devices), got)
			}
			for i, b := range got {
				e := b.Ebs
				if aws.ToString(b.DeviceName) != tc.devices[i] || aws.ToInt32(e.VolumeSize) != tc.sizes[i] ||
					e.VolumeType != ec2types.VolumeTypeGp3 || !aws.ToBool(e.Encrypted) || !aws.ToBool(e.DeleteOnTermination) ||
					aws.ToString(e.KmsKeyId) != tc.key {
					t.Errorf("mapping %d: %s %+v, want %s of %d GiB, gp3, encrypted with %q, deleted on termination",
						i, aws.ToString(b.DeviceName), *e, tc.devices[i], tc.sizes[i], tc.key)
				}
			}
		})
	}
}
