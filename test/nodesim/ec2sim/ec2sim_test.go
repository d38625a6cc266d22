package ec2sim

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/mecd/mecd/test/nodesim/latency"
)

const (
	armAMI = "ami-0a1b2c3d4e5f60718"
	x86AMI = "ami-0f0e0d0c0b0a09081"
)

// harness is a Sim behind an httptest server and a real SDK client.
type harness struct {
	sim *Sim
	srv *httptest.Server
	ec2 *ec2.Client
	lat *latency.Model
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	lat := latency.New(0.001, latency.Typical, 1)
	s := New(lat, 1)
	s.RegisterImage("us-east-1", armAMI, "arm64")
	s.RegisterImage("us-east-1", x86AMI, "x86_64")
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		srv.Close()
		s.Close()
	})
	h := &harness{sim: s, srv: srv, lat: lat}
	h.ec2 = h.client("us-east-1")
	return h
}

func (h *harness) client(region string) *ec2.Client {
	return ec2.New(ec2.Options{
		Region:       region,
		BaseEndpoint: aws.String(h.srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		HTTPClient:   h.srv.Client(),
		// The sim's errors surface at once. A connection this machine's
		// loaded test run cut while the body was read (seen under -race:
		// "use of closed network connection", before this change too) is
		// the transport's, and is tried again.
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.Retryables = []retry.IsErrorRetryable{retry.RetryableConnectionError{}}
		}),
	})
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func wantCode(t *testing.T, err error, code, msgPart string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want error %s, got success", code)
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want smithy.APIError %s, got %T: %v", code, err, err)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("want code %s, got %s: %s", code, ae.ErrorCode(), ae.ErrorMessage())
	}
	if !strings.Contains(ae.ErrorMessage(), msgPart) {
		t.Fatalf("want message containing %q, got %q", msgPart, ae.ErrorMessage())
	}
}

func runInput(count int32) *ec2.RunInstancesInput {
	return &ec2.RunInstancesInput{
		ImageId:      aws.String(armAMI),
		InstanceType: types.InstanceTypeT4gMedium,
		MinCount:     aws.Int32(count),
		MaxCount:     aws.Int32(count),
	}
}

func (h *harness) run(t *testing.T, in *ec2.RunInstancesInput) *ec2.RunInstancesOutput {
	t.Helper()
	out, err := h.ec2.RunInstances(ctx(t), in)
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	return out
}

func ids(insts []types.Instance) []string {
	var out []string
	for _, in := range insts {
		out = append(out, aws.ToString(in.InstanceId))
	}
	return out
}

func describe(t *testing.T, c *ec2.Client, in *ec2.DescribeInstancesInput) []types.Instance {
	t.Helper()
	out, err := c.DescribeInstances(ctx(t), in)
	if err != nil {
		t.Fatalf("DescribeInstances: %v", err)
	}
	var insts []types.Instance
	for _, r := range out.Reservations {
		insts = append(insts, r.Instances...)
	}
	return insts
}

func tagMap(tags []types.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func fastWaiter[T any](o *T) {
	switch w := any(o).(type) {
	case *ec2.InstanceRunningWaiterOptions:
		w.MinDelay, w.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
	case *ec2.InstanceTerminatedWaiterOptions:
		w.MinDelay, w.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
	}
}

func (h *harness) waitRunning(t *testing.T, ids ...string) {
	t.Helper()
	w := ec2.NewInstanceRunningWaiter(h.ec2, fastWaiter[ec2.InstanceRunningWaiterOptions])
	if err := w.Wait(ctx(t), &ec2.DescribeInstancesInput{InstanceIds: ids}, 3*time.Second); err != nil {
		t.Fatalf("InstanceRunning waiter: %v", err)
	}
}

func (h *harness) terminate(t *testing.T, ids ...string) *ec2.TerminateInstancesOutput {
	t.Helper()
	out, err := h.ec2.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: ids})
	if err != nil {
		t.Fatalf("TerminateInstances: %v", err)
	}
	return out
}

func (h *harness) waitTerminated(t *testing.T, ids ...string) {
	t.Helper()
	w := ec2.NewInstanceTerminatedWaiter(h.ec2, fastWaiter[ec2.InstanceTerminatedWaiterOptions])
	if err := w.Wait(ctx(t), &ec2.DescribeInstancesInput{InstanceIds: ids}, 3*time.Second); err != nil {
		t.Fatalf("InstanceTerminated waiter: %v", err)
	}
}

func (h *harness) createGroup(t *testing.T, name string) string {
	t.Helper()
	out, err := h.ec2.CreateSecurityGroup(ctx(t), &ec2.CreateSecurityGroupInput{
		GroupName: aws.String(name), Description: aws.String("test group " + name),
	})
	if err != nil {
		t.Fatalf("CreateSecurityGroup: %v", err)
	}
	return aws.ToString(out.GroupId)
}

