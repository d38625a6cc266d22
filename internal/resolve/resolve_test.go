package resolve

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/spec"
)

// fakeEC2 serves a small region. It applies the filters Resolve sends unless
// ignoreFilters is set (as kumo does), and pages results when pageSize > 0.
type fakeEC2 struct {
	types         map[string][]ec2types.ArchitectureType
	memMiB        map[string]int64 // MemoryInfo, as EC2 publishes it
	notInRegion   map[string]bool
	images        []ec2types.Image
	vpcs          []ec2types.Vpc
	subnets       []ec2types.Subnet
	tables        []ec2types.RouteTable
	errs          map[string]error
	ignoreFilters bool
	pageSize      int
	calls         []string
}

func apiErr(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: code + " (fake)"}
}

func filterValue(fs []ec2types.Filter, name string) (string, bool) {
	for _, f := range fs {
		if aws.ToString(f.Name) == name && len(f.Values) > 0 {
			return f.Values[0], true
		}
	}
	return "", false
}

// page returns items[token:token+pageSize] and the next token.
func page[T any](f *fakeEC2, items []T, token *string) ([]T, *string) {
	if f.pageSize <= 0 {
		return items, nil
	}
	start, _ := strconv.Atoi(aws.ToString(token))
	end := min(start+f.pageSize, len(items))
	var next *string
	if end < len(items) {
		next = aws.String(strconv.Itoa(end))
	}
	return items[start:end], next
}

func (f *fakeEC2) call(op string) error {
	f.calls = append(f.calls, op)
	return f.errs[op]
}

func (f *fakeEC2) DescribeInstanceTypes(_ context.Context, in *ec2.DescribeInstanceTypesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error) {
	if err := f.call("DescribeInstanceTypes"); err != nil {
		return nil, err
	}
	out := &ec2.DescribeInstanceTypesOutput{}
	for _, it := range in.InstanceTypes {
		archs, ok := f.types[string(it)]
		if !ok {
			return nil, apiErr("InvalidInstanceType")
		}
		info := ec2types.InstanceTypeInfo{InstanceType: it, ProcessorInfo: &ec2types.ProcessorInfo{SupportedArchitectures: archs}}
		if mib, ok := f.memMiB[string(it)]; ok {
			info.MemoryInfo = &ec2types.MemoryInfo{SizeInMiB: aws.Int64(mib)}
		}
		if f.notInRegion[string(it)] {
			info.SupportedInRegion = aws.Bool(false)
		}
		out.InstanceTypes = append(out.InstanceTypes, info)
	}
	return out, nil
}

func (f *fakeEC2) DescribeImages(_ context.Context, in *ec2.DescribeImagesInput, _ ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	if err := f.call("DescribeImages"); err != nil {
		return nil, err
	}
	out := &ec2.DescribeImagesOutput{}
	for _, img := range f.images {
		if slices.Contains(in.ImageIds, aws.ToString(img.ImageId)) {
			out.Images = append(out.Images, img)
		}
	}
	if len(out.Images) == 0 {
		return nil, apiErr("InvalidAMIID.NotFound")
	}
	return out, nil
}

func (f *fakeEC2) DescribeVpcs(_ context.Context, in *ec2.DescribeVpcsInput, _ ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error) {
	if err := f.call("DescribeVpcs"); err != nil {
		return nil, err
	}
	var vpcs []ec2types.Vpc
	for _, v := range f.vpcs {
		if len(in.VpcIds) > 0 && !slices.Contains(in.VpcIds, aws.ToString(v.VpcId)) {
			continue
		}
		if want, ok := filterValue(in.Filters, "is-default"); ok && !f.ignoreFilters && strconv.FormatBool(aws.ToBool(v.IsDefault)) != want {
			continue
		}
		vpcs = append(vpcs, v)
	}
	if len(in.VpcIds) > 0 && len(vpcs) == 0 {
		return nil, apiErr("InvalidVpcID.NotFound")
	}
	out := &ec2.DescribeVpcsOutput{}
	out.Vpcs, out.NextToken = page(f, vpcs, in.NextToken)
	return out, nil
}

