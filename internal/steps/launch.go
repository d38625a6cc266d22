package steps

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/resolve"
	"github.com/mecd/mecd/internal/store"
)

// Ports the security group opens.
const (
	APIServerPort = 16443
	NodePortFrom  = 30000
	NodePortTo    = 32767
)

// LaunchNodes creates the MEC's security group (closed by default) and
// launches every node in one idempotent RunInstances.
func (s *Steps) LaunchNodes(ctx context.Context, st State) (LaunchResult, error) {
	m, release, err := s.lease(ctx, st.ClusterID, mec.StepLaunch)
	if err != nil {
		return LaunchResult{}, err
	}
	defer release()
	if m.SecurityGroupID == "" {
		if m, err = s.ensureSecurityGroup(ctx, m); err != nil {
			return LaunchResult{}, err
		}
	}
	if m.Status.Changing() {
		return s.launchAdded(ctx, m)
	}
	if len(m.Nodes) > 0 {
		return LaunchResult{Launched: true}, nil
	}
	err = s.launch(ctx, m)
	if errors.Is(err, errProfileNotReady) {
		return s.waitForProfile(m, err)
	}
	if err != nil {
		return LaunchResult{}, err
	}
	// Off this MEC's path: its nodes boot meanwhile.
	s.replenishSpares(ctx)
	return LaunchResult{Launched: true}, nil
}

// profileRetryBudget bounds the wait for the node profile inside one
// invocation (IAM's slow tail is about 20 s).
const profileRetryBudget = 45 * time.Second

// runInstances launches in. IAM propagates a new instance profile to EC2 in
// seconds (10 s is common; a spare's has long propagated): until it has,
// RunInstances is tried again within this invocation, every tenth of a poll
// interval (1 s on AWS), so the launch starts at most that late and the
// workflow pays no transitions for it; near the invocation's deadline,
// errProfileNotReady hands over to the state machine's Wait loop. The
// client token makes every try the same launch.
func (s *Steps) runInstances(ctx context.Context, region string, in *ec2.RunInstancesInput) (*ec2.RunInstancesOutput, error) {
	stop := s.now().Add(invocationBudget(ctx, profileRetryBudget))
	every := max(s.Env.PollInterval/10, 50*time.Millisecond)
	for {
		out, err := s.AWS.EC2(region).RunInstances(ctx, in)
		if !isProfilePropagation(err) {
			if err != nil {
				return nil, fmt.Errorf("run instances: %w", err)
			}
			return out, nil
		}
		if s.now().Add(every).After(stop) {
			return nil, fmt.Errorf("%w: %v", errProfileNotReady, err)
		}
		if err := s.sleep(ctx, every); err != nil {
			return nil, err
		}
	}
}

// LaunchResult tells the state machine whether the nodes run, or when to
// try again: a new instance profile reaches EC2 only after IAM propagated
// it (often 10 s or more), and a Wait state waits for it at no cost.
type LaunchResult struct {
	Launched    bool   `json:"launched"`
	NextCheckAt string `json:"nextCheckAt,omitempty"`
}

// errProfileNotReady: RunInstances does not accept the new profile yet.
var errProfileNotReady = errors.New("the node instance profile is not usable by EC2 yet")

// profileWaitPolls bounds the wait for the profile, in poll intervals
// (3 minutes on AWS): IAM propagates in seconds, so longer is a fault.
const profileWaitPolls = 18

// waitForProfile says when to try the launch again, or fails once the
// profile has had far longer than IAM needs.
func (s *Steps) waitForProfile(m *mec.MEC, cause error) (LaunchResult, error) {
	waited := time.Duration(0)
	if st := m.Step(mec.StepLaunch); st != nil {
		waited = s.now().Sub(st.StartedAt)
	}
	if limit := profileWaitPolls * s.Env.PollInterval; waited > limit {
		return LaunchResult{}, stepErr(ErrStep, "EC2 still refuses the node instance profile %s after %v: %v",
			m.InstanceProfileArn, limit.Round(time.Second), cause)
	}
	// Propagation takes seconds: look again after one poll interval.
	return LaunchResult{NextCheckAt: s.now().Add(s.Env.PollInterval).Format(time.RFC3339Nano)}, nil
}