// TestRunInstancesKeepsLaunchParameters: everything RunInstances is given is
// kept and described back: tags on instances and volumes, metadata options,
// block devices, instance profile, groups, user data, addresses, ids.
func TestRunInstancesKeepsLaunchParameters(t *testing.T) {
	h := newHarness(t)
	sg := h.createGroup(t, "nodes")
	userData := base64.StdEncoding.EncodeToString([]byte("#!/bin/bash\necho hi\n"))
	in := runInput(3)
	in.ClientToken = aws.String("cluster-1-launch")
	in.SecurityGroupIds = []string{sg}
	in.UserData = aws.String(userData)
	in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Name: aws.String("mecd-node-cluster-1")}
	in.MetadataOptions = &types.InstanceMetadataOptionsRequest{
		HttpTokens: types.HttpTokensStateRequired, HttpEndpoint: types.InstanceMetadataEndpointStateEnabled,
		HttpPutResponseHopLimit: aws.Int32(2),
	}
	in.BlockDeviceMappings = []types.BlockDeviceMapping{
		{DeviceName: aws.String("/dev/sda1"), Ebs: &types.EbsBlockDevice{
			VolumeSize: aws.Int32(30), VolumeType: types.VolumeTypeGp3, Encrypted: aws.Bool(true),
			DeleteOnTermination: aws.Bool(true), KmsKeyId: aws.String("arn:aws:kms:us-east-1:000000000000:key/k1"),
		}},
		{DeviceName: aws.String("/dev/sdf"), Ebs: &types.EbsBlockDevice{
			VolumeSize: aws.Int32(50), VolumeType: types.VolumeTypeGp3, DeleteOnTermination: aws.Bool(false),
		}},
	}
	in.TagSpecifications = []types.TagSpecification{
		{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("mecd:cluster-id"), Value: aws.String("c1")}, {Key: aws.String("Name"), Value: aws.String("node")}}},
		{ResourceType: types.ResourceTypeVolume, Tags: []types.Tag{{Key: aws.String("mecd:cluster-id"), Value: aws.String("c1")}}},
	}
	out := h.run(t, in)

	if !strings.HasPrefix(aws.ToString(out.ReservationId), "r-") || len(out.Instances) != 3 {
		t.Fatalf("reservation %q with %d instances", aws.ToString(out.ReservationId), len(out.Instances))
	}
	for i, inst := range out.Instances {
		if inst.State.Name != types.InstanceStateNamePending || aws.ToInt32(inst.State.Code) != 0 {
			t.Errorf("instance %d state %v, want pending/0", i, inst.State)
		}
		if aws.ToInt32(inst.AmiLaunchIndex) != int32(i) {
			t.Errorf("instance %d launch index %d", i, aws.ToInt32(inst.AmiLaunchIndex))
		}
	}
	insts := describe(t, h.ec2, &ec2.DescribeInstancesInput{InstanceIds: ids(out.Instances)})
	if len(insts) != 3 {
		t.Fatalf("described %d instances, want 3", len(insts))
	}
	defaultSubnet := netip.MustParsePrefix("172.31.0.0/20")
	seenIPs := map[string]bool{}
	for _, inst := range insts {
		id := aws.ToString(inst.InstanceId)
		if len(id) != len("i-")+17 || strings.ToLower(id) != id {
			t.Errorf("instance id %q is not i- + 17 lowercase hex", id)
		}
		if got := tagMap(inst.Tags); got["mecd:cluster-id"] != "c1" || got["Name"] != "node" {
			t.Errorf("%s tags %v", id, got)
		}
		mo := inst.MetadataOptions
		if mo == nil || mo.HttpTokens != types.HttpTokensStateRequired || aws.ToInt32(mo.HttpPutResponseHopLimit) != 2 || mo.HttpEndpoint != types.InstanceMetadataEndpointStateEnabled {
			t.Errorf("%s metadata options %+v", id, mo)
		}
		if inst.IamInstanceProfile == nil || aws.ToString(inst.IamInstanceProfile.Arn) != "arn:aws:iam::123456789012:instance-profile/mecd-node-cluster-1" ||
			!strings.HasPrefix(aws.ToString(inst.IamInstanceProfile.Id), "AIPA") {
			t.Errorf("%s instance profile %+v", id, inst.IamInstanceProfile)
		}
		if aws.ToString(inst.ClientToken) != "cluster-1-launch" {
			t.Errorf("%s client token %q", id, aws.ToString(inst.ClientToken))
		}
		if inst.Architecture != types.ArchitectureValuesArm64 || inst.InstanceType != types.InstanceTypeT4gMedium {
			t.Errorf("%s arch %s type %s", id, inst.Architecture, inst.InstanceType)
		}
		if len(inst.SecurityGroups) != 1 || aws.ToString(inst.SecurityGroups[0].GroupId) != sg || aws.ToString(inst.SecurityGroups[0].GroupName) != "nodes" {
			t.Errorf("%s groups %+v", id, inst.SecurityGroups)
		}
		ip := netip.MustParseAddr(aws.ToString(inst.PrivateIpAddress))
		if !defaultSubnet.Contains(ip) || seenIPs[ip.String()] {
			t.Errorf("%s private IP %s not unique in %s", id, ip, defaultSubnet)
		}
		seenIPs[ip.String()] = true
		pub := aws.ToString(inst.PublicIpAddress)
		if !strings.HasPrefix(pub, "3.") && !strings.HasPrefix(pub, "54.") {
			t.Errorf("%s public IP %q", id, pub)
		}
		if aws.ToString(inst.Placement.AvailabilityZone) != "us-east-1a" || aws.ToString(inst.RootDeviceName) != "/dev/sda1" {
			t.Errorf("%s placement %v root %s", id, aws.ToString(inst.Placement.AvailabilityZone), aws.ToString(inst.RootDeviceName))
		}
		if !strings.HasPrefix(aws.ToString(inst.VpcId), "vpc-") || !strings.HasPrefix(aws.ToString(inst.SubnetId), "subnet-") || inst.LaunchTime == nil {
			t.Errorf("%s vpc %s subnet %s launch %v", id, aws.ToString(inst.VpcId), aws.ToString(inst.SubnetId), inst.LaunchTime)
		}
		if len(inst.BlockDeviceMappings) != 2 {
			t.Fatalf("%s block devices %+v", id, inst.BlockDeviceMappings)
		}
		for _, bdm := range inst.BlockDeviceMappings {
			if !strings.HasPrefix(aws.ToString(bdm.Ebs.VolumeId), "vol-") || bdm.Ebs.Status != types.AttachmentStatusAttached {
				t.Errorf("%s bdm %+v", id, bdm.Ebs)
			}
		}
		if len(inst.NetworkInterfaces) != 1 || aws.ToString(inst.NetworkInterfaces[0].Association.PublicIp) != pub {
			t.Errorf("%s network interfaces %+v", id, inst.NetworkInterfaces)
		}
	}

	vols, err := h.ec2.DescribeVolumes(ctx(t), &ec2.DescribeVolumesInput{Filters: []types.Filter{
		{Name: aws.String("attachment.instance-id"), Values: []string{aws.ToString(insts[0].InstanceId)}},
	}})
	if err != nil {
		t.Fatalf("DescribeVolumes: %v", err)
	}
	if len(vols.Volumes) != 2 {
		t.Fatalf("volumes of %s: %d, want 2", aws.ToString(insts[0].InstanceId), len(vols.Volumes))
	}
	for _, v := range vols.Volumes {
		dev := aws.ToString(v.Attachments[0].Device)
		switch dev {
		case "/dev/sda1":
			if aws.ToInt32(v.Size) != 30 || v.VolumeType != types.VolumeTypeGp3 || !aws.ToBool(v.Encrypted) ||
				aws.ToString(v.KmsKeyId) != "arn:aws:kms:us-east-1:000000000000:key/k1" || !aws.ToBool(v.Attachments[0].DeleteOnTermination) {
				t.Errorf("root volume %+v", v)
			}
		case "/dev/sdf":
			if aws.ToInt32(v.Size) != 50 || aws.ToBool(v.Encrypted) || aws.ToBool(v.Attachments[0].DeleteOnTermination) {
				t.Errorf("data volume %+v", v)
			}
		default:
			t.Errorf("unexpected device %s", dev)
		}
		if tagMap(v.Tags)["mecd:cluster-id"] != "c1" || v.State != types.VolumeStateInUse {
			t.Errorf("volume %s tags %v state %s", aws.ToString(v.VolumeId), tagMap(v.Tags), v.State)
		}
	}

	got, ok := h.sim.Instance(aws.ToString(insts[0].InstanceId))
	if !ok || got.UserData != userData || got.HTTPTokens != "required" || got.ClientToken != "cluster-1-launch" ||
		got.ReservationID != aws.ToString(out.ReservationId) || len(got.Volumes) != 2 || got.Tags["Name"] != "node" {
		t.Errorf("sim record %+v", got)
	}
	got.Tags["Name"] = "changed" // a copy: the sim must not see this
	if again, _ := h.sim.Instance(got.ID); again.Tags["Name"] != "node" {
		t.Errorf("Instance() returned shared state")
	}

	// A profile given by ARN is kept as given; no block devices means an 8 GiB gp2 root.
	in2 := runInput(1)
	in2.InstanceType = types.InstanceTypeT3Micro
	in2.ImageId = aws.String(x86AMI)
	in2.IamInstanceProfile = &types.IamInstanceProfileSpecification{Arn: aws.String("arn:aws:iam::123456789012:instance-profile/p2")}
	out2 := h.run(t, in2)
	rec, _ := h.sim.Instance(aws.ToString(out2.Instances[0].InstanceId))
	if rec.IamInstanceProfileArn != "arn:aws:iam::123456789012:instance-profile/p2" || rec.HTTPTokens != "optional" ||
		len(rec.Volumes) != 1 || rec.Volumes[0].SizeGiB != 8 || rec.Volumes[0].VolumeType != "gp2" || rec.Volumes[0].Encrypted ||
		len(rec.SecurityGroupIDs) != 1 {
		t.Errorf("defaults: %+v", rec)
	}
	if sgs := h.sim.SecurityGroups(); !slices.ContainsFunc(sgs, func(g SecurityGroup) bool { return g.ID == rec.SecurityGroupIDs[0] && g.Name == "default" }) {
		t.Errorf("instance without groups should get the VPC's default group, got %v", rec.SecurityGroupIDs)
	}
}

// TestRunInstancesClientToken: a retry with the same token and parameters
// launches nothing new; the same token with other parameters fails.
func TestRunInstancesClientToken(t *testing.T) {
	h := newHarness(t)
	in := runInput(2)
	in.ClientToken = aws.String("token-a")
	first := h.run(t, in)
	again := h.run(t, in)
	if aws.ToString(first.ReservationId) != aws.ToString(again.ReservationId) || !slices.Equal(ids(first.Instances), ids(again.Instances)) {
		t.Fatalf("retry gave %s %v, first %s %v", aws.ToString(again.ReservationId), ids(again.Instances), aws.ToString(first.ReservationId), ids(first.Instances))
	}
	if n := len(h.sim.Instances()); n != 2 {
		t.Fatalf("%d instances after a retried launch, want 2", n)
	}
	changed := runInput(3)
	changed.ClientToken = aws.String("token-a")
	_, err := h.ec2.RunInstances(ctx(t), changed)
	wantCode(t, err, "IdempotentParameterMismatch", "inconsistent")
	// A token is scoped to its region.
	h.sim.RegisterImage("eu-west-1", armAMI, "arm64")
	eu, err := h.client("eu-west-1").RunInstances(ctx(t), changed)
	if err != nil || len(eu.Instances) != 3 {
		t.Fatalf("launch in another region with the same token: %v", err)
	}
	// Idempotency holds after termination too: the same reservation comes back.
	h.terminate(t, ids(first.Instances)...)
	after := h.run(t, in)
	if aws.ToString(after.ReservationId) != aws.ToString(first.ReservationId) {
		t.Fatalf("retry after terminate launched anew: %s", aws.ToString(after.ReservationId))
	}
}

