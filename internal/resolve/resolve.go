package resolve

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/spec"
)

// EC2API is the part of the EC2 client Resolve uses; *ec2.Client satisfies it.
type EC2API interface {
	DescribeInstanceTypes(ctx context.Context, in *ec2.DescribeInstanceTypesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
	DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	DescribeVpcs(ctx context.Context, in *ec2.DescribeVpcsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error)
	DescribeSubnets(ctx context.Context, in *ec2.DescribeSubnetsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
	DescribeRouteTables(ctx context.Context, in *ec2.DescribeRouteTablesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeRouteTablesOutput, error)
}

// SSMAPI is the part of the SSM client Resolve uses; *ssm.Client satisfies it.
type SSMAPI interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

var (
	_ EC2API = (*ec2.Client)(nil)
	_ SSMAPI = (*ssm.Client)(nil)
)

// Architectures Resolve supports: the ones Canonical publishes Ubuntu for.
const (
	ArchARM64 = "arm64"
	ArchX8664 = "x86_64"
)

// UbuntuAMIParameter names Canonical's public SSM parameter holding the
// current Ubuntu 24.04 LTS AMI for an EC2 architecture (arm64 or x86_64;
// Canonical spells the latter amd64).
func UbuntuAMIParameter(arch string) string {
	if arch == ArchX8664 {
		arch = "amd64"
	}
	return "/aws/service/canonical/ubuntu/server/24.04/stable/current/" + arch + "/hvm/ebs-gp3/ami-id"
}

// Resolve fixes the architecture, AMI, VPC and subnet for a validated spec,
// using clients for the spec's region. What the user can fix comes back as a
// *spec.ValidationError (all such problems at once); API failures come back
// wrapped. Results are re-checked client-side, so a backend that ignores
// filters cannot make Resolve pick the wrong VPC or subnet.
func Resolve(ctx context.Context, s spec.Spec, ec2c EC2API, ssmc SSMAPI) (mec.Resolved, error) {
	verr := &spec.ValidationError{}
	var r mec.Resolved

	arch, err := resolveArch(ctx, s, ec2c, verr)
	if err != nil {
		return mec.Resolved{}, err
	}
	r.Architecture = arch
	if arch != "" {
		if r.AmiID, r.RootDevice, err = resolveAMI(ctx, s, arch, ec2c, ssmc, verr); err != nil {
			return mec.Resolved{}, err
		}
	}
	if err := resolveNetwork(ctx, s, ec2c, &r, verr); err != nil {
		return mec.Resolved{}, err
	}
	if err := verr.Err(); err != nil {
		return mec.Resolved{}, err
	}
	return r, nil
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// resolveArch asks EC2 rather than reading the name: "g" in a family does not
// reliably mean Graviton (g4dn is x86_64).
func resolveArch(ctx context.Context, s spec.Spec, ec2c EC2API, verr *spec.ValidationError) (string, error) {
	notFound := fmt.Sprintf("instance type %q does not exist in %s", s.InstanceType, s.Region)
	out, err := ec2c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{
		InstanceTypes: []ec2types.InstanceType{ec2types.InstanceType(s.InstanceType)},
	})
	if err != nil {
		if apiCode(err) == "InvalidInstanceType" {
			verr.Add("instanceType", notFound)
			return "", nil
		}
		return "", fmt.Errorf("describe instance types: %w", err)
	}
	var info *ec2types.InstanceTypeInfo
	for i := range out.InstanceTypes {
		if string(out.InstanceTypes[i].InstanceType) == s.InstanceType {
			info = &out.InstanceTypes[i]
		}
	}
	if info == nil || (info.SupportedInRegion != nil && !*info.SupportedInRegion) {
		verr.Add("instanceType", notFound)
		return "", nil
	}
	var archs []string
	if info.ProcessorInfo != nil {
		for _, a := range info.ProcessorInfo.SupportedArchitectures {
			archs = append(archs, string(a))
		}
	}
	// The fit check with EC2's own figure: the spec's table knows a few
	// families; this knows every type (a known one was checked already).
	if info.MemoryInfo != nil && info.MemoryInfo.SizeInMiB != nil {
		if msg := spec.FitMessage(s.InstanceType, int(*info.MemoryInfo.SizeInMiB), s.Addons); msg != "" {
			verr.Add("addons", msg)
		}
	}
	for _, want := range []string{ArchARM64, ArchX8664} {
		if slices.Contains(archs, want) {
			return want, nil
		}
	}
	verr.Add("instanceType", fmt.Sprintf("instance type %q is %s; mecd needs an arm64 or x86_64 instance type such as %q",
		s.InstanceType, orNone(strings.Join(archs, "/")), spec.DefaultInstanceType))
	return "", nil
}

func orNone(s string) string {
	if s == "" {
		return "of no known architecture"
	}
	return s
}

// resolveAMI uses the given AMI if its architecture matches, else the
// current Ubuntu 24.04 for the architecture; either way it reads the image,
// for its state, architecture and root device name.
func resolveAMI(ctx context.Context, s spec.Spec, arch string, ec2c EC2API, ssmc SSMAPI, verr *spec.ValidationError) (id, root string, err error) {
	id = s.AmiID
	if id == "" {
		name := UbuntuAMIParameter(arch)
		out, err := ssmc.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)})
		if err != nil {
			if apiCode(err) == "ParameterNotFound" {
				verr.Add("amiId", fmt.Sprintf("Canonical publishes no Ubuntu 24.04 %s AMI in %s (%s not found); set amiId", arch, s.Region, name))
				return "", "", nil
			}
			return "", "", fmt.Errorf("get parameter %s: %w", name, err)
		}
		if out.Parameter != nil {
			id = aws.ToString(out.Parameter.Value)
		}
		if !spec.IsAMIID(id) {
			return "", "", fmt.Errorf("get parameter %s: value %q is not an AMI id", name, id)
		}
	}

	notFound := fmt.Sprintf("AMI %s does not exist in %s or is not available to this account", id, s.Region)
	out, err := ec2c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if err != nil {
		if strings.HasPrefix(apiCode(err), "InvalidAMIID.") {
			verr.Add("amiId", notFound)
			return "", "", nil
		}
		return "", "", fmt.Errorf("describe images: %w", err)
	}
	for _, img := range out.Images {
		if aws.ToString(img.ImageId) != id {
			continue
		}
		if img.State != "" && img.State != ec2types.ImageStateAvailable {
			verr.Add("amiId", fmt.Sprintf("AMI %s is %s, not available", id, img.State))
			return "", "", nil
		}
		if string(img.Architecture) != arch {
			verr.Add("amiId", fmt.Sprintf("AMI %s is for %s, but instance type %s is %s; use an %s AMI or leave amiId out for Ubuntu 24.04",
				id, orNone(string(img.Architecture)), s.InstanceType, arch, arch))
			return "", "", nil
		}
		root = aws.ToString(img.RootDeviceName)
		if root == "" {
			root = DefaultRootDevice
		}
		return id, root, nil
	}
	verr.Add("amiId", notFound)
	return "", "", nil
}

