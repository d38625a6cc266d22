package ec2sim

import (
	"fmt"
	"net/netip"
	"strings"
)

// regionState is what a region gets on first use: its default VPC.
type regionState struct {
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

func (s *Sim) describeVpcs(c *call, x *xmlw) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensureRegion(c.region)
	ids := c.p.list("VpcId")
	if err := noMaxWithIDs(c.p, ids, "vpcIds"); err != nil {
		return err
	}
	var items []*vpc
	if len(ids) > 0 {
		var missingIDs []string
		for _, id := range ids {
			v, ok := s.vpcs[id]
			if !ok || v.region != c.region {
				missingIDs = append(missingIDs, id)
				continue
			}
			items = append(items, v)
		}
		if len(missingIDs) > 0 {
			return errf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", strings.Join(missingIDs, ", "))
		}
	} else {
		for _, v := range s.vpcs {
			if v.region == c.region {
				items = append(items, v)
			}
		}
	}
	items, err := applyFilters(items, parseFilters(c.p), fields[*vpc]{
		"vpc-id":     func(v *vpc) []string { return []string{v.id} },
		"isDefault":  func(v *vpc) []string { return []string{fmt.Sprint(v.isDefault)} },
		"is-default": func(v *vpc) []string { return []string{fmt.Sprint(v.isDefault)} },
		"cidr":       func(v *vpc) []string { return []string{v.cidr} },
		"cidr-block": func(v *vpc) []string { return []string{v.cidr} },
		"state":      func(*vpc) []string { return []string{"available"} },
		"owner-id":   func(*vpc) []string { return []string{ownerID} },
	}, func(v *vpc) map[string]string { return v.tags })
	if err != nil {
		return err
	}
	items, next, err := page(items, func(v *vpc) string { return v.id }, c.p, 5, 1000)
	if err != nil {
		return err
	}
	x.set("vpcSet", len(items), func(i int) {
		v := items[i]
		x.leaf("vpcId", v.id)
		x.leaf("ownerId", ownerID)
		x.leaf("state", "available")
		x.leaf("cidrBlock", v.cidr)
		x.set("cidrBlockAssociationSet", 1, func(int) {
			x.leaf("cidrBlock", v.cidr)
			x.leaf("associationId", "vpc-cidr-assoc-"+strings.TrimPrefix(v.id, "vpc-"))
			x.elem("cidrBlockState", func() { x.leaf("state", "associated") })
		})
		x.leaf("dhcpOptionsId", "dopt-"+strings.TrimPrefix(v.id, "vpc-"))
		x.tags(v.tags, true)
		x.leaf("instanceTenancy", "default")
		x.boolean("isDefault", v.isDefault)
	})
	x.opt("nextToken", next)
	return nil
}

func (s *Sim) describeSubnets(c *call, x *xmlw) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.ensureRegion(c.region)
	ids := c.p.list("SubnetId")
	if err := noMaxWithIDs(c.p, ids, "subnetIds"); err != nil {
		return err
	}
	var items []*subnet
	if len(ids) > 0 {
		for _, id := range ids {
			if !reSubnetID.MatchString(id) {
				return errf("InvalidSubnetID.Malformed", "Invalid id: \"%s\" (expecting \"subnet-...\")", id)
			}
			sn, ok := s.subnets[id]
			if !ok || sn.region != c.region {
				return errf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
			}
			items = append(items, sn)
		}
	} else {
		for _, sn := range s.subnets {
			if sn.region == c.region {
				items = append(items, sn)
			}
		}
	}
	items, err := applyFilters(items, parseFilters(c.p), fields[*subnet]{
		"subnet-id":               func(sn *subnet) []string { return []string{sn.id} },
		"vpc-id":                  func(sn *subnet) []string { return []string{sn.vpcID} },
		"default-for-az":          func(sn *subnet) []string { return []string{fmt.Sprint(sn.defaultForAz)} },
		"defaultForAz":            func(sn *subnet) []string { return []string{fmt.Sprint(sn.defaultForAz)} },
		"availability-zone":       func(sn *subnet) []string { return []string{sn.az} },
		"availabilityZone":        func(sn *subnet) []string { return []string{sn.az} },
		"map-public-ip-on-launch": func(sn *subnet) []string { return []string{fmt.Sprint(sn.mapPublic)} },
		"cidr-block":              func(sn *subnet) []string { return []string{sn.cidr} },
		"state":                   func(*subnet) []string { return []string{"available"} },
	}, func(sn *subnet) map[string]string { return sn.tags })
	if err != nil {
		return err
	}
	items, next, err := page(items, func(sn *subnet) string { return sn.id }, c.p, 5, 1000)
	if err != nil {
		return err
	}
	x.set("subnetSet", len(items), func(i int) {
		sn := items[i]
		x.leaf("subnetId", sn.id)
		x.leaf("subnetArn", fmt.Sprintf("arn:aws:ec2:%s:%s:subnet/%s", sn.region, ownerID, sn.id))
		x.leaf("state", "available")
		x.leaf("ownerId", ownerID)
		x.leaf("vpcId", sn.vpcID)
		x.leaf("cidrBlock", sn.cidr)
		x.int("availableIpAddressCount", int64(sn.available()))
		x.leaf("availabilityZone", sn.az)
		x.leaf("availabilityZoneId", zoneID(sn.region, azIndex(r, sn.az)))
		x.boolean("defaultForAz", sn.defaultForAz)
		x.boolean("mapPublicIpOnLaunch", sn.mapPublic)
		x.boolean("mapCustomerOwnedIpOnLaunch", false)
		x.boolean("assignIpv6AddressOnCreation", false)
		x.boolean("ipv6Native", false)
		x.boolean("enableDns64", false)
		x.tags(sn.tags, true)
	})
	x.opt("nextToken", next)
	return nil
}

