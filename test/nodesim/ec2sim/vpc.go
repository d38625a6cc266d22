package ec2sim

import (
	"fmt"
	"net/netip"
	"strings"
)

// regionState is what a region gets on first use: its default VPC.
// ebsDefaults are a region's account settings for EBS encryption: by
// default (every new volume encrypted), and the default KMS key, which may
// be a customer managed key EC2 cannot use for the caller.
type ebsDefaults struct {
	byDefault bool
	keyArn    string // "" is the AWS managed key aws/ebs
	keyUsable bool
}

func (e ebsDefaults) key(region string) string {
	if e.keyArn != "" {
		return e.keyArn
	}
	return defaultKMSKey(region)
}

type regionState struct {
	ebs        ebsDefaults
	name       string
	defaultVPC string
	azs        []string
}

type vpc struct {
	id, region, cidr string
	prefix           netip.Prefix
	isDefault        bool
	mainRT           string
	defaultSG        string
	tags             map[string]string
}

type subnet struct {
	id, region, vpcID, cidr, az string
	prefix                      netip.Prefix
	defaultForAz, mapPublic     bool
	used                        map[netip.Addr]bool
	next                        int // next host offset to try, so addresses are not reused at once
	tags                        map[string]string
}

type route struct {
	dest, gatewayID, natID, origin string
}

type rtAssoc struct {
	id, subnetID string
	main         bool
}

type routeTable struct {
	id, region, vpcID string
	routes            []route
	assocs            []rtAssoc
	tags              map[string]string
}

type igw struct {
	id, region, vpcID string
	tags              map[string]string
}

// ensureRegion creates a region's default VPC on first use, as every AWS
// account has: 172.31.0.0/16, one /20 default subnet per AZ (a, b, c) mapping
// public IPs, an internet gateway, a main route table with 0.0.0.0/0 to it,
// and the VPC's default security group. Callers hold s.mu.
func (s *Sim) ensureRegion(name string) *regionState {
	if r, ok := s.regions[name]; ok {
		return r
	}
	r := &regionState{name: name, azs: []string{name + "a", name + "b", name + "c"}}
	s.regions[name] = r
	v := s.newVPC(name, netip.MustParsePrefix("172.31.0.0/16"), true, "")
	r.defaultVPC = v.id
	g := &igw{id: s.newID("igw"), region: name, vpcID: v.id, tags: map[string]string{}}
	s.igws[g.id] = g
	rt := s.rtbs[v.mainRT]
	rt.routes = append(rt.routes, route{dest: "0.0.0.0/0", gatewayID: g.id, origin: "CreateRoute"})
	for i, az := range r.azs {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 31, byte(16 * i), 0}), 20)
		sn := s.newSubnet(name, v.id, p, az)
		sn.defaultForAz, sn.mapPublic = true, true
	}
	return r
}

// newVPC makes a VPC with its main route table (local route only) and its
// default security group. id may be given (AddSubnet with an unknown VPC).
func (s *Sim) newVPC(region string, p netip.Prefix, isDefault bool, id string) *vpc {
	if id == "" {
		id = s.newID("vpc")
	} else {
		s.ids[id] = true
	}
	v := &vpc{id: id, region: region, cidr: p.String(), prefix: p, isDefault: isDefault, tags: map[string]string{}}
	s.vpcs[v.id] = v
	rt := s.newRouteTable(v)
	rt.assocs = append(rt.assocs, rtAssoc{id: s.newID("rtbassoc"), main: true})
	v.mainRT = rt.id
	v.defaultSG = s.newDefaultGroup(v).id
	return v
}

func (s *Sim) newRouteTable(v *vpc) *routeTable {
	rt := &routeTable{id: s.newID("rtb"), region: v.region, vpcID: v.id, tags: map[string]string{},
		routes: []route{{dest: v.cidr, gatewayID: "local", origin: "CreateRouteTable"}}}
	s.rtbs[rt.id] = rt
	return rt
}

func (s *Sim) newSubnet(region, vpcID string, p netip.Prefix, az string) *subnet {
	sn := &subnet{id: s.newID("subnet"), region: region, vpcID: vpcID, cidr: p.String(), prefix: p, az: az,
		used: map[netip.Addr]bool{}, next: 4, tags: map[string]string{}}
	s.subnets[sn.id] = sn
	return sn
}