// DefaultRootDevice is Ubuntu's root device name, for an image that names none.
const DefaultRootDevice = "/dev/sda1"

// resolveNetwork picks the VPC and subnet and checks the subnet can reach the
// internet. A subnetId alone implies its VPC.
func resolveNetwork(ctx context.Context, s spec.Spec, ec2c EC2API, r *mec.Resolved, verr *spec.ValidationError) error {
	var subnet *ec2types.Subnet
	vpcID := s.VpcID
	if s.SubnetID != "" {
		sn, err := describeSubnet(ctx, s, ec2c)
		if err != nil {
			return err
		}
		if sn == nil {
			verr.Add("subnetId", fmt.Sprintf("subnet %s does not exist in %s", s.SubnetID, s.Region))
			return nil
		}
		snVpc := aws.ToString(sn.VpcId)
		if vpcID == "" {
			vpcID = snVpc
		} else if snVpc != vpcID {
			verr.Add("subnetId", fmt.Sprintf("subnet %s is in %s, not in vpcId %s; pick a subnet of %s", s.SubnetID, snVpc, vpcID, vpcID))
			return nil
		}
		subnet = sn
	}

	vpc, err := describeVPC(ctx, s, vpcID, ec2c, verr)
	if err != nil || vpc == nil {
		return err
	}
	vpcID = aws.ToString(vpc.VpcId)

	tables, err := routeTables(ctx, ec2c, vpcID)
	if err != nil {
		return err
	}

	if subnet == nil {
		if !aws.ToBool(vpc.IsDefault) {
			verr.Add("subnetId", fmt.Sprintf("is required: %s is not the default VPC of %s, so it has no default subnets", vpcID, s.Region))
			return nil
		}
		subnet, err = defaultSubnet(ctx, s, vpcID, tables, ec2c, verr)
		if err != nil || subnet == nil {
			return err
		}
	} else if field, msg := checkSubnet(s, subnet, tables); msg != "" {
		verr.Add(field, msg)
		return nil
	}

	r.VpcID = vpcID
	r.VpcCIDR = aws.ToString(vpc.CidrBlock)
	r.SubnetID = aws.ToString(subnet.SubnetId)
	r.SubnetCIDR = aws.ToString(subnet.CidrBlock)
	r.AvailabilityZone = aws.ToString(subnet.AvailabilityZone)
	return nil
}