func (f *fakeEC2) DescribeSubnets(_ context.Context, in *ec2.DescribeSubnetsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error) {
	if err := f.call("DescribeSubnets"); err != nil {
		return nil, err
	}
	var subnets []ec2types.Subnet
	for _, s := range f.subnets {
		if len(in.SubnetIds) > 0 && !slices.Contains(in.SubnetIds, aws.ToString(s.SubnetId)) {
			continue
		}
		if !f.ignoreFilters {
			if want, ok := filterValue(in.Filters, "vpc-id"); ok && aws.ToString(s.VpcId) != want {
				continue
			}
			if want, ok := filterValue(in.Filters, "default-for-az"); ok && strconv.FormatBool(aws.ToBool(s.DefaultForAz)) != want {
				continue
			}
		}
		subnets = append(subnets, s)
	}
	if len(in.SubnetIds) > 0 && len(subnets) == 0 {
		return nil, apiErr("InvalidSubnetID.NotFound")
	}
	out := &ec2.DescribeSubnetsOutput{}
	out.Subnets, out.NextToken = page(f, subnets, in.NextToken)
	return out, nil
}

func (f *fakeEC2) DescribeRouteTables(_ context.Context, in *ec2.DescribeRouteTablesInput, _ ...func(*ec2.Options)) (*ec2.DescribeRouteTablesOutput, error) {
	if err := f.call("DescribeRouteTables"); err != nil {
		return nil, err
	}
	var tables []ec2types.RouteTable
	for _, t := range f.tables {
		if want, ok := filterValue(in.Filters, "vpc-id"); ok && !f.ignoreFilters && aws.ToString(t.VpcId) != want {
			continue
		}
		tables = append(tables, t)
	}
	out := &ec2.DescribeRouteTablesOutput{}
	out.RouteTables, out.NextToken = page(f, tables, in.NextToken)
	return out, nil
}

type fakeSSM struct {
	params map[string]string
	err    error
	calls  []string
}

func (f *fakeSSM) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	name := aws.ToString(in.Name)
	f.calls = append(f.calls, name)
	if f.err != nil {
		return nil, f.err
	}
	v, ok := f.params[name]
	if !ok {
		return nil, &ssmtypes.ParameterNotFound{Message: aws.String("fake")}
	}
	return &ssm.GetParameterOutput{Parameter: &ssmtypes.Parameter{Name: in.Name, Value: aws.String(v)}}, nil
}

const (
	defVPC    = "vpc-1111aaaa"
	custVPC   = "vpc-2222bbbb"
	defSubA   = "subnet-1a1a1a1a"
	defSubB   = "subnet-1b1b1b1b"
	pubSub    = "subnet-3333cccc"
	natSub    = "subnet-4444dddd"
	isoSub    = "subnet-5555eeee"
	mainSub   = "subnet-6666ffff" // no explicit association: uses the custom VPC's main table
	noIPSub   = "subnet-7777aaaa" // routes to an IGW but assigns no public IPs
	holeSub   = "subnet-8888bbbb" // NAT route is a blackhole
	tgwSub    = "subnet-9999cccc" // egress through a transit gateway
	armAMI    = "ami-0aaaaaaaaaaaaaaa1"
	amdAMI    = "ami-0bbbbbbbbbbbbbbb2"
	customArm = "ami-11112222"
	customX86 = "ami-33334444"
	pending   = "ami-55556666"
)

func route(target string) ec2types.Route {
	r := ec2types.Route{DestinationCidrBlock: aws.String("0.0.0.0/0"), State: ec2types.RouteStateActive}
	switch {
	case strings.HasPrefix(target, "nat-"):
		r.NatGatewayId = aws.String(target)
	case strings.HasPrefix(target, "tgw-"):
		r.TransitGatewayId = aws.String(target)
	default:
		r.GatewayId = aws.String(target)
	}
	return r
}

func localRoute(cidr string) ec2types.Route {
	return ec2types.Route{DestinationCidrBlock: aws.String(cidr), GatewayId: aws.String("local"), State: ec2types.RouteStateActive}
}

func table(id, vpc string, main bool, subnets []string, routes ...ec2types.Route) ec2types.RouteTable {
	t := ec2types.RouteTable{RouteTableId: aws.String(id), VpcId: aws.String(vpc), Routes: routes}
	if main {
		t.Associations = append(t.Associations, ec2types.RouteTableAssociation{Main: aws.Bool(true)})
	}
	for _, s := range subnets {
		t.Associations = append(t.Associations, ec2types.RouteTableAssociation{SubnetId: aws.String(s), Main: aws.Bool(false)})
	}
	return t
}