// nodeProfile gives the MEC its node role once, a spare made ahead if one
// is free (its profile usable by EC2 at once), else its own, recording it
// as a step and its instance profile on the record (a launch waiting for
// the profile to propagate does not make it again).
func (s *Steps) nodeProfile(ctx context.Context, m *mec.MEC) (string, error) {
	if m.InstanceProfileArn != "" {
		return m.InstanceProfileArn, nil
	}
	if _, err := s.Store.Update(ctx, m.ID, func(r *mec.MEC) error { r.StartStep(mec.StepNodeRole, s.now()); return nil }); err != nil {
		return "", err
	}
	spare, arn, err := s.claimSpare(ctx, m)
	if err != nil {
		return "", err
	}
	detail := arn + " (a spare made ahead)"
	if arn == "" {
		if arn, err = s.ensureNodeRole(ctx, m); err != nil {
			return "", err
		}
		detail = arn
	}
	if _, err := s.Store.Update(ctx, m.ID, func(r *mec.MEC) error {
		r.InstanceProfileArn, r.NodeRole = arn, spare
		r.EndStep(mec.StepNodeRole, mec.OutcomeSucceeded, detail, s.now())
		return nil
	}); err != nil {
		return "", err
	}
	m.InstanceProfileArn, m.NodeRole = arn, spare
	return arn, nil
}

// live loads a record that is still being provisioned; a MEC someone asked
// to delete stops here.
func (s *Steps) live(ctx context.Context, id string) (*mec.MEC, error) {
	m, err := s.Store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !m.Status.Building() {
		return nil, stepErr(ErrCancelled, "MEC %s is %s: provisioning stopped", id, m.Status)
	}
	return m, nil
}

// lease loads a record that is still being provisioned and takes its
// lease until this invocation's deadline: a teardown's cleanup waits while
// a step that creates resources runs, so nothing it makes is missed. The
// status check and the lease are one write, so a MEC being deleted (the
// teardown records DELETING before it cleans up) is never leased. release
// gives the lease back (a crashed invocation's lapses at its deadline).
func (s *Steps) lease(ctx context.Context, id, step string) (*mec.MEC, func(), error) {
	until := s.now().Add(time.Minute)
	if d, ok := ctx.Deadline(); ok {
		until = d.UTC().Add(5 * time.Second) // clock skew
	}
	m, err := s.Store.Update(ctx, id, func(r *mec.MEC) error {
		if !r.Status.Building() {
			return stepErr(ErrCancelled, "MEC %s is %s: provisioning stopped", id, r.Status)
		}
		r.Lease = &mec.Lease{Step: step, Until: until}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	release := func() {
		// Even when ctx is done: a lease left behind only delays a cleanup.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := s.Store.Update(rctx, id, func(r *mec.MEC) error {
			if r.Lease == nil || r.Lease.Step != step || !r.Lease.Until.Equal(until) {
				return store.ErrNoChange
			}
			r.Lease = nil
			return nil
		}); err != nil {
			s.Log.WarnContext(ctx, "release the lease", "clusterId", id, "step", step, "error", err)
		}
	}
	return m, release, nil
}

// ec2Tags are m's tags as EC2 takes them.
func ec2Tags(m *mec.MEC) []types.Tag {
	var tags []types.Tag
	for _, t := range m.Tags() {
		tags = append(tags, types.Tag{Key: aws.String(t.Key), Value: aws.String(t.Value)})
	}
	return tags
}

func (s *Steps) ensureSecurityGroup(ctx context.Context, m *mec.MEC) (*mec.MEC, error) {
	if _, err := s.Store.Update(ctx, m.ID, func(r *mec.MEC) error { r.StartStep(mec.StepSecurityGroup, s.now()); return nil }); err != nil {
		return nil, err
	}
	c := s.AWS.EC2(m.Region)
	vpc := m.Resolved.VpcID
	var groupID string
	out, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName:         aws.String(mec.SecurityGroupName(m.ID)),
		Description:       aws.String("mecd MEC " + m.Name + ": intra-cluster traffic, API and NodePorts only from listed CIDRs"),
		VpcId:             aws.String(vpc),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroup, Tags: ec2Tags(m)}},
	})
	switch {
	case err == nil:
		groupID = aws.ToString(out.GroupId)
	case apiCode(err) == "InvalidGroup.Duplicate":
		// A retry after the group was made: find it.
		d, derr := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{
			{Name: aws.String("group-name"), Values: []string{mec.SecurityGroupName(m.ID)}}, {Name: aws.String("vpc-id"), Values: []string{vpc}}}})
		if derr != nil || len(d.SecurityGroups) == 0 {
			return nil, fmt.Errorf("find security group %s: %w", mec.SecurityGroupName(m.ID), derr)
		}
		groupID = aws.ToString(d.SecurityGroups[0].GroupId)
	default:
		return nil, fmt.Errorf("create security group: %w", err)
	}
	// Record the id first, so a failure below still gets the group cleaned up.
	if _, err := s.Store.Update(ctx, m.ID, func(r *mec.MEC) error { r.SecurityGroupID = groupID; return nil }); err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, c, m, groupID); err != nil {
		return nil, err
	}
	return s.Store.Update(ctx, m.ID, func(r *mec.MEC) error {
		r.EndStep(mec.StepSecurityGroup, mec.OutcomeSucceeded, groupID, s.now())
		return nil
	})
}

