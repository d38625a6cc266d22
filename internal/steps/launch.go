package steps

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/mecd/mecd/internal/mec"
)

// Ports the security group opens.
const (
	APIServerPort = 16443
	NodePortFrom  = 30000
	NodePortTo    = 32767
)

// LaunchNodes creates the MEC's security group (closed by default) and
// launches every node in one idempotent RunInstances.
func (s *Steps) LaunchNodes(ctx context.Context, st State) (*struct{}, error) {
	m, err := s.live(ctx, st.ClusterID)
	if err != nil {
		return nil, err
	}
	if m.SecurityGroupID == "" {
		if m, err = s.ensureSecurityGroup(ctx, m); err != nil {
			return nil, err
		}
	}
	if len(m.Nodes) == 0 {
		if _, err = s.launch(ctx, m); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// nodeProfile makes the MEC's node role, recording it as a step.
func (s *Steps) nodeProfile(ctx context.Context, m *mec.MEC) (string, error) {
	if _, err := s.Store.Update(ctx, m.ID, func(r *mec.MEC) error { r.StartStep(mec.StepNodeRole, s.now()); return nil }); err != nil {
		return "", err
	}
	arn, err := s.ensureNodeRole(ctx, m)
	if err != nil {
		return "", err
	}
	if _, err := s.Store.Update(ctx, m.ID, func(r *mec.MEC) error {
		r.EndStep(mec.StepNodeRole, mec.OutcomeSucceeded, arn, s.now())
		return nil
	}); err != nil {
		return "", err
	}
	return arn, nil
}

// live loads a record that is still being provisioned; a MEC someone asked
// to delete stops here.
func (s *Steps) live(ctx context.Context, id string) (*mec.MEC, error) {
	m, err := s.Store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if m.Status != mec.Creating {
		return nil, stepErr(ErrCancelled, "MEC %s is %s: provisioning stopped", id, m.Status)
	}
	return m, nil
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
func (s *Steps) launch(ctx context.Context, m *mec.MEC) (*mec.MEC, error) {
	profile, err := s.nodeProfile(ctx, m)
	if err != nil {
		return nil, err
	}
	if _, err := s.Store.Update(ctx, m.ID, func(r *mec.MEC) error { r.StartStep(mec.StepLaunch, s.now()); return nil }); err != nil {
		return nil, err
	}
	n := int32(m.Spec.NodeCount)
	tags := ec2Tags(m)
	in := &ec2.RunInstancesInput{
		ClientToken:        aws.String(m.ID),
		ImageId:            aws.String(m.Resolved.AmiID),
		InstanceType:       types.InstanceType(m.Spec.InstanceType),
		MinCount:           aws.Int32(n),
		MaxCount:           aws.Int32(n),
		SubnetId:           aws.String(m.Resolved.SubnetID),
		SecurityGroupIds:   []string{m.SecurityGroupID},
		IamInstanceProfile: &types.IamInstanceProfileSpecification{Arn: aws.String(profile)},
		MetadataOptions: &types.InstanceMetadataOptionsRequest{
			HttpTokens:              types.HttpTokensStateRequired,
			HttpEndpoint:            types.InstanceMetadataEndpointStateEnabled,
			HttpPutResponseHopLimit: aws.Int32(1), // pods cannot reach the node's credentials
		},
		BlockDeviceMappings: []types.BlockDeviceMapping{{
			DeviceName: aws.String("/dev/sda1"),
			Ebs: &types.EbsBlockDevice{
				VolumeSize: aws.Int32(int32(m.Spec.RootVolumeGiB)), VolumeType: types.VolumeTypeGp3,
				Encrypted: aws.Bool(true), DeleteOnTermination: aws.Bool(true),
			},
		}},
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: tags},
			{ResourceType: types.ResourceTypeVolume, Tags: tags},
		},
	}
	out, err := s.AWS.EC2(m.Region).RunInstances(ctx, in)
	if isProfilePropagation(err) {
		// A new instance profile takes seconds to reach EC2: the state
		// machine retries TransientError with backoff.
		return nil, stepErr(ErrTransient, "the node instance profile is not visible to EC2 yet: %v", err)
	}
	if err != nil {
		return nil, fmt.Errorf("run instances: %w", err)
	}
	roles := m.Spec.Roles()
	nodes := make([]mec.Node, 0, len(out.Instances))
	for _, inst := range out.Instances {
		idx := int(aws.ToInt32(inst.AmiLaunchIndex))
		role := "worker"
		if idx < len(roles) {
			role = string(roles[idx])
		}
		nodes = append(nodes, mec.Node{Index: idx, InstanceID: aws.ToString(inst.InstanceId), Role: role,
			PrivateIP: aws.ToString(inst.PrivateIpAddress), PublicIP: aws.ToString(inst.PublicIpAddress)})
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Index < nodes[j].Index })
	ids := make([]string, 0, len(nodes))
	for _, nd := range nodes {
		ids = append(ids, nd.InstanceID)
	}
	s.Log.InfoContext(ctx, "nodes launched", "clusterId", m.ID, "instances", strings.Join(ids, ","))
	return s.Store.Update(ctx, m.ID, func(r *mec.MEC) error {
		r.Nodes = nodes
		r.EndStep(mec.StepLaunch, mec.OutcomeSucceeded, strings.Join(ids, " "), s.now())
		r.StartStep(mec.StepNodesOnline, s.now())
		return nil
	})
}