func subnet(id, vpc, az, cidr string, dflt, publicIP bool) ec2types.Subnet {
	return ec2types.Subnet{
		SubnetId: aws.String(id), VpcId: aws.String(vpc), AvailabilityZone: aws.String(az), CidrBlock: aws.String(cidr),
		DefaultForAz: aws.Bool(dflt), MapPublicIpOnLaunch: aws.Bool(publicIP), State: ec2types.SubnetStateAvailable,
	}
}

func newWorld() (*fakeEC2, *fakeSSM) {
	blackhole := route("nat-0dead")
	blackhole.State = ec2types.RouteStateBlackhole
	e := &fakeEC2{
		types: map[string][]ec2types.ArchitectureType{
			"t4g.medium":  {ec2types.ArchitectureTypeArm64},
			"m7i.large":   {ec2types.ArchitectureTypeX8664},
			"g4dn.xlarge": {ec2types.ArchitectureTypeX8664},
			"t1.micro":    {ec2types.ArchitectureTypeI386, ec2types.ArchitectureTypeX8664},
			"mac2.metal":  {ec2types.ArchitectureTypeArm64Mac},
			"x9.retired":  {ec2types.ArchitectureTypeX8664},
		},
		notInRegion: map[string]bool{"x9.retired": true},
		memMiB:      map[string]int64{"t4g.medium": 4096, "g4dn.xlarge": 16384},
		images: []ec2types.Image{
			// Canonical's, named by its public parameters.
			{ImageId: aws.String(armAMI), Architecture: ec2types.ArchitectureValuesArm64, State: ec2types.ImageStateAvailable, RootDeviceName: aws.String("/dev/sda1")},
			{ImageId: aws.String(amdAMI), Architecture: ec2types.ArchitectureValuesX8664, State: ec2types.ImageStateAvailable, RootDeviceName: aws.String("/dev/sda1")},
			// An Amazon Linux style image, rooted at /dev/xvda.
			{ImageId: aws.String(customArm), Architecture: ec2types.ArchitectureValuesArm64, State: ec2types.ImageStateAvailable, RootDeviceName: aws.String("/dev/xvda")},
			{ImageId: aws.String(customX86), Architecture: ec2types.ArchitectureValuesX8664, State: ec2types.ImageStateAvailable},
			{ImageId: aws.String(pending), Architecture: ec2types.ArchitectureValuesArm64, State: ec2types.ImageStatePending},
		},
		vpcs: []ec2types.Vpc{
			{VpcId: aws.String(custVPC), CidrBlock: aws.String("10.0.0.0/16"), IsDefault: aws.Bool(false)},
			{VpcId: aws.String(defVPC), CidrBlock: aws.String("172.31.0.0/16"), IsDefault: aws.Bool(true)},
		},
		subnets: []ec2types.Subnet{
			subnet(pubSub, custVPC, "eu-west-1a", "10.0.0.0/24", false, true),
			subnet(defSubB, defVPC, "eu-west-1b", "172.31.16.0/20", true, true),
			subnet(defSubA, defVPC, "eu-west-1a", "172.31.0.0/20", true, true),
			subnet(natSub, custVPC, "eu-west-1b", "10.0.1.0/24", false, false),
			subnet(isoSub, custVPC, "eu-west-1c", "10.0.2.0/24", false, false),
			subnet(mainSub, custVPC, "eu-west-1a", "10.0.3.0/24", false, false),
			subnet(noIPSub, custVPC, "eu-west-1a", "10.0.4.0/24", false, false),
			subnet(holeSub, custVPC, "eu-west-1a", "10.0.5.0/24", false, false),
			subnet(tgwSub, custVPC, "eu-west-1a", "10.0.6.0/24", false, false),
		},
		tables: []ec2types.RouteTable{
			table("rtb-cust-main", custVPC, true, nil, localRoute("10.0.0.0/16"), route("nat-0main")),
			table("rtb-def-main", defVPC, true, nil, localRoute("172.31.0.0/16"), route("igw-0def")),
			table("rtb-pub", custVPC, false, []string{pubSub, noIPSub}, localRoute("10.0.0.0/16"), route("igw-0cust")),
			table("rtb-nat", custVPC, false, []string{natSub}, localRoute("10.0.0.0/16"), route("nat-0abc")),
			table("rtb-iso", custVPC, false, []string{isoSub}, localRoute("10.0.0.0/16")),
			table("rtb-hole", custVPC, false, []string{holeSub}, localRoute("10.0.0.0/16"), blackhole),
			table("rtb-tgw", custVPC, false, []string{tgwSub}, localRoute("10.0.0.0/16"), route("tgw-0abc")),
		},
		errs: map[string]error{},
	}
	s := &fakeSSM{params: map[string]string{
		UbuntuAMIParameter("arm64"):  armAMI,
		UbuntuAMIParameter("x86_64"): amdAMI,
	}}
	return e, s
}