func describeSubnet(ctx context.Context, s spec.Spec, ec2c EC2API) (*ec2types.Subnet, error) {
	out, err := ec2c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{s.SubnetID}})
	if err != nil {
		if strings.HasPrefix(apiCode(err), "InvalidSubnetID.") {
			return nil, nil
		}
		return nil, fmt.Errorf("describe subnets: %w", err)
	}
	for i := range out.Subnets {
		if aws.ToString(out.Subnets[i].SubnetId) == s.SubnetID {
			return &out.Subnets[i], nil
		}
	}
	return nil, nil
}

// describeVPC returns the named VPC, or the region's default VPC when vpcID is empty.
func describeVPC(ctx context.Context, s spec.Spec, vpcID string, ec2c EC2API, verr *spec.ValidationError) (*ec2types.Vpc, error) {
	in := &ec2.DescribeVpcsInput{}
	if vpcID != "" {
		in.VpcIds = []string{vpcID}
	} else {
		in.Filters = []ec2types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}
	}
	for {
		out, err := ec2c.DescribeVpcs(ctx, in)
		if err != nil {
			if vpcID != "" && strings.HasPrefix(apiCode(err), "InvalidVpcID.") {
				break
			}
			return nil, fmt.Errorf("describe vpcs: %w", err)
		}
		for i := range out.Vpcs {
			v := &out.Vpcs[i]
			if (vpcID != "" && aws.ToString(v.VpcId) == vpcID) || (vpcID == "" && aws.ToBool(v.IsDefault)) {
				return v, nil
			}
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	if vpcID == "" {
		verr.Add("vpcId", fmt.Sprintf("region %s has no default VPC; set vpcId and subnetId", s.Region))
	} else {
		verr.Add("vpcId", fmt.Sprintf("VPC %s does not exist in %s", vpcID, s.Region))
	}
	return nil, nil
}

func routeTables(ctx context.Context, ec2c EC2API, vpcID string) ([]ec2types.RouteTable, error) {
	in := &ec2.DescribeRouteTablesInput{
		Filters: []ec2types.Filter{{Name: aws.String("vpc-id"), Values: []string{vpcID}}},
	}
	var tables []ec2types.RouteTable
	for {
		out, err := ec2c.DescribeRouteTables(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("describe route tables: %w", err)
		}
		for _, t := range out.RouteTables {
			if aws.ToString(t.VpcId) == vpcID {
				tables = append(tables, t)
			}
		}
		if aws.ToString(out.NextToken) == "" {
			return tables, nil
		}
		in.NextToken = out.NextToken
	}
}

// defaultSubnet picks the first usable default subnet by availability zone
// name, so that retries pick the same one.
func defaultSubnet(ctx context.Context, s spec.Spec, vpcID string, tables []ec2types.RouteTable, ec2c EC2API, verr *spec.ValidationError) (*ec2types.Subnet, error) {
	in := &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{
		{Name: aws.String("vpc-id"), Values: []string{vpcID}},
		{Name: aws.String("default-for-az"), Values: []string{"true"}},
	}}
	var cands []ec2types.Subnet
	for {
		out, err := ec2c.DescribeSubnets(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("describe subnets: %w", err)
		}
		for _, sn := range out.Subnets {
			if aws.ToString(sn.VpcId) == vpcID && aws.ToBool(sn.DefaultForAz) {
				cands = append(cands, sn)
			}
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	if len(cands) == 0 {
		verr.Add("subnetId", fmt.Sprintf("default VPC %s has no default subnets; set subnetId", vpcID))
		return nil, nil
	}
	slices.SortFunc(cands, func(a, b ec2types.Subnet) int {
		if c := strings.Compare(aws.ToString(a.AvailabilityZone), aws.ToString(b.AvailabilityZone)); c != 0 {
			return c
		}
		return strings.Compare(aws.ToString(a.SubnetId), aws.ToString(b.SubnetId))
	})
	var firstField, firstMsg string
	for i := range cands {
		field, msg := checkSubnet(s, &cands[i], tables)
		if msg == "" {
			return &cands[i], nil
		}
		if firstMsg == "" {
			firstField, firstMsg = field, msg
		}
	}
	// Default subnets share the main route table, so they fail alike; report the first.
	verr.Add(firstField, "no default subnet of "+vpcID+" will do: "+firstMsg)
	return nil, nil
}

const egressWhy = "nodes need outbound HTTPS to the Snap Store and the SSM endpoints: use a public subnet that assigns public IPv4 addresses, or a private subnet with a route to a NAT gateway"

// checkSubnet returns the field to blame and why the subnet will not do, or "" if it will.
func checkSubnet(s spec.Spec, sn *ec2types.Subnet, tables []ec2types.RouteTable) (field, msg string) {
	id := aws.ToString(sn.SubnetId)
	if sn.State != "" && sn.State != ec2types.SubnetStateAvailable {
		return "subnetId", fmt.Sprintf("subnet %s is %s, not available", id, sn.State)
	}
	rt := routeTableFor(id, tables)
	if rt == nil {
		return "subnetId", fmt.Sprintf("subnet %s has no route table, so no route to the internet; %s", id, egressWhy)
	}
	rtID := aws.ToString(rt.RouteTableId)
	target := defaultRouteTarget(rt)
	switch {
	case target == "":
		return "subnetId", fmt.Sprintf("subnet %s has no active 0.0.0.0/0 route in %s, so no route to the internet; %s", id, rtID, egressWhy)
	case strings.HasPrefix(target, "igw-") && !aws.ToBool(sn.MapPublicIpOnLaunch):
		return "subnetId", fmt.Sprintf("subnet %s routes 0.0.0.0/0 to %s but does not assign public IPv4 addresses on launch, so nodes could not reach the internet; %s", id, target, egressWhy)
	case s.PublicEndpoint && !strings.HasPrefix(target, "igw-"):
		return "publicEndpoint", fmt.Sprintf("needs a public subnet (0.0.0.0/0 via an internet gateway, public IPv4 addresses on launch); subnet %s reaches the internet through %s, so nodes have no public IP; use a public subnet or set publicEndpoint to false", id, target)
	}
	return "", ""
}

// routeTableFor returns the subnet's explicitly associated table, else the
// VPC's main table (which applies to every subnet without an association).
func routeTableFor(subnetID string, tables []ec2types.RouteTable) *ec2types.RouteTable {
	var main *ec2types.RouteTable
	for i := range tables {
		for _, a := range tables[i].Associations {
			if aws.ToString(a.SubnetId) == subnetID {
				return &tables[i]
			}
			if aws.ToBool(a.Main) {
				main = &tables[i]
			}
		}
	}
	return main
}

// defaultRouteTarget returns the target of the table's active IPv4 default
// route. An internet or NAT gateway is the usual target; a transit gateway,
// NAT instance, firewall endpoint or VPN gateway is taken as an egress path
// too, since mecd cannot see past it and refusing would block
// centrally-routed VPCs.
func defaultRouteTarget(rt *ec2types.RouteTable) string {
	for _, r := range rt.Routes {
		if aws.ToString(r.DestinationCidrBlock) != "0.0.0.0/0" {
			continue
		}
		if r.State != "" && r.State != ec2types.RouteStateActive {
			continue
		}
		for _, t := range []*string{r.GatewayId, r.NatGatewayId, r.TransitGatewayId, r.NetworkInterfaceId, r.InstanceId} {
			if v := aws.ToString(t); v != "" && v != "local" {
				return v
			}
		}
	}
	return ""
}