// TestRunInstancesErrors: each bad request fails with EC2's code and message.
func TestRunInstancesErrors(t *testing.T) {
	h := newHarness(t)
	private := h.sim.AddSubnet("us-east-1", "vpc-0000000000000beef", "10.9.1.0/24", "us-east-1b", false)
	otherVPCGroup, err := h.ec2.CreateSecurityGroup(ctx(t), &ec2.CreateSecurityGroupInput{
		GroupName: aws.String("other"), Description: aws.String("other vpc"), VpcId: aws.String("vpc-0000000000000beef"),
	})
	if err != nil {
		t.Fatalf("CreateSecurityGroup in added VPC: %v", err)
	}
	cases := []struct {
		name    string
		mod     func(*ec2.RunInstancesInput)
		code    string
		msgPart string
	}{
		{"unregistered AMI", func(in *ec2.RunInstancesInput) { in.ImageId = aws.String("ami-00000000000000000") }, "InvalidAMIID.NotFound", "ami-00000000000000000"},
		{"malformed AMI", func(in *ec2.RunInstancesInput) { in.ImageId = aws.String("ami-xyz") }, "InvalidAMIID.Malformed", "ami-xyz"},
		{"unknown type", func(in *ec2.RunInstancesInput) { in.InstanceType = "t9g.huge" }, "InvalidParameterValue", "t9g.huge"},
		{"arm type on x86 AMI", func(in *ec2.RunInstancesInput) { in.ImageId = aws.String(x86AMI) }, "InvalidParameterValue",
			"The architecture 'arm64' of the specified instance type does not match the architecture 'x86_64' of the specified AMI"},
		{"x86 type on arm AMI", func(in *ec2.RunInstancesInput) { in.InstanceType = types.InstanceTypeM6iLarge }, "InvalidParameterValue",
			"The architecture 'x86_64' of the specified instance type does not match the architecture 'arm64'"},
		{"unknown subnet", func(in *ec2.RunInstancesInput) { in.SubnetId = aws.String("subnet-00000000000000000") }, "InvalidSubnetID.NotFound", "subnet-00000000000000000"},
		{"malformed subnet", func(in *ec2.RunInstancesInput) { in.SubnetId = aws.String("subnet-x") }, "InvalidSubnetID.Malformed", "subnet-x"},
		{"unknown group", func(in *ec2.RunInstancesInput) { in.SecurityGroupIds = []string{"sg-00000000000000000"} }, "InvalidGroup.NotFound", "sg-00000000000000000"},
		{"malformed group", func(in *ec2.RunInstancesInput) { in.SecurityGroupIds = []string{"sg-nope"} }, "InvalidGroupId.Malformed", "sg-nope"},
		{"group of another VPC", func(in *ec2.RunInstancesInput) { in.SecurityGroupIds = []string{aws.ToString(otherVPCGroup.GroupId)} }, "InvalidParameter", "belong to different networks"},
		{"min above max", func(in *ec2.RunInstancesInput) { in.MinCount = aws.Int32(3) }, "InvalidParameterValue", "MinCount"},
		{"zero count", func(in *ec2.RunInstancesInput) { in.MinCount, in.MaxCount = aws.Int32(0), aws.Int32(0) }, "InvalidParameterValue", "minCount"},
		{"bad http tokens", func(in *ec2.RunInstancesInput) {
			in.MetadataOptions = &types.InstanceMetadataOptionsRequest{HttpTokens: "sometimes"}
		}, "InvalidParameterValue", "HttpTokens"},
		{"hop limit", func(in *ec2.RunInstancesInput) {
			in.MetadataOptions = &types.InstanceMetadataOptionsRequest{HttpPutResponseHopLimit: aws.Int32(65)}
		}, "InvalidParameterValue", "HttpPutResponseHopLimit"},
		{"root smaller than snapshot", func(in *ec2.RunInstancesInput) {
			in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sda1"), Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(4)}}}
		}, "InvalidBlockDeviceMapping", "smaller than snapshot"},
		{"kms without encryption", func(in *ec2.RunInstancesInput) {
			in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sda1"), Ebs: &types.EbsBlockDevice{KmsKeyId: aws.String("k")}}}
		}, "InvalidParameterDependency", "KmsKeyId"},
		{"bad volume type", func(in *ec2.RunInstancesInput) {
			in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sda1"), Ebs: &types.EbsBlockDevice{VolumeType: "gp9"}}}
		}, "InvalidParameterValue", "volumeType"},
		{"subnet twice", func(in *ec2.RunInstancesInput) {
			in.SubnetId = aws.String(private)
			in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0), SubnetId: aws.String(private)}}
		}, "InvalidParameterCombination", "subnet"},
		{"bad tag resource type", func(in *ec2.RunInstancesInput) {
			in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeVpc, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}}
		}, "InvalidParameterValue", "'vpc' is not a valid taggable resource type"},
		{"reserved tag key", func(in *ec2.RunInstancesInput) {
			in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("aws:x"), Value: aws.String("v")}}}}
		}, "InvalidParameterValue", "aws:"},
		{"user data not base64", func(in *ec2.RunInstancesInput) { in.UserData = aws.String("#!/bin/bash") }, "InvalidParameterValue", "BASE64"},
		{"bad placement", func(in *ec2.RunInstancesInput) {
			in.Placement = &types.Placement{AvailabilityZone: aws.String("us-east-1z")}
		}, "InvalidParameterValue", "us-east-1z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := runInput(1)
			tc.mod(in)
			_, err := h.ec2.RunInstances(ctx(t), in)
			wantCode(t, err, tc.code, tc.msgPart)
		})
	}
	if n := len(h.sim.Instances()); n != 0 {
		t.Fatalf("failed launches left %d instances", n)
	}
}

// TestLifecycleAndWaiters: pending -> running by the latency model (SDK
// InstanceRunning waiter), then shutting-down -> terminated (InstanceTerminated
// waiter), subscribers told of each change in order, volumes deleted or kept
// by DeleteOnTermination, terminated instances still described.
func TestLifecycleAndWaiters(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	seen := map[string][]string{}
	h.sim.OnStateChange(func(in Instance) {
		mu.Lock()
		defer mu.Unlock()
		seen[in.ID] = append(seen[in.ID], in.State)
	})
	in := runInput(2)
	in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sdf"), Ebs: &types.EbsBlockDevice{
		VolumeSize: aws.Int32(10), DeleteOnTermination: aws.Bool(false)}}}
	out := h.run(t, in)
	all := ids(out.Instances)
	h.waitRunning(t, all...)
	for _, inst := range describe(t, h.ec2, &ec2.DescribeInstancesInput{InstanceIds: all}) {
		if inst.State.Name != types.InstanceStateNameRunning || aws.ToInt32(inst.State.Code) != 16 || inst.MetadataOptions.State != types.InstanceMetadataOptionsStateApplied {
			t.Fatalf("after waiter: %s state %+v metadata %s", aws.ToString(inst.InstanceId), inst.State, inst.MetadataOptions.State)
		}
	}
	rec, _ := h.sim.Instance(all[0])
	if rec.RunningAt.Before(rec.LaunchedAt) || rec.RunningAt.IsZero() {
		t.Errorf("RunningAt %v LaunchedAt %v", rec.RunningAt, rec.LaunchedAt)
	}

	term := h.terminate(t, all...)
	for _, ch := range term.TerminatingInstances {
		if ch.PreviousState.Name != types.InstanceStateNameRunning || ch.CurrentState.Name != types.InstanceStateNameShuttingDown || aws.ToInt32(ch.CurrentState.Code) != 32 {
			t.Fatalf("terminate answer %s: %+v -> %+v", aws.ToString(ch.InstanceId), ch.PreviousState, ch.CurrentState)
		}
	}
	h.waitTerminated(t, all...)
	again := h.terminate(t, all...) // idempotent
	for _, ch := range again.TerminatingInstances {
		if ch.PreviousState.Name != types.InstanceStateNameTerminated || ch.CurrentState.Name != types.InstanceStateNameTerminated || aws.ToInt32(ch.CurrentState.Code) != 48 {
			t.Fatalf("second terminate %s: %+v -> %+v", aws.ToString(ch.InstanceId), ch.PreviousState, ch.CurrentState)
		}
	}
	insts := describe(t, h.ec2, &ec2.DescribeInstancesInput{InstanceIds: all})
	if len(insts) != 2 {
		t.Fatalf("terminated instances should stay visible, got %d", len(insts))
	}
	for _, inst := range insts {
		if inst.PrivateIpAddress != nil || len(inst.BlockDeviceMappings) != 0 || inst.StateReason == nil {
			t.Errorf("terminated %s still has ip %v bdm %v, reason %v", aws.ToString(inst.InstanceId), aws.ToString(inst.PrivateIpAddress), inst.BlockDeviceMappings, inst.StateReason)
		}
	}
	vols, err := h.ec2.DescribeVolumes(ctx(t), &ec2.DescribeVolumesInput{})
	if err != nil {
		t.Fatalf("DescribeVolumes: %v", err)
	}
	if len(vols.Volumes) != 2 {
		t.Fatalf("after termination %d volumes remain, want the 2 kept data volumes", len(vols.Volumes))
	}
	for _, v := range vols.Volumes {
		if v.State != types.VolumeStateAvailable || len(v.Attachments) != 0 || aws.ToInt32(v.Size) != 10 {
			t.Errorf("kept volume %+v", v)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range all {
		if want := []string{"pending", "running", "shutting-down", "terminated"}; !slices.Equal(seen[id], want) {
			t.Errorf("%s state changes %v, want %v", id, seen[id], want)
		}
	}
	rec, _ = h.sim.Instance(all[0])
	if rec.State != StateTerminated || rec.TerminatedAt.IsZero() {
		t.Errorf("sim record after terminate %+v", rec)
	}
}

// TestLatencyModel: RunInstances takes the model's call delay, and an
// instance stays pending for the boot delay; terminating a pending instance
// works too.
func TestLatencyModel(t *testing.T) {
	h := newHarness(t)
	h.lat.Fix(latency.RunInstancesCall, 150) // 150 ms at scale 0.001
	h.lat.Fix(latency.Boot, 300)
	start := time.Now()
	out := h.run(t, runInput(1))
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("RunInstances answered in %v, want >= 150ms", d)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	time.Sleep(50 * time.Millisecond)
	if rec, _ := h.sim.Instance(id); rec.State != StatePending {
		t.Fatalf("state %s before the boot delay, want pending", rec.State)
	}
	h.waitRunning(t, id)
	if rec, _ := h.sim.Instance(id); rec.RunningAt.Sub(rec.LaunchedAt) < 250*time.Millisecond {
		t.Fatalf("running after %v, want about 300ms", rec.RunningAt.Sub(rec.LaunchedAt))
	}
	h.lat.Unfix(latency.RunInstancesCall)
	h.lat.Unfix(latency.Boot)

	h.lat.Fix(latency.Boot, 100000) // never boots within the test
	p := h.run(t, runInput(1))
	pid := aws.ToString(p.Instances[0].InstanceId)
	term := h.terminate(t, pid)
	if term.TerminatingInstances[0].PreviousState.Name != types.InstanceStateNamePending {
		t.Fatalf("previous state %s, want pending", term.TerminatingInstances[0].PreviousState.Name)
	}
	h.waitTerminated(t, pid)
	if rec, _ := h.sim.Instance(pid); !rec.RunningAt.IsZero() {
		t.Fatalf("a pending instance terminated must never run, got RunningAt %v", rec.RunningAt)
	}
}

// TestInstanceRunningWaiterFailsOnTerminated: the SDK waiter gives up, as on
// AWS, when an instance it waits for is terminating.
func TestInstanceRunningWaiterFailsOnTerminated(t *testing.T) {
	h := newHarness(t)
	h.lat.Fix(latency.Boot, 100000)
	out := h.run(t, runInput(1))
	id := aws.ToString(out.Instances[0].InstanceId)
	h.terminate(t, id)
	w := ec2.NewInstanceRunningWaiter(h.ec2, fastWaiter[ec2.InstanceRunningWaiterOptions])
	err := w.Wait(ctx(t), &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, 2*time.Second)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "failure") {
		t.Fatalf("waiter on a terminating instance: %v, want a failure state", err)
	}
}