func baseSpec() spec.Spec {
	s := spec.Spec{Name: "edge-1"}
	s.ApplyDefaults(spec.Defaults{Region: "eu-west-1"})
	return s
}

var (
	defaultResolved = mec.Resolved{Architecture: "arm64", AmiID: armAMI, RootDevice: "/dev/sda1", VpcID: defVPC, SubnetID: defSubA,
		AvailabilityZone: "eu-west-1a", SubnetCIDR: "172.31.0.0/20", VpcCIDR: "172.31.0.0/16"}
	custResolved = func(sub, az, cidr string) mec.Resolved {
		return mec.Resolved{Architecture: "arm64", AmiID: armAMI, RootDevice: "/dev/sda1", VpcID: custVPC, SubnetID: sub,
			AvailabilityZone: az, SubnetCIDR: cidr, VpcCIDR: "10.0.0.0/16"}
	}
)

func TestResolve(t *testing.T) {
	throttle := apiErr("RequestLimitExceeded")
	tests := []struct {
		name    string
		spec    func(*spec.Spec)
		world   func(*fakeEC2, *fakeSSM)
		want    mec.Resolved
		fields  map[string]string // a *spec.ValidationError on exactly these fields
		wrapped string            // a non-validation error with this text
		notAPI  bool              // the wrapped error is ours, not an API error
	}{
		// architecture and AMI
		{name: "all defaults", want: defaultResolved},
		{name: "x86_64 type uses the amd64 parameter", spec: func(s *spec.Spec) { s.InstanceType = "m7i.large" },
			want: func() mec.Resolved { r := defaultResolved; r.Architecture, r.AmiID = "x86_64", amdAMI; return r }()},
		{name: "architecture not guessed from name", spec: func(s *spec.Spec) { s.InstanceType = "g4dn.xlarge" },
			want: func() mec.Resolved { r := defaultResolved; r.Architecture, r.AmiID = "x86_64", amdAMI; return r }()},
		{name: "i386 and x86_64 type is x86_64", spec: func(s *spec.Spec) { s.InstanceType = "t1.micro" },
			want: func() mec.Resolved { r := defaultResolved; r.Architecture, r.AmiID = "x86_64", amdAMI; return r }()},
		// The fit check with EC2's figure, for a family the spec's table does not know.
		{name: "addons over EC2's memory figure", spec: func(s *spec.Spec) { s.InstanceType = "t1.micro" },
			world:  func(e *fakeEC2, _ *fakeSSM) { e.memMiB["t1.micro"] = 627 },
			fields: map[string]string{"addons": "will not fit t1.micro's 627 MiB: MicroK8s with room for workloads and the addons dns 170 (MiB) need about 1553 MiB; choose an instanceType with at least 1553 MiB"}},
		{name: "addons within EC2's memory figure", spec: func(s *spec.Spec) { s.InstanceType, s.Addons = "g4dn.xlarge", spec.AllowedAddons },
			want: func() mec.Resolved { r := defaultResolved; r.Architecture, r.AmiID = "x86_64", amdAMI; return r }()},
		{name: "mac type refused", spec: func(s *spec.Spec) { s.InstanceType = "mac2.metal" },
			fields: map[string]string{"instanceType": `"mac2.metal" is arm64_mac; mecd needs an arm64 or x86_64`}},
		{name: "unknown instance type", spec: func(s *spec.Spec) { s.InstanceType = "zz9.huge" },
			fields: map[string]string{"instanceType": `instance type "zz9.huge" does not exist in eu-west-1`}},
		{name: "instance type not supported in region", spec: func(s *spec.Spec) { s.InstanceType = "x9.retired" },
			fields: map[string]string{"instanceType": "does not exist in eu-west-1"}},
		{name: "instance type API failure", world: func(e *fakeEC2, _ *fakeSSM) { e.errs["DescribeInstanceTypes"] = throttle },
			wrapped: "describe instance types: "},
		{name: "custom AMI matching, its own root device", spec: func(s *spec.Spec) { s.AmiID = customArm },
			want: func() mec.Resolved { r := defaultResolved; r.AmiID, r.RootDevice = customArm, "/dev/xvda"; return r }()},
		{name: "custom x86 AMI on x86 type", spec: func(s *spec.Spec) { s.AmiID, s.InstanceType = customX86, "m7i.large" },
			want: func() mec.Resolved { r := defaultResolved; r.Architecture, r.AmiID = "x86_64", customX86; return r }()},
		{name: "custom AMI wrong architecture", spec: func(s *spec.Spec) { s.AmiID = customX86 },
			fields: map[string]string{"amiId": "AMI ami-33334444 is for x86_64, but instance type t4g.medium is arm64; use an arm64 AMI"}},
		{name: "custom AMI missing", spec: func(s *spec.Spec) { s.AmiID = "ami-99998888" },
			fields: map[string]string{"amiId": "AMI ami-99998888 does not exist in eu-west-1"}},
		{name: "custom AMI not available", spec: func(s *spec.Spec) { s.AmiID = pending },
			fields: map[string]string{"amiId": "is pending, not available"}},
		{name: "describe images failure", spec: func(s *spec.Spec) { s.AmiID = customArm },
			world:   func(e *fakeEC2, _ *fakeSSM) { e.errs["DescribeImages"] = throttle },
			wrapped: "describe images: "},
		{name: "no Ubuntu parameter in region", world: func(_ *fakeEC2, s *fakeSSM) { s.params = nil },
			fields: map[string]string{"amiId": "Canonical publishes no Ubuntu 24.04 arm64 AMI in eu-west-1"}},
		{name: "SSM failure", world: func(_ *fakeEC2, s *fakeSSM) { s.err = throttle },
			wrapped: "get parameter /aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id: "},
		{name: "SSM value not an AMI", world: func(_ *fakeEC2, s *fakeSSM) { s.params[UbuntuAMIParameter("arm64")] = "oops" },
			wrapped: `value "oops" is not an AMI id`, notAPI: true},

		// VPC
		{name: "no default VPC", world: func(e *fakeEC2, _ *fakeSSM) { e.vpcs = e.vpcs[:1] },
			fields: map[string]string{"vpcId": "region eu-west-1 has no default VPC; set vpcId and subnetId"}},
		{name: "vpcId missing", spec: func(s *spec.Spec) { s.VpcID = "vpc-0000ffff" },
			fields: map[string]string{"vpcId": "VPC vpc-0000ffff does not exist in eu-west-1"}},
		{name: "vpcId is the default VPC", spec: func(s *spec.Spec) { s.VpcID = defVPC }, want: defaultResolved},
		{name: "vpcId not default without subnetId", spec: func(s *spec.Spec) { s.VpcID = custVPC },
			fields: map[string]string{"subnetId": "is required: vpc-2222bbbb is not the default VPC of eu-west-1"}},
		{name: "describe vpcs failure", world: func(e *fakeEC2, _ *fakeSSM) { e.errs["DescribeVpcs"] = throttle },
			wrapped: "describe vpcs: "},

		// subnet
		{name: "public subnet", spec: func(s *spec.Spec) { s.VpcID, s.SubnetID = custVPC, pubSub },
			want: custResolved(pubSub, "eu-west-1a", "10.0.0.0/24")},
		{name: "subnetId alone implies its VPC", spec: func(s *spec.Spec) { s.SubnetID = pubSub },
			want: custResolved(pubSub, "eu-west-1a", "10.0.0.0/24")},
		{name: "public subnet with publicEndpoint", spec: func(s *spec.Spec) { s.SubnetID, s.PublicEndpoint = pubSub, true },
			want: custResolved(pubSub, "eu-west-1a", "10.0.0.0/24")},
		{name: "private subnet with NAT", spec: func(s *spec.Spec) { s.SubnetID = natSub },
			want: custResolved(natSub, "eu-west-1b", "10.0.1.0/24")},
		{name: "private subnet through the main table", spec: func(s *spec.Spec) { s.SubnetID = mainSub },
			want: custResolved(mainSub, "eu-west-1a", "10.0.3.0/24")},
		{name: "transit gateway egress accepted", spec: func(s *spec.Spec) { s.SubnetID = tgwSub },
			want: custResolved(tgwSub, "eu-west-1a", "10.0.6.0/24")},
		{name: "private subnet with publicEndpoint", spec: func(s *spec.Spec) { s.SubnetID, s.PublicEndpoint = natSub, true },
			fields: map[string]string{"publicEndpoint": "needs a public subnet (0.0.0.0/0 via an internet gateway, public IPv4 addresses on launch); subnet subnet-4444dddd reaches the internet through nat-0abc"}},
		{name: "isolated subnet", spec: func(s *spec.Spec) { s.SubnetID = isoSub },
			fields: map[string]string{"subnetId": "subnet subnet-5555eeee has no active 0.0.0.0/0 route in rtb-iso, so no route to the internet; nodes need outbound HTTPS to the Snap Store and the SSM endpoints"}},
		{name: "blackhole route", spec: func(s *spec.Spec) { s.SubnetID = holeSub },
			fields: map[string]string{"subnetId": "no active 0.0.0.0/0 route in rtb-hole"}},
		{name: "igw without public IPs", spec: func(s *spec.Spec) { s.SubnetID = noIPSub },
			fields: map[string]string{"subnetId": "routes 0.0.0.0/0 to igw-0cust but does not assign public IPv4 addresses on launch"}},
		{name: "subnet in another VPC", spec: func(s *spec.Spec) { s.VpcID, s.SubnetID = defVPC, pubSub },
			fields: map[string]string{"subnetId": "subnet subnet-3333cccc is in vpc-2222bbbb, not in vpcId vpc-1111aaaa"}},
		{name: "subnet missing", spec: func(s *spec.Spec) { s.SubnetID = "subnet-0000ffff" },
			fields: map[string]string{"subnetId": "subnet subnet-0000ffff does not exist in eu-west-1"}},
		{name: "subnet not available", spec: func(s *spec.Spec) { s.SubnetID = pubSub },
			world:  func(e *fakeEC2, _ *fakeSSM) { e.subnets[0].State = ec2types.SubnetStatePending },
			fields: map[string]string{"subnetId": "subnet subnet-3333cccc is pending, not available"}},
		{name: "no route table at all", spec: func(s *spec.Spec) { s.SubnetID = mainSub },
			world:  func(e *fakeEC2, _ *fakeSSM) { e.tables = e.tables[1:] },
			fields: map[string]string{"subnetId": "subnet subnet-6666ffff has no route table"}},
		{name: "default VPC without default subnets",
			world:  func(e *fakeEC2, _ *fakeSSM) { e.subnets = slices.Delete(e.subnets, 1, 3) },
			fields: map[string]string{"subnetId": "default VPC vpc-1111aaaa has no default subnets; set subnetId"}},
		{name: "first default subnet unusable, next one taken",
			world: func(e *fakeEC2, _ *fakeSSM) {
				e.tables = append(e.tables, table("rtb-def-iso", defVPC, false, []string{defSubA}, localRoute("172.31.0.0/16")))
			},
			want: func() mec.Resolved {
				r := defaultResolved
				r.SubnetID, r.AvailabilityZone, r.SubnetCIDR = defSubB, "eu-west-1b", "172.31.16.0/20"
				return r
			}()},
		{name: "no default subnet reaches the internet",
			world:  func(e *fakeEC2, _ *fakeSSM) { e.tables[1].Routes = e.tables[1].Routes[:1] },
			fields: map[string]string{"subnetId": "no default subnet of vpc-1111aaaa will do: subnet subnet-1a1a1a1a has no active 0.0.0.0/0 route in rtb-def-main"}},
		{name: "default subnets with publicEndpoint need an IGW",
			spec:   func(s *spec.Spec) { s.PublicEndpoint = true },
			world:  func(e *fakeEC2, _ *fakeSSM) { e.tables[1].Routes[1] = route("nat-0def") },
			fields: map[string]string{"publicEndpoint": "needs a public subnet"}},
		{name: "describe subnets failure", world: func(e *fakeEC2, _ *fakeSSM) { e.errs["DescribeSubnets"] = throttle },
			wrapped: "describe subnets: "},
		{name: "describe subnets failure by id", spec: func(s *spec.Spec) { s.SubnetID = pubSub },
			world:   func(e *fakeEC2, _ *fakeSSM) { e.errs["DescribeSubnets"] = throttle },
			wrapped: "describe subnets: "},
		{name: "describe route tables failure", world: func(e *fakeEC2, _ *fakeSSM) { e.errs["DescribeRouteTables"] = throttle },
			wrapped: "describe route tables: "},

		// robustness
		{name: "filters ignored by the backend", world: func(e *fakeEC2, _ *fakeSSM) { e.ignoreFilters = true }, want: defaultResolved},
		{name: "paged results", world: func(e *fakeEC2, _ *fakeSSM) { e.pageSize = 1 }, want: defaultResolved},
		{name: "paged and unfiltered", world: func(e *fakeEC2, _ *fakeSSM) { e.pageSize, e.ignoreFilters = 2, true }, want: defaultResolved},
		{name: "every user error at once",
			spec:  func(s *spec.Spec) { s.InstanceType = "zz9.huge" },
			world: func(e *fakeEC2, _ *fakeSSM) { e.vpcs = e.vpcs[:1] },
			fields: map[string]string{
				"instanceType": "does not exist", "vpcId": "no default VPC",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, s := newWorld()
			if tt.world != nil {
				tt.world(e, s)
			}
			sp := baseSpec()
			if tt.spec != nil {
				tt.spec(&sp)
			}
			got, err := Resolve(context.Background(), sp, e, s)
			switch {
			case tt.wrapped != "":
				var verr *spec.ValidationError
				if err == nil || errors.As(err, &verr) || !strings.Contains(err.Error(), tt.wrapped) {
					t.Fatalf("want a wrapped API error containing %q, got %T %v", tt.wrapped, err, err)
				}
				var ae smithy.APIError
				if !tt.notAPI && !errors.As(err, &ae) {
					t.Errorf("the API error is not unwrappable from %v", err)
				}
			case tt.fields != nil:
				checkErr(t, err, tt.fields)
			default:
				if err != nil {
					t.Fatal(err)
				}
				if got != tt.want {
					t.Errorf("got  %+v\nwant %+v", got, tt.want)
				}
			}
		})
	}
}