// IngressRules is the group's inbound policy: everything between the MEC's
// own nodes; the Kubernetes API and NodePorts only from the listed CIDRs;
// nothing else (never port 22, never 0.0.0.0/0 unless listed).
func IngressRules(groupID string, apiCIDRs, nodePortCIDRs []string) []types.IpPermission {
	perms := []types.IpPermission{{
		IpProtocol:       aws.String("-1"),
		UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: aws.String(groupID), Description: aws.String("intra-cluster")}},
	}}
	ranges := func(cidrs []string, what string) []types.IpRange {
		out := make([]types.IpRange, 0, len(cidrs))
		for _, c := range cidrs {
			out = append(out, types.IpRange{CidrIp: aws.String(c), Description: aws.String(what)})
		}
		return out
	}
	if len(apiCIDRs) > 0 {
		perms = append(perms, types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(APIServerPort), ToPort: aws.Int32(APIServerPort),
			IpRanges: ranges(apiCIDRs, "Kubernetes API")})
	}
	if len(nodePortCIDRs) > 0 {
		for _, proto := range []string{"tcp", "udp"} {
			perms = append(perms, types.IpPermission{IpProtocol: aws.String(proto), FromPort: aws.Int32(NodePortFrom), ToPort: aws.Int32(NodePortTo),
				IpRanges: ranges(nodePortCIDRs, "NodePorts")})
		}
	}
	return perms
}

func (s *Steps) authorize(ctx context.Context, c EC2API, m *mec.MEC, groupID string) error {
	_, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId:       aws.String(groupID),
		IpPermissions: IngressRules(groupID, m.Spec.APIAccessCIDRs, m.Spec.NodePortCIDRs),
	})
	if err != nil && apiCode(err) != "InvalidPermission.Duplicate" {
		return fmt.Errorf("authorize ingress: %w", err)
	}
	return nil
}

// launch runs every node in one RunInstances. The ClientToken is the
// cluster id: a retried call returns the same instances instead of new ones.
func (s *Steps) launch(ctx context.Context, m *mec.MEC) error {
	profile, err := s.nodeProfile(ctx, m)
	if err != nil {
		return err
	}
	if m, err = s.Store.Update(ctx, m.ID, func(r *mec.MEC) error { r.StartStep(mec.StepLaunch, s.now()); return nil }); err != nil {
		return err
	}
	m.InstanceProfileArn = profile
	in, err := s.runInput(m, m.Spec.NodeCount, m.ID)
	if err != nil {
		return err
	}
	out, err := s.runInstances(ctx, m.Region, in)
	if err != nil {
		return err
	}
	roles := m.Spec.Roles()
	launched := s.now()
	nodes := make([]mec.Node, 0, len(out.Instances))
	for _, inst := range out.Instances {
		idx := int(aws.ToInt32(inst.AmiLaunchIndex))
		role := "worker"
		if idx < len(roles) {
			role = string(roles[idx])
		}
		nodes = append(nodes, mec.Node{Index: idx, InstanceID: aws.ToString(inst.InstanceId), Role: role,
			PrivateIP: aws.ToString(inst.PrivateIpAddress), PublicIP: aws.ToString(inst.PublicIpAddress), LaunchedAt: &launched})
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Index < nodes[j].Index })
	ids := make([]string, 0, len(nodes))
	for _, nd := range nodes {
		ids = append(ids, nd.InstanceID)
	}
	s.Log.InfoContext(ctx, "nodes launched", "clusterId", m.ID, "instances", strings.Join(ids, ","))
	// The nodes go on the record whatever became of the MEC meanwhile, so a
	// teardown finds them by id (a tag search lags a new instance); if a
	// DELETE came during RunInstances, this launch undoes itself.
	var status mec.Status
	if _, err := s.Store.Update(ctx, m.ID, func(r *mec.MEC) error {
		status = r.Status
		r.Nodes = nodes
		if r.Status == mec.Creating {
			r.EndStep(mec.StepLaunch, mec.OutcomeSucceeded, strings.Join(ids, " "), s.now())
			r.StartStep(mec.StepNodesOnline, s.now())
		}
		return nil
	}); err != nil {
		return err
	}
	if status != mec.Creating {
		if _, err := s.AWS.EC2(m.Region).TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
			// Not visible yet, or throttled: the teardown (by id) or the orphan reaper ends them.
			s.Log.WarnContext(ctx, "terminate nodes of a deleted MEC", "clusterId", m.ID, "instances", strings.Join(ids, ","), "error", err)
		}
		return stepErr(ErrCancelled, "MEC %s became %s while its nodes launched: they are terminated", m.ID, status)
	}
	return nil
}