// AddSubnet adds a subnet, for tests of subnets other than the default ones.
// vpcID "" means the region's default VPC; an unknown vpcID creates that VPC
// (its CIDR the /16 around cidr, no internet gateway). A public subnet maps
// public IPs and routes 0.0.0.0/0 to an internet gateway (in the default VPC
// through the main route table, as default subnets do); a private one gets
// its own route table with only the local route. az "" means <region>a.
// It panics on a CIDR that is invalid or outside the VPC: a test setup bug.
func (s *Sim) AddSubnet(region, vpcID, cidr, az string, public bool) (subnetID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.ensureRegion(region)
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() || p.Bits() > 28 {
		panic(fmt.Sprintf("ec2sim.AddSubnet: invalid IPv4 CIDR %q (want /16../28)", cidr))
	}
	p = p.Masked()
	if vpcID == "" {
		vpcID = r.defaultVPC
	}
	v, ok := s.vpcs[vpcID]
	if !ok {
		wide := netip.PrefixFrom(p.Addr(), min(16, p.Bits())).Masked()
		v = s.newVPC(region, wide, false, vpcID)
	}
	if v.region != region || !v.prefix.Contains(p.Addr()) || v.prefix.Bits() > p.Bits() {
		panic(fmt.Sprintf("ec2sim.AddSubnet: %s is not inside %s (%s) in %s", cidr, v.id, v.cidr, region))
	}
	for _, o := range s.subnets {
		if o.vpcID == v.id && o.prefix.Overlaps(p) {
			panic(fmt.Sprintf("ec2sim.AddSubnet: %s overlaps %s (%s)", cidr, o.id, o.cidr))
		}
	}
	if az == "" {
		az = region + "a"
	}
	sn := s.newSubnet(region, v.id, p, az)
	sn.mapPublic = public
	switch {
	case public && s.mainRouteToIGW(v):
		// Uses the main route table implicitly, like a default subnet.
	case public:
		g := s.vpcIGW(v)
		if g == nil {
			g = &igw{id: s.newID("igw"), region: region, vpcID: v.id, tags: map[string]string{}}
			s.igws[g.id] = g
		}
		rt := s.newRouteTable(v)
		rt.routes = append(rt.routes, route{dest: "0.0.0.0/0", gatewayID: g.id, origin: "CreateRoute"})
		rt.assocs = append(rt.assocs, rtAssoc{id: s.newID("rtbassoc"), subnetID: sn.id})
	default:
		rt := s.newRouteTable(v)
		rt.assocs = append(rt.assocs, rtAssoc{id: s.newID("rtbassoc"), subnetID: sn.id})
	}
	return sn.id
}

// AddNATRoute routes a subnet's 0.0.0.0/0 through a NAT gateway, the other way
// a private subnet reaches the internet. It returns the NAT gateway's id.
func (s *Sim) AddNATRoute(subnetID string) (natGatewayID string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, ok := s.subnets[subnetID]
	if !ok {
		return "", fmt.Errorf("add NAT route: subnet %s does not exist", subnetID)
	}
	rt := s.subnetRouteTable(sn)
	if rt.id == s.vpcs[sn.vpcID].mainRT {
		return "", fmt.Errorf("add NAT route: subnet %s uses its VPC's main route table; add it with AddSubnet(public=false)", subnetID)
	}
	nat := s.newID("nat")
	rt.routes = append(rt.routes, route{dest: "0.0.0.0/0", natID: nat, origin: "CreateRoute"})
	return nat, nil
}

func (s *Sim) vpcIGW(v *vpc) *igw {
	for _, g := range s.igws {
		if g.vpcID == v.id {
			return g
		}
	}
	return nil
}

func (s *Sim) mainRouteToIGW(v *vpc) bool {
	for _, r := range s.rtbs[v.mainRT].routes {
		if r.dest == "0.0.0.0/0" && strings.HasPrefix(r.gatewayID, "igw-") {
			return true
		}
	}
	return false
}

// subnetRouteTable is the table a subnet uses: its explicit association, else
// its VPC's main table.
func (s *Sim) subnetRouteTable(sn *subnet) *routeTable {
	for _, rt := range s.rtbs {
		for _, a := range rt.assocs {
			if a.subnetID == sn.id {
				return rt
			}
		}
	}
	return s.rtbs[s.vpcs[sn.vpcID].mainRT]
}

// allocIP takes the next free host address; AWS reserves the first four and
// the last address of every subnet. Callers hold s.mu.
func (sn *subnet) allocIP() (netip.Addr, bool) {
	size := 1 << (32 - sn.prefix.Bits())
	base := sn.prefix.Addr().As4()
	b := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	for range size {
		off := sn.next
		sn.next++
		if sn.next >= size-1 {
			sn.next = 4
		}
		if off < 4 || off >= size-1 {
			continue
		}
		v := b + uint32(off)
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		if !sn.used[a] {
			sn.used[a] = true
			return a, true
		}
	}
	return netip.Addr{}, false
}

func (sn *subnet) available() int {
	return (1 << (32 - sn.prefix.Bits())) - 5 - len(sn.used)
}

// zoneID is AWS's AZ id form: us-east-1a -> use1-az1, ap-southeast-2b -> apse2-az2.
func zoneID(region string, i int) string {
	parts := strings.Split(region, "-")
	if len(parts) != 3 {
		return fmt.Sprintf("%s-az%d", region, i+1)
	}
	short := parts[0]
	rest := parts[1]
	for _, w := range []string{"north", "south", "east", "west", "central"} {
		if strings.HasPrefix(rest, w) {
			short += w[:1]
			rest = strings.TrimPrefix(rest, w)
		}
	}
	if rest != "" {
		short += rest[:1]
	}
	return fmt.Sprintf("%s%s-az%d", short, parts[2], i+1)
}