// TestDescribeInstancesFilters: each supported filter, wildcards, and AND/OR.
func TestDescribeInstancesFilters(t *testing.T) {
	h := newHarness(t)
	private := h.sim.AddSubnet("us-east-1", "", "172.31.96.0/24", "us-east-1b", false)
	a := runInput(2)
	a.ClientToken = aws.String("tok-a")
	a.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{
		{Key: aws.String("mecd:cluster-id"), Value: aws.String("alpha")}, {Key: aws.String("role"), Value: aws.String("cp")}}}}
	ra := h.run(t, a)
	b := runInput(1)
	b.SubnetId = aws.String(private)
	b.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{
		{Key: aws.String("mecd:cluster-id"), Value: aws.String("beta")}}}}
	rb := h.run(t, b)
	h.terminate(t, ids(rb.Instances)...)
	h.waitTerminated(t, ids(rb.Instances)...)
	idA, idB := ids(ra.Instances), ids(rb.Instances)
	vpcs, _ := h.ec2.DescribeVpcs(ctx(t), &ec2.DescribeVpcsInput{})
	vpc := aws.ToString(vpcs.Vpcs[0].VpcId)

	f := func(name string, values ...string) types.Filter {
		return types.Filter{Name: aws.String(name), Values: values}
	}
	cases := []struct {
		name    string
		filters []types.Filter
		want    []string
	}{
		{"tag value", []types.Filter{f("tag:mecd:cluster-id", "alpha")}, idA},
		{"tag values ORed", []types.Filter{f("tag:mecd:cluster-id", "alpha", "beta")}, append(slices.Clone(idA), idB...)},
		{"tag wildcard", []types.Filter{f("tag:mecd:cluster-id", "b*")}, idB},
		{"tag-key", []types.Filter{f("tag-key", "role")}, idA},
		{"filters ANDed", []types.Filter{f("tag:mecd:cluster-id", "alpha", "beta"), f("instance-state-name", "terminated")}, idB},
		{"state", []types.Filter{f("instance-state-name", "pending", "running")}, idA},
		{"instance-id", []types.Filter{f("instance-id", idA[1])}, idA[1:]},
		{"vpc-id", []types.Filter{f("vpc-id", vpc)}, idA}, // terminated instances leave their VPC
		{"subnet-id", []types.Filter{f("subnet-id", aws.ToString(ra.Instances[0].SubnetId))}, idA},
		{"reservation-id", []types.Filter{f("reservation-id", aws.ToString(rb.ReservationId))}, idB},
		{"client-token", []types.Filter{f("client-token", "tok-a")}, idA},
		{"no match", []types.Filter{f("tag:mecd:cluster-id", "gamma")}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ids(describe(t, h.ec2, &ec2.DescribeInstancesInput{Filters: tc.filters}))
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
	_, err := h.ec2.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{Filters: []types.Filter{f("colour", "red")}})
	wantCode(t, err, "InvalidParameterValue", "The filter 'colour' is invalid")
}

// TestDescribeInstancesErrors: unknown, malformed, and MaxResults with ids.
func TestDescribeInstancesErrors(t *testing.T) {
	h := newHarness(t)
	out := h.run(t, runInput(1))
	known := aws.ToString(out.Instances[0].InstanceId)
	cases := []struct {
		name    string
		in      *ec2.DescribeInstancesInput
		code    string
		msgPart string
	}{
		{"unknown", &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}}, "InvalidInstanceID.NotFound", "The instance ID 'i-0123456789abcdef0' does not exist"},
		{"unknown among known", &ec2.DescribeInstancesInput{InstanceIds: []string{known, "i-0123456789abcdef0", "i-0123456789abcdef1"}}, "InvalidInstanceID.NotFound", "The instance IDs 'i-0123456789abcdef0, i-0123456789abcdef1' do not exist"},
		{"malformed", &ec2.DescribeInstancesInput{InstanceIds: []string{"i-zz"}}, "InvalidInstanceID.Malformed", `Invalid id: "i-zz"`},
		{"max with ids", &ec2.DescribeInstancesInput{InstanceIds: []string{known}, MaxResults: aws.Int32(5)}, "InvalidParameterCombination", "maxResults"},
		{"max too small", &ec2.DescribeInstancesInput{MaxResults: aws.Int32(3)}, "InvalidParameterValue", "maxResults"},
		{"bad token", &ec2.DescribeInstancesInput{NextToken: aws.String("garbage!")}, "InvalidPaginationToken", "garbage"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.ec2.DescribeInstances(ctx(t), tc.in)
			wantCode(t, err, tc.code, tc.msgPart)
		})
	}
	_, err := h.ec2.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
	wantCode(t, err, "InvalidInstanceID.NotFound", "i-0123456789abcdef0")
	// The InstanceRunning waiter retries on NotFound (eventual consistency)
	// until its deadline.
	w := ec2.NewInstanceRunningWaiter(h.ec2, fastWaiter[ec2.InstanceRunningWaiterOptions])
	if err := w.Wait(ctx(t), &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}}, 100*time.Millisecond); err == nil || strings.Contains(strings.ToLower(err.Error()), "failure") {
		t.Fatalf("waiter on an unknown instance: %v", err)
	}
}

// TestDescribeInstancesPagination: the SDK paginator walks every page.
func TestDescribeInstancesPagination(t *testing.T) {
	h := newHarness(t)
	var want []string
	for range 3 {
		want = append(want, ids(h.run(t, runInput(4)).Instances)...)
	}
	p := ec2.NewDescribeInstancesPaginator(h.ec2, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	var got []string
	var pages []int
	for p.HasMorePages() {
		out, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("page %d: %v", len(pages), err)
		}
		n := 0
		for _, r := range out.Reservations {
			got = append(got, ids(r.Instances)...)
			n += len(r.Instances)
		}
		pages = append(pages, n)
	}
	if !slices.Equal(pages, []int{5, 5, 2}) {
		t.Fatalf("page sizes %v, want [5 5 2]", pages)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("paginated ids %v, want %v", got, want)
	}
}