func TestResolveCustomAMISkipsSSM(t *testing.T) {
	e, s := newWorld()
	sp := baseSpec()
	sp.AmiID = customArm
	if _, err := Resolve(context.Background(), sp, e, s); err != nil {
		t.Fatal(err)
	}
	if len(s.calls) != 0 {
		t.Errorf("SSM called with %v although amiId was given", s.calls)
	}
}

func TestResolveUnknownTypeSkipsAMI(t *testing.T) {
	e, s := newWorld()
	sp := baseSpec()
	sp.InstanceType = "zz9.huge"
	sp.AmiID = customArm
	_, err := Resolve(context.Background(), sp, e, s)
	checkErr(t, err, map[string]string{"instanceType": "does not exist"})
	if slices.Contains(e.calls, "DescribeImages") || len(s.calls) != 0 {
		t.Errorf("looked up an AMI without an architecture: %v %v", e.calls, s.calls)
	}
}

func TestUbuntuAMIParameter(t *testing.T) {
	for arch, want := range map[string]string{
		"arm64":  "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id",
		"x86_64": "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
	} {
		if got := UbuntuAMIParameter(arch); got != want {
			t.Errorf("UbuntuAMIParameter(%q) = %q, want %q", arch, got, want)
		}
	}
}

// checkErr asserts that err is a *spec.ValidationError on exactly the fields
// in want, each message containing the wanted text; want == nil means no error.
func checkErr(t *testing.T, err error, want map[string]string) {
	t.Helper()
	var verr *spec.ValidationError
	switch {
	case len(want) == 0 && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case len(want) == 0:
	case !errors.As(err, &verr):
		t.Fatalf("want *ValidationError on %v, got %T %v", want, err, err)
	case !maps.EqualFunc(verr.Fields, want, strings.Contains):
		t.Fatalf("error fields %v, want fields containing %v", verr.Fields, want)
	}
}