func azIndex(r *regionState, az string) int {
	for i, a := range r.azs {
		if a == az {
			return i
		}
	}
	if az != "" {
		return int(az[len(az)-1]-'a') % 26
	}
	return 0
}

func (s *Sim) describeRouteTables(c *call, x *xmlw) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensureRegion(c.region)
	ids := c.p.list("RouteTableId")
	if err := noMaxWithIDs(c.p, ids, "routeTableIds"); err != nil {
		return err
	}
	var items []*routeTable
	if len(ids) > 0 {
		for _, id := range ids {
			rt, ok := s.rtbs[id]
			if !ok || rt.region != c.region {
				return errf("InvalidRouteTableID.NotFound", "The routeTable ID '%s' does not exist", id)
			}
			items = append(items, rt)
		}
	} else {
		for _, rt := range s.rtbs {
			if rt.region == c.region {
				items = append(items, rt)
			}
		}
	}
	assocField := func(f func(a rtAssoc) string) func(*routeTable) []string {
		return func(rt *routeTable) []string {
			var out []string
			for _, a := range rt.assocs {
				if v := f(a); v != "" {
					out = append(out, v)
				}
			}
			return out
		}
	}
	routeField := func(f func(r route) string) func(*routeTable) []string {
		return func(rt *routeTable) []string {
			var out []string
			for _, r := range rt.routes {
				if v := f(r); v != "" {
					out = append(out, v)
				}
			}
			return out
		}
	}
	items, err := applyFilters(items, parseFilters(c.p), fields[*routeTable]{
		"route-table-id":                         func(rt *routeTable) []string { return []string{rt.id} },
		"vpc-id":                                 func(rt *routeTable) []string { return []string{rt.vpcID} },
		"association.subnet-id":                  assocField(func(a rtAssoc) string { return a.subnetID }),
		"association.route-table-association-id": assocField(func(a rtAssoc) string { return a.id }),
		"association.main": func(rt *routeTable) []string {
			for _, a := range rt.assocs {
				if a.main {
					return []string{"true"}
				}
			}
			return []string{"false"}
		},
		"route.destination-cidr-block": routeField(func(r route) string { return r.dest }),
		"route.gateway-id":             routeField(func(r route) string { return r.gatewayID }),
		"route.nat-gateway-id":         routeField(func(r route) string { return r.natID }),
	}, func(rt *routeTable) map[string]string { return rt.tags })
	if err != nil {
		return err
	}
	items, next, err := page(items, func(rt *routeTable) string { return rt.id }, c.p, 5, 100)
	if err != nil {
		return err
	}
	x.set("routeTableSet", len(items), func(i int) {
		rt := items[i]
		x.leaf("routeTableId", rt.id)
		x.leaf("vpcId", rt.vpcID)
		x.leaf("ownerId", ownerID)
		x.set("routeSet", len(rt.routes), func(j int) {
			r := rt.routes[j]
			x.leaf("destinationCidrBlock", r.dest)
			x.opt("gatewayId", r.gatewayID)
			x.opt("natGatewayId", r.natID)
			x.leaf("state", "active")
			x.leaf("origin", r.origin)
		})
		x.set("associationSet", len(rt.assocs), func(j int) {
			a := rt.assocs[j]
			x.leaf("routeTableAssociationId", a.id)
			x.leaf("routeTableId", rt.id)
			x.opt("subnetId", a.subnetID)
			x.boolean("main", a.main)
			x.elem("associationState", func() { x.leaf("state", "associated") })
		})
		x.set("propagatingVgwSet", 0, nil)
		x.tags(rt.tags, false)
	})
	x.opt("nextToken", next)
	return nil
}

func (s *Sim) describeAvailabilityZones(c *call, x *xmlw) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.ensureRegion(c.region)
	type zone struct{ name, id string }
	var items []zone
	for i, az := range r.azs {
		items = append(items, zone{az, zoneID(r.name, i)})
	}
	if names := c.p.list("ZoneName"); len(names) > 0 {
		var keep []zone
		for _, n := range names {
			i := azIndex(r, n)
			if i < 0 || i >= len(r.azs) || r.azs[i] != n {
				return errf("InvalidParameterValue", "The zone '%s' does not exist.", n)
			}
			keep = append(keep, items[i])
		}
		items = keep
	}
	items, err := applyFilters(items, parseFilters(c.p), fields[zone]{
		"zone-name":   func(z zone) []string { return []string{z.name} },
		"zone-id":     func(z zone) []string { return []string{z.id} },
		"state":       func(zone) []string { return []string{"available"} },
		"region-name": func(zone) []string { return []string{r.name} },
		"zone-type":   func(zone) []string { return []string{"availability-zone"} },
	}, func(zone) map[string]string { return nil })
	if err != nil {
		return err
	}
	x.set("availabilityZoneInfo", len(items), func(i int) {
		x.leaf("zoneName", items[i].name)
		x.leaf("zoneId", items[i].id)
		x.leaf("zoneState", "available")
		x.leaf("regionName", r.name)
		x.leaf("optInStatus", "opt-in-not-required")
		x.leaf("zoneType", "availability-zone")
		x.leaf("groupName", r.name+"-zg-1")
		x.leaf("networkBorderGroup", r.name)
		x.set("messageSet", 0, nil)
	})
	return nil
}