// TestDescribeInstanceTypes: real vCPU, memory and architecture per type;
// unknown types fail as EC2 does; filtering and paging over the catalogue.
func TestDescribeInstanceTypes(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		typ   types.InstanceType
		arch  types.ArchitectureType
		vcpus int32
		mib   int64
	}{
		{"t4g.nano", types.ArchitectureTypeArm64, 2, 512},
		{"t4g.medium", types.ArchitectureTypeArm64, 2, 4096},
		{"t4g.2xlarge", types.ArchitectureTypeArm64, 8, 32768},
		{"t3.micro", types.ArchitectureTypeX8664, 2, 1024},
		{"t3.2xlarge", types.ArchitectureTypeX8664, 8, 32768},
		{"m7g.medium", types.ArchitectureTypeArm64, 1, 4096},
		{"m7g.4xlarge", types.ArchitectureTypeArm64, 16, 65536},
		{"c7g.large", types.ArchitectureTypeArm64, 2, 4096},
		{"c7g.4xlarge", types.ArchitectureTypeArm64, 16, 32768},
		{"m6i.large", types.ArchitectureTypeX8664, 2, 8192},
		{"m6i.4xlarge", types.ArchitectureTypeX8664, 16, 65536},
	}
	for _, tc := range cases {
		t.Run(string(tc.typ), func(t *testing.T) {
			out, err := h.ec2.DescribeInstanceTypes(ctx(t), &ec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{tc.typ}})
			if err != nil {
				t.Fatalf("DescribeInstanceTypes: %v", err)
			}
			if len(out.InstanceTypes) != 1 {
				t.Fatalf("%d types", len(out.InstanceTypes))
			}
			it := out.InstanceTypes[0]
			if it.InstanceType != tc.typ || !slices.Equal(it.ProcessorInfo.SupportedArchitectures, []types.ArchitectureType{tc.arch}) ||
				aws.ToInt32(it.VCpuInfo.DefaultVCpus) != tc.vcpus || aws.ToInt64(it.MemoryInfo.SizeInMiB) != tc.mib {
				t.Fatalf("got %s %v %d vCPU %d MiB", it.InstanceType, it.ProcessorInfo.SupportedArchitectures, aws.ToInt32(it.VCpuInfo.DefaultVCpus), aws.ToInt64(it.MemoryInfo.SizeInMiB))
			}
		})
	}
	_, err := h.ec2.DescribeInstanceTypes(ctx(t), &ec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{"t4g.medium", "x9.tiny"}})
	wantCode(t, err, "InvalidInstanceType", "The following supplied instance types do not exist: [x9.tiny]")

	p := ec2.NewDescribeInstanceTypesPaginator(h.ec2, &ec2.DescribeInstanceTypesInput{
		MaxResults: aws.Int32(5),
		Filters:    []types.Filter{{Name: aws.String("processor-info.supported-architecture"), Values: []string{"arm64"}}},
	})
	var arm []string
	for p.HasMorePages() {
		out, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("NextPage: %v", err)
		}
		for _, it := range out.InstanceTypes {
			arm = append(arm, string(it.InstanceType))
		}
	}
	for _, want := range []string{"t4g.medium", "m7g.large", "c7g.4xlarge"} {
		if !slices.Contains(arm, want) {
			t.Errorf("arm64 types %v lack %s", arm, want)
		}
	}
	for _, typ := range arm {
		if strings.HasPrefix(typ, "t3") || strings.HasPrefix(typ, "m6i") {
			t.Errorf("x86 type %s in the arm64 list", typ)
		}
	}
}

// TestDescribeImages: registered AMIs with their architecture; unknown ones fail.
func TestDescribeImages(t *testing.T) {
	h := newHarness(t)
	out, err := h.ec2.DescribeImages(ctx(t), &ec2.DescribeImagesInput{ImageIds: []string{armAMI, x86AMI}})
	if err != nil {
		t.Fatalf("DescribeImages: %v", err)
	}
	arch := map[string]types.ArchitectureValues{}
	for _, img := range out.Images {
		arch[aws.ToString(img.ImageId)] = img.Architecture
		if aws.ToString(img.RootDeviceName) != "/dev/sda1" || img.State != types.ImageStateAvailable {
			t.Errorf("image %+v", img)
		}
	}
	if arch[armAMI] != types.ArchitectureValuesArm64 || arch[x86AMI] != types.ArchitectureValuesX8664 {
		t.Fatalf("architectures %v", arch)
	}
	_, err = h.ec2.DescribeImages(ctx(t), &ec2.DescribeImagesInput{ImageIds: []string{"ami-0000000000000dead"}})
	wantCode(t, err, "InvalidAMIID.NotFound", "ami-0000000000000dead")
}

// TestSecurityGroupRules: creation (default egress, tags, duplicates), CIDR
// and group-pair rules including a group referring to itself, duplicates and
// bad input, describing with filters, revoking.
func TestSecurityGroupRules(t *testing.T) {
	h := newHarness(t)
	created, err := h.ec2.CreateSecurityGroup(ctx(t), &ec2.CreateSecurityGroupInput{
		GroupName: aws.String("mec-c1"), Description: aws.String("mecd cluster c1"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroup, Tags: []types.Tag{
			{Key: aws.String("mecd:cluster-id"), Value: aws.String("c1")}}}},
	})
	if err != nil {
		t.Fatalf("CreateSecurityGroup: %v", err)
	}
	sg := aws.ToString(created.GroupId)
	if !reGroupID.MatchString(sg) || !strings.HasSuffix(aws.ToString(created.SecurityGroupArn), "security-group/"+sg) {
		t.Fatalf("created %s arn %s", sg, aws.ToString(created.SecurityGroupArn))
	}
	_, err = h.ec2.CreateSecurityGroup(ctx(t), &ec2.CreateSecurityGroupInput{GroupName: aws.String("mec-c1"), Description: aws.String("again")})
	wantCode(t, err, "InvalidGroup.Duplicate", "The security group 'mec-c1' already exists for VPC 'vpc-")
	_, err = h.ec2.CreateSecurityGroup(ctx(t), &ec2.CreateSecurityGroupInput{GroupName: aws.String("x"), Description: aws.String("d"), VpcId: aws.String("vpc-00000000000000000")})
	wantCode(t, err, "InvalidVpcID.NotFound", "vpc-00000000000000000")

	_, err = h.ec2.AuthorizeSecurityGroupIngress(ctx(t), &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId: aws.String(sg),
		IpPermissions: []types.IpPermission{
			{IpProtocol: aws.String("-1"), UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: aws.String(sg), Description: aws.String("intra-cluster")}}},
			{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(16443), ToPort: aws.Int32(16443), IpRanges: []types.IpRange{
				{CidrIp: aws.String("203.0.113.0/24"), Description: aws.String("api")}, {CidrIp: aws.String("198.51.100.7/32")}},
				Ipv6Ranges: []types.Ipv6Range{{CidrIpv6: aws.String("2001:db8::/32")}}},
			{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(30000), ToPort: aws.Int32(32767), IpRanges: []types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}}},
		},
	})
	if err != nil {
		t.Fatalf("AuthorizeSecurityGroupIngress: %v", err)
	}
	peer := h.createGroup(t, "peer")
	if _, err := h.ec2.AuthorizeSecurityGroupEgress(ctx(t), &ec2.AuthorizeSecurityGroupEgressInput{
		GroupId: aws.String(sg),
		IpPermissions: []types.IpPermission{{IpProtocol: aws.String("udp"), FromPort: aws.Int32(53), ToPort: aws.Int32(53),
			UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: aws.String(peer)}}}},
	}); err != nil {
		t.Fatalf("AuthorizeSecurityGroupEgress: %v", err)
	}

	bad := []struct {
		name    string
		perm    types.IpPermission
		group   string
		code    string
		msgPart string
	}{
		{"duplicate cidr", types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(16443), ToPort: aws.Int32(16443),
			IpRanges: []types.IpRange{{CidrIp: aws.String("203.0.113.0/24")}}}, sg, "InvalidPermission.Duplicate", `peer: 203.0.113.0/24, TCP, from port: 16443, to port: 16443, ALLOW`},
		{"duplicate self pair", types.IpPermission{IpProtocol: aws.String("-1"), UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: aws.String(sg)}}},
			sg, "InvalidPermission.Duplicate", "already exists"},
		{"invalid cidr", types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(1), ToPort: aws.Int32(2),
			IpRanges: []types.IpRange{{CidrIp: aws.String("300.1.1.1/33")}}}, sg, "InvalidParameterValue", "300.1.1.1/33"},
		{"unknown group", types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(1), ToPort: aws.Int32(2),
			IpRanges: []types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}}}, "sg-00000000000000000", "InvalidGroup.NotFound", "sg-00000000000000000"},
		{"unknown pair group", types.IpPermission{IpProtocol: aws.String("-1"), UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: aws.String("sg-0000000000000beef")}}},
			sg, "InvalidGroup.NotFound", "sg-0000000000000beef"},
		{"bad protocol", types.IpPermission{IpProtocol: aws.String("tcpx"), IpRanges: []types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}}},
			sg, "InvalidParameterValue", "tcpx"},
		{"bad ports", types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(10), ToPort: aws.Int32(5),
			IpRanges: []types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}}}, sg, "InvalidParameterValue", "port range"},
		{"tcp without ports", types.IpPermission{IpProtocol: aws.String("tcp"), IpRanges: []types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}}},
			sg, "InvalidParameterValue", "from and to ports"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.ec2.AuthorizeSecurityGroupIngress(ctx(t), &ec2.AuthorizeSecurityGroupIngressInput{
				GroupId: aws.String(tc.group), IpPermissions: []types.IpPermission{tc.perm}})
			wantCode(t, err, tc.code, tc.msgPart)
		})
	}

	// Describe, by id and by each filter.
	for _, in := range []*ec2.DescribeSecurityGroupsInput{
		{GroupIds: []string{sg}},
		{Filters: []types.Filter{{Name: aws.String("group-name"), Values: []string{"mec-c1"}}}},
		{Filters: []types.Filter{{Name: aws.String("group-id"), Values: []string{sg}}}},
		{Filters: []types.Filter{{Name: aws.String("tag:mecd:cluster-id"), Values: []string{"c1"}}}},
		{Filters: []types.Filter{{Name: aws.String("vpc-id"), Values: []string{aws.ToString(describeDefaultVPC(t, h))}},
			{Name: aws.String("group-name"), Values: []string{"mec-*"}}}},
	} {
		out, err := h.ec2.DescribeSecurityGroups(ctx(t), in)
		if err != nil {
			t.Fatalf("DescribeSecurityGroups: %v", err)
		}
		if len(out.SecurityGroups) != 1 || aws.ToString(out.SecurityGroups[0].GroupId) != sg {
			t.Fatalf("DescribeSecurityGroups %+v found %d groups", in, len(out.SecurityGroups))
		}
	}
	out, err := h.ec2.DescribeSecurityGroups(ctx(t), &ec2.DescribeSecurityGroupsInput{GroupIds: []string{sg}})
	if err != nil {
		t.Fatalf("DescribeSecurityGroups: %v", err)
	}
	g := out.SecurityGroups[0]
	if aws.ToString(g.GroupName) != "mec-c1" || aws.ToString(g.Description) != "mecd cluster c1" || tagMap(g.Tags)["mecd:cluster-id"] != "c1" {
		t.Errorf("group %+v", g)
	}
	if len(g.IpPermissions) != 3 {
		t.Fatalf("ingress permissions %d, want 3: %+v", len(g.IpPermissions), g.IpPermissions)
	}
	self := g.IpPermissions[0]
	if aws.ToString(self.IpProtocol) != "-1" || self.FromPort != nil || len(self.UserIdGroupPairs) != 1 ||
		aws.ToString(self.UserIdGroupPairs[0].GroupId) != sg || aws.ToString(self.UserIdGroupPairs[0].Description) != "intra-cluster" {
		t.Errorf("self rule %+v", self)
	}
	api := g.IpPermissions[1]
	if aws.ToInt32(api.FromPort) != 16443 || aws.ToInt32(api.ToPort) != 16443 || len(api.IpRanges) != 2 ||
		aws.ToString(api.IpRanges[0].CidrIp) != "203.0.113.0/24" || aws.ToString(api.IpRanges[0].Description) != "api" ||
		len(api.Ipv6Ranges) != 1 || aws.ToString(api.Ipv6Ranges[0].CidrIpv6) != "2001:db8::/32" {
		t.Errorf("api rule %+v", api)
	}
	if len(g.IpPermissionsEgress) != 2 || aws.ToString(g.IpPermissionsEgress[0].IpProtocol) != "-1" ||
		aws.ToString(g.IpPermissionsEgress[0].IpRanges[0].CidrIp) != "0.0.0.0/0" ||
		aws.ToString(g.IpPermissionsEgress[1].UserIdGroupPairs[0].GroupId) != peer {
		t.Errorf("egress %+v", g.IpPermissionsEgress)
	}

	// Revoke: a NodePort rule, the default egress, then a rule that is gone.
	if _, err := h.ec2.RevokeSecurityGroupIngress(ctx(t), &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String(sg),
		IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(30000), ToPort: aws.Int32(32767),
			IpRanges: []types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}}}}}); err != nil {
		t.Fatalf("RevokeSecurityGroupIngress: %v", err)
	}
	if _, err := h.ec2.RevokeSecurityGroupEgress(ctx(t), &ec2.RevokeSecurityGroupEgressInput{GroupId: aws.String(sg),
		IpPermissions: []types.IpPermission{{IpProtocol: aws.String("-1"), IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}}}); err != nil {
		t.Fatalf("RevokeSecurityGroupEgress: %v", err)
	}
	_, err = h.ec2.RevokeSecurityGroupIngress(ctx(t), &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String(sg),
		IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
			IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}}})
	wantCode(t, err, "InvalidPermission.NotFound", "does not exist")

	var snap SecurityGroup
	for _, sgs := range h.sim.SecurityGroups() {
		if sgs.ID == sg {
			snap = sgs
		}
	}
	wantIngress := []Rule{
		{Protocol: "-1", FromPort: -1, ToPort: -1, GroupIDs: []string{sg}, Description: "intra-cluster"},
		{Protocol: "tcp", FromPort: 16443, ToPort: 16443, CIDRs: []string{"203.0.113.0/24"}, Description: "api"},
		{Protocol: "tcp", FromPort: 16443, ToPort: 16443, CIDRs: []string{"198.51.100.7/32"}, IPv6CIDRs: []string{"2001:db8::/32"}},
	}
	if len(snap.Ingress) != len(wantIngress) {
		t.Fatalf("SecurityGroups() ingress %+v", snap.Ingress)
	}
	for i, r := range snap.Ingress {
		w := wantIngress[i]
		if r.Protocol != w.Protocol || r.FromPort != w.FromPort || r.ToPort != w.ToPort || r.Description != w.Description ||
			!slices.Equal(r.CIDRs, w.CIDRs) || !slices.Equal(r.IPv6CIDRs, w.IPv6CIDRs) || !slices.Equal(r.GroupIDs, w.GroupIDs) {
			t.Errorf("ingress %d = %+v, want %+v", i, r, w)
		}
	}
	if len(snap.Egress) != 1 || snap.Egress[0].Protocol != "udp" || snap.Egress[0].GroupIDs[0] != peer {
		t.Errorf("SecurityGroups() egress %+v", snap.Egress)
	}
}