// rootDevice is the AMI's root device name (a record resolved before it was
// kept has Ubuntu's).
func rootDevice(r *mec.Resolved) string {
	if r.RootDevice != "" {
		return r.RootDevice
	}
	return resolve.DefaultRootDevice
}

// dataDevices are the device names data volumes are attached as, in order.
// AWS recommends /dev/sd[f-p] for EBS volumes on Linux; on Nitro instances
// (t4g included) the kernel names them /dev/nvme[1-26]n1 whatever the
// mapping says, and the volume id is the NVMe serial (EC2 User Guide,
// "Device names on Linux instances", "Amazon EBS and NVMe").
var dataDevices = []string{"/dev/sdf", "/dev/sdg", "/dev/sdh"}

// blockDevices are the root volume and the spec's data volumes, all gp3,
// encrypted with the spec's key and deleted with the instance: a node's
// disks live and die with it, as the seed's did.
func blockDevices(m *mec.MEC) []types.BlockDeviceMapping {
	ebs := func(gib int) *types.EbsBlockDevice {
		return &types.EbsBlockDevice{
			VolumeSize: aws.Int32(int32(gib)), VolumeType: types.VolumeTypeGp3,
			Encrypted: aws.Bool(true), DeleteOnTermination: aws.Bool(true),
			// EC2 creates a grant on it for the volume, as the launching role.
			KmsKeyId: nonEmpty(m.Spec.EBSKmsKeyID),
		}
	}
	out := []types.BlockDeviceMapping{{DeviceName: aws.String(rootDevice(m.Resolved)), Ebs: ebs(m.Spec.RootVolumeGiB)}}
	for i := range m.Spec.DataVolumeCount() {
		out = append(out, types.BlockDeviceMapping{DeviceName: aws.String(dataDevices[i]), Ebs: ebs(m.Spec.DataVolumes.SizeGiB)})
	}
	return out
}

// runInput is the RunInstances request for count of m's nodes: the
// client token makes a retried call the same launch.
func (s *Steps) runInput(m *mec.MEC, count int, token string) (*ec2.RunInstancesInput, error) {
	n := int32(count)
	tags := ec2Tags(m)
	boot, err := s.userData(m)
	if err != nil {
		return nil, err
	}
	in := &ec2.RunInstancesInput{
		ClientToken:        aws.String(token),
		ImageId:            aws.String(m.Resolved.AmiID),
		InstanceType:       types.InstanceType(m.Spec.InstanceType),
		MinCount:           aws.Int32(n),
		MaxCount:           aws.Int32(n),
		SubnetId:           aws.String(m.Resolved.SubnetID),
		SecurityGroupIds:   []string{m.SecurityGroupID},
		IamInstanceProfile: &types.IamInstanceProfileSpecification{Arn: aws.String(m.InstanceProfileArn)},
		UserData:           aws.String(boot),
		MetadataOptions: &types.InstanceMetadataOptionsRequest{
			HttpTokens:              types.HttpTokensStateRequired,
			HttpEndpoint:            types.InstanceMetadataEndpointStateEnabled,
			HttpPutResponseHopLimit: aws.Int32(1), // pods cannot reach the node's credentials
		},
		BlockDeviceMappings: blockDevices(m),
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: tags},
			{ResourceType: types.ResourceTypeVolume, Tags: tags},
		},
	}
	return in, nil
}
