package ec2sim

import (
	"fmt"
	"strings"
)

func (s *Sim) describeVpcs(c *call, x *xmlw) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensureRegion(c.region)
	items, err := selection[*vpc]{idParam: "VpcId", listName: "vpcIds",
		missing: func(ids []string) error {
			return errf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", strings.Join(ids, ", "))
		},
	}.pick(c, s.vpcs, func(v *vpc) bool { return v.region == c.region })
	if err != nil {
		return err
	}
	items, next, err := listing[*vpc]{fields: fields[*vpc]{
		"vpc-id":     func(v *vpc) []string { return []string{v.id} },
		"isDefault":  func(v *vpc) []string { return []string{fmt.Sprint(v.isDefault)} },
		"is-default": func(v *vpc) []string { return []string{fmt.Sprint(v.isDefault)} },
		"cidr":       func(v *vpc) []string { return []string{v.cidr} },
		"cidr-block": func(v *vpc) []string { return []string{v.cidr} },
		"state":      func(*vpc) []string { return []string{"available"} },
		"owner-id":   func(*vpc) []string { return []string{ownerID} },
	}, tags: func(v *vpc) map[string]string { return v.tags }, key: func(v *vpc) string { return v.id }, minMax: 5, maxMax: 1000}.apply(c, items)
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
	items, err := selection[*subnet]{idParam: "SubnetId", listName: "subnetIds", idForm: reSubnetID,
		malformed: func(id string) error {
			return errf("InvalidSubnetID.Malformed", "Invalid id: \"%s\" (expecting \"subnet-...\")", id)
		},
		missing: func(ids []string) error {
			return errf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", ids[0])
		},
	}.pick(c, s.subnets, func(sn *subnet) bool { return sn.region == c.region })
	if err != nil {
		return err
	}
	items, next, err := listing[*subnet]{fields: fields[*subnet]{
		"subnet-id":               func(sn *subnet) []string { return []string{sn.id} },
		"vpc-id":                  func(sn *subnet) []string { return []string{sn.vpcID} },
		"default-for-az":          func(sn *subnet) []string { return []string{fmt.Sprint(sn.defaultForAz)} },
		"defaultForAz":            func(sn *subnet) []string { return []string{fmt.Sprint(sn.defaultForAz)} },
		"availability-zone":       func(sn *subnet) []string { return []string{sn.az} },
		"availabilityZone":        func(sn *subnet) []string { return []string{sn.az} },
		"map-public-ip-on-launch": func(sn *subnet) []string { return []string{fmt.Sprint(sn.mapPublic)} },
		"cidr-block":              func(sn *subnet) []string { return []string{sn.cidr} },
		"state":                   func(*subnet) []string { return []string{"available"} },
	}, tags: func(sn *subnet) map[string]string { return sn.tags }, key: func(sn *subnet) string { return sn.id }, minMax: 5, maxMax: 1000}.apply(c, items)
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
	items, err := selection[*routeTable]{idParam: "RouteTableId", listName: "routeTableIds",
		missing: func(ids []string) error {
			return errf("InvalidRouteTableID.NotFound", "The routeTable ID '%s' does not exist", ids[0])
		},
	}.pick(c, s.rtbs, func(rt *routeTable) bool { return rt.region == c.region })
	if err != nil {
		return err
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
	items, next, err := listing[*routeTable]{fields: fields[*routeTable]{
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
	}, tags: func(rt *routeTable) map[string]string { return rt.tags }, key: func(rt *routeTable) string { return rt.id }, minMax: 5, maxMax: 100}.apply(c, items)
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