func describeDefaultVPC(t *testing.T, h *harness) *string {
	t.Helper()
	out, err := h.ec2.DescribeVpcs(ctx(t), &ec2.DescribeVpcsInput{Filters: []types.Filter{{Name: aws.String("isDefault"), Values: []string{"true"}}}})
	if err != nil || len(out.Vpcs) != 1 {
		t.Fatalf("DescribeVpcs isDefault: %v %+v", err, out)
	}
	return out.Vpcs[0].VpcId
}

// TestDeleteSecurityGroupDependencies: a group in use by an instance that is
// not yet terminated, or referenced by another group, cannot be deleted;
// once the instance is terminated and the reference revoked, it can.
func TestDeleteSecurityGroupDependencies(t *testing.T) {
	h := newHarness(t)
	h.lat.Fix(latency.Terminate, 500) // 500 ms: long enough to try during shutting-down
	sg := h.createGroup(t, "cluster")
	other := h.createGroup(t, "other")
	if _, err := h.ec2.AuthorizeSecurityGroupIngress(ctx(t), &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(other),
		IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(443), ToPort: aws.Int32(443),
			UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: aws.String(sg)}}}}}); err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	in := runInput(1)
	in.SecurityGroupIds = []string{sg}
	id := aws.ToString(h.run(t, in).Instances[0].InstanceId)
	del := func() error {
		_, err := h.ec2.DeleteSecurityGroup(ctx(t), &ec2.DeleteSecurityGroupInput{GroupId: aws.String(sg)})
		return err
	}
	wantCode(t, del(), "DependencyViolation", "resource "+sg+" has a dependent object")
	h.terminate(t, id)
	wantCode(t, del(), "DependencyViolation", "has a dependent object") // shutting-down still holds it
	h.waitTerminated(t, id)
	wantCode(t, del(), "DependencyViolation", "has a dependent object") // the other group's rule
	if _, err := h.ec2.RevokeSecurityGroupIngress(ctx(t), &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String(other),
		IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(443), ToPort: aws.Int32(443),
			UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: aws.String(sg)}}}}}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if err := del(); err != nil {
		t.Fatalf("DeleteSecurityGroup after termination: %v", err)
	}
	wantCode(t, del(), "InvalidGroup.NotFound", "The security group '"+sg+"' does not exist")
	// A group referring to itself can be deleted.
	self := h.createGroup(t, "self")
	if _, err := h.ec2.AuthorizeSecurityGroupIngress(ctx(t), &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(self),
		IpPermissions: []types.IpPermission{{IpProtocol: aws.String("-1"), UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: aws.String(self)}}}}}); err != nil {
		t.Fatalf("Authorize self: %v", err)
	}
	if _, err := h.ec2.DeleteSecurityGroup(ctx(t), &ec2.DeleteSecurityGroupInput{GroupId: aws.String(self)}); err != nil {
		t.Fatalf("delete self-referencing group: %v", err)
	}
	def, err := h.ec2.DescribeSecurityGroups(ctx(t), &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{{Name: aws.String("group-name"), Values: []string{"default"}}}})
	if err != nil || len(def.SecurityGroups) != 1 {
		t.Fatalf("default group: %v %+v", err, def)
	}
	_, err = h.ec2.DeleteSecurityGroup(ctx(t), &ec2.DeleteSecurityGroupInput{GroupId: def.SecurityGroups[0].GroupId})
	wantCode(t, err, "CannotDelete", "cannot be deleted by a user")
}

// TestTags: CreateTags / DeleteTags on instances, volumes and groups, and the
// NotFound code matching each kind of unknown resource.
func TestTags(t *testing.T) {
	h := newHarness(t)
	out := h.run(t, runInput(1))
	inst := aws.ToString(out.Instances[0].InstanceId)
	vol := aws.ToString(out.Instances[0].BlockDeviceMappings[0].Ebs.VolumeId)
	sg := h.createGroup(t, "tagged")
	tag := func(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }
	if _, err := h.ec2.CreateTags(ctx(t), &ec2.CreateTagsInput{Resources: []string{inst, vol, sg},
		Tags: []types.Tag{tag("mecd:managed", "true"), tag("team", "edge")}}); err != nil {
		t.Fatalf("CreateTags: %v", err)
	}
	if got := tagMap(describe(t, h.ec2, &ec2.DescribeInstancesInput{InstanceIds: []string{inst}})[0].Tags); got["mecd:managed"] != "true" || got["team"] != "edge" {
		t.Errorf("instance tags %v", got)
	}
	vols, err := h.ec2.DescribeVolumes(ctx(t), &ec2.DescribeVolumesInput{Filters: []types.Filter{{Name: aws.String("tag:team"), Values: []string{"edge"}}}})
	if err != nil || len(vols.Volumes) != 1 || aws.ToString(vols.Volumes[0].VolumeId) != vol {
		t.Errorf("volume by tag: %v %+v", err, vols)
	}
	// DeleteTags: by key; with a non-matching value it keeps the tag.
	if _, err := h.ec2.DeleteTags(ctx(t), &ec2.DeleteTagsInput{Resources: []string{inst, sg},
		Tags: []types.Tag{{Key: aws.String("team")}, tag("mecd:managed", "false")}}); err != nil {
		t.Fatalf("DeleteTags: %v", err)
	}
	rec, _ := h.sim.Instance(inst)
	if _, ok := rec.Tags["team"]; ok || rec.Tags["mecd:managed"] != "true" {
		t.Errorf("instance tags after DeleteTags %v", rec.Tags)
	}
	for _, g := range h.sim.SecurityGroups() {
		if g.ID == sg && (g.Tags["team"] != "" || g.Tags["mecd:managed"] != "true") {
			t.Errorf("group tags after DeleteTags %v", g.Tags)
		}
	}
	cases := []struct{ id, code string }{
		{"i-0123456789abcdef0", "InvalidInstanceID.NotFound"},
		{"vol-0123456789abcdef0", "InvalidVolume.NotFound"},
		{"sg-0123456789abcdef0", "InvalidGroup.NotFound"},
		{"subnet-0123456789abcdef0", "InvalidSubnetID.NotFound"},
		{"vpc-0123456789abcdef0", "InvalidVpcID.NotFound"},
		{"thing-1", "InvalidID"},
	}
	for _, tc := range cases {
		t.Run(tc.code, func(t *testing.T) {
			_, err := h.ec2.CreateTags(ctx(t), &ec2.CreateTagsInput{Resources: []string{inst, tc.id}, Tags: []types.Tag{tag("k", "v")}})
			wantCode(t, err, tc.code, tc.id)
			_, err = h.ec2.DeleteTags(ctx(t), &ec2.DeleteTagsInput{Resources: []string{tc.id}})
			wantCode(t, err, tc.code, tc.id)
		})
	}
	if rec, _ := h.sim.Instance(inst); rec.Tags["k"] != "" {
		t.Errorf("a failed CreateTags tagged %s anyway", inst)
	}
}

// TestVPCAndSubnets: the default VPC, its subnets and main route table to an
// internet gateway; an added private subnet with only the local route (and a
// NAT route when asked), launching there gives no public IP; AZs.
func TestVPCAndSubnets(t *testing.T) {
	h := newHarness(t)
	vpc := aws.ToString(describeDefaultVPC(t, h))
	vpcs, err := h.ec2.DescribeVpcs(ctx(t), &ec2.DescribeVpcsInput{VpcIds: []string{vpc}})
	if err != nil || aws.ToString(vpcs.Vpcs[0].CidrBlock) != "172.31.0.0/16" || !aws.ToBool(vpcs.Vpcs[0].IsDefault) {
		t.Fatalf("default VPC: %v %+v", err, vpcs)
	}
	subs, err := h.ec2.DescribeSubnets(ctx(t), &ec2.DescribeSubnetsInput{Filters: []types.Filter{
		{Name: aws.String("vpc-id"), Values: []string{vpc}}, {Name: aws.String("default-for-az"), Values: []string{"true"}}}})
	if err != nil {
		t.Fatalf("DescribeSubnets: %v", err)
	}
	got := map[string]string{}
	for _, sn := range subs.Subnets {
		got[aws.ToString(sn.AvailabilityZone)] = aws.ToString(sn.CidrBlock)
		if !aws.ToBool(sn.MapPublicIpOnLaunch) || aws.ToInt32(sn.AvailableIpAddressCount) != 4091 {
			t.Errorf("default subnet %+v", sn)
		}
	}
	want := map[string]string{"us-east-1a": "172.31.0.0/20", "us-east-1b": "172.31.16.0/20", "us-east-1c": "172.31.32.0/20"}
	if len(got) != 3 || got["us-east-1a"] != want["us-east-1a"] || got["us-east-1b"] != want["us-east-1b"] || got["us-east-1c"] != want["us-east-1c"] {
		t.Fatalf("default subnets %v, want %v", got, want)
	}
	one, err := h.ec2.DescribeSubnets(ctx(t), &ec2.DescribeSubnetsInput{Filters: []types.Filter{{Name: aws.String("availability-zone"), Values: []string{"us-east-1b"}}}})
	if err != nil || len(one.Subnets) != 1 {
		t.Fatalf("subnet by AZ: %v %+v", err, one)
	}
	_, err = h.ec2.DescribeSubnets(ctx(t), &ec2.DescribeSubnetsInput{SubnetIds: []string{"subnet-0123456789abcdef0"}})
	wantCode(t, err, "InvalidSubnetID.NotFound", "subnet-0123456789abcdef0")

	// Default subnets use the main route table implicitly, as on AWS.
	main, err := h.ec2.DescribeRouteTables(ctx(t), &ec2.DescribeRouteTablesInput{Filters: []types.Filter{
		{Name: aws.String("vpc-id"), Values: []string{vpc}}, {Name: aws.String("association.main"), Values: []string{"true"}}}})
	if err != nil || len(main.RouteTables) != 1 {
		t.Fatalf("main route table: %v %+v", err, main)
	}
	if !hasDefaultRoute(main.RouteTables[0], "igw-") {
		t.Fatalf("main route table routes %+v lack 0.0.0.0/0 -> igw", main.RouteTables[0].Routes)
	}
	explicit, err := h.ec2.DescribeRouteTables(ctx(t), &ec2.DescribeRouteTablesInput{Filters: []types.Filter{
		{Name: aws.String("association.subnet-id"), Values: []string{aws.ToString(one.Subnets[0].SubnetId)}}}})
	if err != nil || len(explicit.RouteTables) != 0 {
		t.Fatalf("a default subnet has no explicit association: %v %+v", err, explicit)
	}

	private := h.sim.AddSubnet("us-east-1", "", "172.31.128.0/24", "us-east-1c", false)
	rts, err := h.ec2.DescribeRouteTables(ctx(t), &ec2.DescribeRouteTablesInput{Filters: []types.Filter{
		{Name: aws.String("association.subnet-id"), Values: []string{private}}}})
	if err != nil || len(rts.RouteTables) != 1 {
		t.Fatalf("private subnet route table: %v %+v", err, rts)
	}
	if rt := rts.RouteTables[0]; len(rt.Routes) != 1 || aws.ToString(rt.Routes[0].GatewayId) != "local" {
		t.Fatalf("private route table routes %+v, want only local", rt.Routes)
	}
	in := runInput(1)
	in.NetworkInterfaces = []types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0), SubnetId: aws.String(private)}}
	inst := h.run(t, in).Instances[0]
	if inst.PublicIpAddress != nil || !strings.HasPrefix(aws.ToString(inst.PrivateIpAddress), "172.31.128.") || aws.ToString(inst.Placement.AvailabilityZone) != "us-east-1c" {
		t.Fatalf("instance in private subnet: public %v private %v az %v", aws.ToString(inst.PublicIpAddress), aws.ToString(inst.PrivateIpAddress), aws.ToString(inst.Placement.AvailabilityZone))
	}
	// AssociatePublicIpAddress overrides the subnet's default. The SDK wrote
	// its generated ClientToken into in: clear it, or this is a mismatch.
	in.ClientToken = nil
	in.NetworkInterfaces[0].AssociatePublicIpAddress = aws.Bool(true)
	if pub := h.run(t, in).Instances[0].PublicIpAddress; pub == nil {
		t.Fatalf("AssociatePublicIpAddress=true gave no public IP")
	}
	nat, err := h.sim.AddNATRoute(private)
	if err != nil {
		t.Fatalf("AddNATRoute: %v", err)
	}
	rts, _ = h.ec2.DescribeRouteTables(ctx(t), &ec2.DescribeRouteTablesInput{Filters: []types.Filter{
		{Name: aws.String("association.subnet-id"), Values: []string{private}}}})
	if r := rts.RouteTables[0].Routes; len(r) != 2 || aws.ToString(r[1].NatGatewayId) != nat || aws.ToString(r[1].DestinationCidrBlock) != "0.0.0.0/0" {
		t.Fatalf("routes after AddNATRoute %+v", r)
	}
	// A public subnet in a new VPC gets its own route table to a new internet gateway.
	public := h.sim.AddSubnet("us-east-1", "vpc-0000000000000cafe", "10.20.1.0/24", "", true)
	rts, _ = h.ec2.DescribeRouteTables(ctx(t), &ec2.DescribeRouteTablesInput{Filters: []types.Filter{
		{Name: aws.String("association.subnet-id"), Values: []string{public}}}})
	if len(rts.RouteTables) != 1 || !hasDefaultRoute(rts.RouteTables[0], "igw-") {
		t.Fatalf("public subnet in a new VPC: %+v", rts.RouteTables)
	}

	azs, err := h.ec2.DescribeAvailabilityZones(ctx(t), &ec2.DescribeAvailabilityZonesInput{})
	if err != nil || len(azs.AvailabilityZones) != 3 || aws.ToString(azs.AvailabilityZones[0].ZoneId) != "use1-az1" ||
		aws.ToString(azs.AvailabilityZones[0].ZoneName) != "us-east-1a" || azs.AvailabilityZones[0].State != types.AvailabilityZoneStateAvailable {
		t.Fatalf("DescribeAvailabilityZones: %v %+v", err, azs)
	}
}

func hasDefaultRoute(rt types.RouteTable, gwPrefix string) bool {
	for _, r := range rt.Routes {
		if aws.ToString(r.DestinationCidrBlock) == "0.0.0.0/0" && strings.HasPrefix(aws.ToString(r.GatewayId), gwPrefix) {
			return true
		}
	}
	return false
}

// TestRegions: the region comes from the SigV4 credential scope; each region
// has its own default VPC and resources.
func TestRegions(t *testing.T) {
	h := newHarness(t)
	h.sim.RegisterImage("eu-west-1", armAMI, "arm64")
	eu := h.client("eu-west-1")
	out, err := eu.RunInstances(ctx(t), runInput(1))
	if err != nil {
		t.Fatalf("RunInstances in eu-west-1: %v", err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	if rec, _ := h.sim.Instance(id); rec.Region != "eu-west-1" || rec.AvailabilityZone != "eu-west-1a" {
		t.Fatalf("instance region %s AZ %s", rec.Region, rec.AvailabilityZone)
	}
	_, err = h.ec2.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	wantCode(t, err, "InvalidInstanceID.NotFound", id)
	euVPC, _ := eu.DescribeVpcs(ctx(t), &ec2.DescribeVpcsInput{})
	usVPC, _ := h.ec2.DescribeVpcs(ctx(t), &ec2.DescribeVpcsInput{})
	if len(euVPC.Vpcs) != 1 || len(usVPC.Vpcs) != 1 || aws.ToString(euVPC.Vpcs[0].VpcId) == aws.ToString(usVPC.Vpcs[0].VpcId) {
		t.Fatalf("each region should have its own default VPC: %+v %+v", euVPC.Vpcs, usVPC.Vpcs)
	}
	// An AMI registered only in us-east-1 is unknown in eu-west-1.
	in := runInput(1)
	in.ImageId = aws.String(x86AMI)
	in.InstanceType = types.InstanceTypeT3Micro
	_, err = eu.RunInstances(ctx(t), in)
	wantCode(t, err, "InvalidAMIID.NotFound", x86AMI)
}

// TestProtocol: raw Query requests and error documents, and WriteError as
// the front uses it for throttling, seen through the SDK.
func TestProtocol(t *testing.T) {
	h := newHarness(t)
	post := func(form url.Values) (int, string) {
		t.Helper()
		resp, err := h.srv.Client().PostForm(h.srv.URL, form)
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := post(url.Values{"Action": {"CreateFleet"}, "Version": {apiVersion}})
	if status != 400 || !strings.Contains(body, "<Code>InvalidAction</Code>") || !strings.Contains(body, "The action CreateFleet is not valid for this web service.") ||
		!strings.Contains(body, "<Response><Errors><Error>") || !strings.Contains(body, "<RequestID>") {
		t.Fatalf("unknown action: %d %s", status, body)
	}
	status, body = post(url.Values{"Version": {apiVersion}})
	if status != 400 || !strings.Contains(body, "<Code>MissingAction</Code>") {
		t.Fatalf("no action: %d %s", status, body)
	}
	status, body = post(url.Values{"Action": {"RunInstances"}, "Version": {apiVersion}, "MinCount": {"1"}, "MaxCount": {"1"}})
	if status != 400 || !strings.Contains(body, "<Code>MissingParameter</Code>") || !strings.Contains(body, "ImageId") {
		t.Fatalf("missing ImageId: %d %s", status, body)
	}
	status, body = post(url.Values{"Action": {"DescribeAvailabilityZones"}, "Version": {apiVersion}})
	if status != 200 || !strings.HasPrefix(body, `<?xml version="1.0" encoding="UTF-8"?><DescribeAvailabilityZonesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>`) {
		t.Fatalf("success document: %d %s", status, body)
	}
	_, err := h.ec2.DescribeVpcs(ctx(t), &ec2.DescribeVpcsInput{DryRun: aws.Bool(true)})
	wantCode(t, err, "DryRunOperation", "DryRun flag is set")

	throttle := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		WriteError(w, http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded.")
	}))
	defer throttle.Close()
	c := ec2.New(ec2.Options{Region: "us-east-1", BaseEndpoint: aws.String(throttle.URL), HTTPClient: throttle.Client(),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""), RetryMaxAttempts: 1})
	_, err = c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{})
	wantCode(t, err, "RequestLimitExceeded", "Request limit exceeded.")
}

// TestConcurrentLaunches: parallel launches and terminations keep ids and
// addresses unique (run with -race).
func TestConcurrentLaunches(t *testing.T) {
	h := newHarness(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var all []string
	for range 8 {
		wg.Go(func() {
			out, err := h.ec2.RunInstances(ctx(t), runInput(3))
			if err != nil {
				t.Errorf("RunInstances: %v", err)
				return
			}
			mu.Lock()
			all = append(all, ids(out.Instances)...)
			mu.Unlock()
			if _, err := h.ec2.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: ids(out.Instances)[:1]}); err != nil {
				t.Errorf("TerminateInstances: %v", err)
			}
		})
	}
	wg.Wait()
	seen, ips := map[string]bool{}, map[string]bool{}
	for _, in := range h.sim.Instances() {
		if seen[in.ID] || (in.State != StateTerminated && ips[in.PrivateIP]) {
			t.Fatalf("duplicate id or address: %s %s", in.ID, in.PrivateIP)
		}
		seen[in.ID] = true
		if in.State != StateTerminated {
			ips[in.PrivateIP] = true
		}
	}
	if len(seen) != 24 || len(all) != 24 {
		t.Fatalf("%d instances, want 24", len(seen))
	}
}

// TestInstantModelKeepsOrder: with a nil latency model every transition is
// immediate, yet subscribers still see each instance's changes in order.
func TestInstantModelKeepsOrder(t *testing.T) {
	s := New(nil, 7)
	defer s.Close()
	s.RegisterImage("us-east-1", armAMI, "arm64")
	srv := httptest.NewServer(s)
	defer srv.Close()
	h := &harness{sim: s, srv: srv}
	h.ec2 = h.client("us-east-1")
	var mu sync.Mutex
	seen := map[string][]string{}
	s.OnStateChange(func(in Instance) {
		if _, ok := s.Instance(in.ID); !ok { // calling back in must not deadlock
			t.Errorf("unknown instance %s in callback", in.ID)
		}
		mu.Lock()
		defer mu.Unlock()
		seen[in.ID] = append(seen[in.ID], in.State)
	})
	all := ids(h.run(t, runInput(5)).Instances)
	h.terminate(t, all...)
	h.waitTerminated(t, all...)
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		done := 0
		for _, id := range all {
			if st := seen[id]; len(st) > 0 && st[len(st)-1] == StateTerminated {
				done++
			}
		}
		mu.Unlock()
		if done == len(all) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range all {
		got := seen[id]
		if !slices.Equal(got, []string{"pending", "running", "shutting-down", "terminated"}) &&
			!slices.Equal(got, []string{"pending", "shutting-down", "terminated"}) {
			t.Errorf("%s changes %v out of order", id, got)
		}
	}
}

// TestCloseStopsTimers: after Close, instances keep their state.
func TestCloseStopsTimers(t *testing.T) {
	h := newHarness(t)
	h.lat.Fix(latency.Boot, 150)
	id := aws.ToString(h.run(t, runInput(1)).Instances[0].InstanceId)
	h.sim.Close()
	time.Sleep(250 * time.Millisecond)
	if rec, _ := h.sim.Instance(id); rec.State != StatePending {
		t.Fatalf("state %s after Close, want pending", rec.State)
	}
}

// TestDescribeVolumesErrors: unknown and malformed volume ids, and paging.
func TestDescribeVolumesErrors(t *testing.T) {
	h := newHarness(t)
	_, err := h.ec2.DescribeVolumes(ctx(t), &ec2.DescribeVolumesInput{VolumeIds: []string{"vol-0123456789abcdef0"}})
	wantCode(t, err, "InvalidVolume.NotFound", "The volume 'vol-0123456789abcdef0' does not exist.")
	_, err = h.ec2.DescribeVolumes(ctx(t), &ec2.DescribeVolumesInput{VolumeIds: []string{"vol-x"}})
	wantCode(t, err, "InvalidVolumeID.Malformed", "vol-x")
	h.run(t, runInput(7))
	p := ec2.NewDescribeVolumesPaginator(h.ec2, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(5)})
	n := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("NextPage: %v", err)
		}
		n += len(out.Volumes)
	}
	if n != 7 {
		t.Fatalf("paged %d volumes, want 7", n)
	}
}
