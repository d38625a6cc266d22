package ec2sim

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

type sgRule struct {
	id       string
	egress   bool
	proto    string // tcp, udp, icmp, icmpv6, -1, or a protocol number
	from, to int32  // -1 when the protocol has no ports
	hasPorts bool
	cidr     string // one of cidr, cidr6, groupID is set
	cidr6    string
	groupID  string
	desc     string
}

// key identifies a rule for duplicate detection; descriptions do not count.
func (r *sgRule) key() string {
	return fmt.Sprintf("%t|%s|%d|%d|%s|%s|%s", r.egress, r.proto, r.from, r.to, r.cidr, r.cidr6, r.groupID)
}

func (r *sgRule) peer() string {
	switch {
	case r.cidr != "":
		return r.cidr
	case r.cidr6 != "":
		return r.cidr6
	}
	return r.groupID
}

// describe is how EC2 names a rule in InvalidPermission.Duplicate.
func (r *sgRule) describe() string {
	proto := strings.ToUpper(r.proto)
	if r.proto == "-1" {
		proto = "ALL"
	}
	if r.hasPorts {
		return fmt.Sprintf("peer: %s, %s, from port: %d, to port: %d, ALLOW", r.peer(), proto, r.from, r.to)
	}
	return fmt.Sprintf("peer: %s, %s, ALLOW", r.peer(), proto)
}

var protocols = map[string]string{
	"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "icmp": "icmp", "1": "icmp",
	"icmpv6": "icmpv6", "58": "icmpv6", "-1": "-1", "all": "-1",
}

// parseRules reads IpPermissions.N (and the legacy top-level single rule)
// into one rule per source, validated as EC2 validates them. Callers hold s.mu.
func (s *Sim) parseRules(c *call, g *group, egress bool) ([]*sgRule, error) {
	perms := c.p.structs("IpPermissions")
	if len(perms) == 0 && c.p.has("IpProtocol") {
		// Legacy form: IpProtocol, FromPort, ToPort, CidrIp at the top level.
		perms = []params{c.p}
	}
	if len(perms) == 0 {
		return nil, missing("IpPermissions")
	}
	var out []*sgRule
	for _, p := range perms {
		base, err := parseProtoPorts(p)
		if err != nil {
			return nil, err
		}
		add := func(r sgRule, desc string) error {
			if len(desc) > 255 || !reGroupName.MatchString(desc) {
				return errf("InvalidParameterValue", "Invalid rule description. Valid descriptions are strings less than 256 characters from the following set:  a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*")
			}
			r.desc, r.egress = desc, egress
			out = append(out, &r)
			return nil
		}
		n := len(out)
		cidrs := p.structs("IpRanges")
		if p.has("CidrIp") {
			cidrs = append(cidrs, params{v: p.v, prefix: p.prefix})
		}
		ranges := map[bool][]params{false: cidrs, true: p.structs("Ipv6Ranges")}
		for _, v6 := range []bool{false, true} {
			field, param, kind := "CidrIp", "cidrIp", "CIDR block"
			if v6 {
				field, param, kind = "CidrIpv6", "cidrIpv6", "IPv6 CIDR block"
			}
			for _, rng := range ranges[v6] {
				pre, err := netip.ParsePrefix(rng.get(field))
				if err != nil || pre.Addr().Is6() != v6 || pre.Addr().Is4In6() {
					return nil, errf("InvalidParameterValue", "Value (%s) for parameter %s is invalid. This is not a valid %s.", rng.get(field), param, kind)
				}
				r := base
				if v6 {
					r.cidr6 = pre.Masked().String()
				} else {
					r.cidr = pre.Masked().String()
				}
				if err := add(r, rng.get("Description")); err != nil {
					return nil, err
				}
			}
		}
		for _, pair := range p.structs("Groups") {
			var ref *group
			switch id, name := pair.get("GroupId"), pair.get("GroupName"); {
			case id != "":
				if ref, err = s.groupByID(c.region, id); err != nil {
					return nil, err
				}
			case name != "":
				if ref = s.groupByName(g.vpcID, name); ref == nil {
					return nil, errf("InvalidGroup.NotFound", "The security group '%s' does not exist in VPC '%s'", name, g.vpcID)
				}
			default:
				return nil, errf("MissingParameter", "The request must contain the parameter groupId or groupName for each user id group pair")
			}
			if ref.vpcID != g.vpcID {
				return nil, errf("InvalidParameter", "You have specified two resources that belong to different networks.")
			}
			r := base
			r.groupID = ref.id
			if err := add(r, pair.get("Description")); err != nil {
				return nil, err
			}
		}
		if len(p.structs("PrefixListIds")) > 0 {
			return nil, errf("InvalidParameterValue", "The simulator does not support prefix list rules")
		}
		if len(out) == n {
			return nil, errf("InvalidParameterValue", "The request must specify a CIDR block, an IPv6 CIDR block or a security group as the %s of the rule", map[bool]string{false: "source", true: "destination"}[egress])
		}
	}
	return out, nil
}

// parseProtoPorts reads IpProtocol, FromPort and ToPort of one permission.
func parseProtoPorts(p params) (sgRule, error) {
	raw := p.get("IpProtocol")
	if raw == "" {
		return sgRule{}, missing("IpProtocol")
	}
	proto, ok := protocols[strings.ToLower(raw)]
	if !ok {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 || n > 255 {
			return sgRule{}, errf("InvalidParameterValue", "Invalid value '%s' for IP protocol. Unknown protocol.", raw)
		}
		proto = raw
	}
	r := sgRule{proto: proto, from: -1, to: -1}
	from, hasFrom, err := p.intOpt("FromPort")
	if err != nil {
		return r, err
	}
	to, hasTo, err := p.intOpt("ToPort")
	if err != nil {
		return r, err
	}
	switch proto {
	case "tcp", "udp":
		if !hasFrom || !hasTo {
			return r, errf("InvalidParameterValue", "Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange")
		}
		if from < 0 || to > 65535 || from > to {
			return r, errf("InvalidParameterValue", "Invalid TCP/UDP port range: from %d to %d", from, to)
		}
		r.from, r.to, r.hasPorts = int32(from), int32(to), true
	case "icmp", "icmpv6":
		if !hasFrom {
			from = -1
		}
		if !hasTo {
			to = -1
		}
		if from < -1 || from > 255 || to < -1 || to > 255 {
			return r, errf("InvalidParameterValue", "Invalid ICMP type/code: %d/%d", from, to)
		}
		r.from, r.to, r.hasPorts = int32(from), int32(to), true
	}
	return r, nil
}

func (s *Sim) authorize(c *call, x *xmlw, egress bool) error {
	return s.withGroup(c, func(g *group) error {
		rules, err := s.parseRules(c, g, egress)
		if err != nil {
			return err
		}
		have := map[string]bool{}
		count := 0
		for _, e := range g.rules {
			have[e.key()] = true
			if e.egress == egress {
				count++
			}
		}
		for _, nr := range rules {
			if have[nr.key()] {
				return errf("InvalidPermission.Duplicate", "the specified rule \"%s\" already exists", nr.describe())
			}
			have[nr.key()] = true
		}
		if count+len(rules) > 60 {
			return errf("RulesPerSecurityGroupLimitExceeded", "The maximum number of rules per security group has been reached.")
		}
		for _, nr := range rules {
			nr.id = s.newID("sgr")
			g.rules = append(g.rules, nr)
		}
		x.boolean("return", true)
		x.set("securityGroupRuleSet", len(rules), func(i int) { writeRule(x, g, rules[i]) })
		return nil
	})
}

func writeRule(x *xmlw, g *group, r *sgRule) {
	x.leaf("securityGroupRuleId", r.id)
	x.leaf("groupId", g.id)
	x.leaf("groupOwnerId", ownerID)
	x.boolean("isEgress", r.egress)
	x.leaf("ipProtocol", r.proto)
	x.int("fromPort", int64(r.from))
	x.int("toPort", int64(r.to))
	x.opt("cidrIpv4", r.cidr)
	x.opt("cidrIpv6", r.cidr6)
	if r.groupID != "" {
		x.elem("referencedGroupInfo", func() {
			x.leaf("groupId", r.groupID)
			x.leaf("userId", ownerID)
		})
	}
	x.opt("description", r.desc)
	x.leaf("securityGroupRuleArn", fmt.Sprintf("arn:aws:ec2:%s:%s:security-group-rule/%s", g.region, ownerID, r.id))
}

func (s *Sim) revoke(c *call, x *xmlw, egress bool) error {
	return s.withGroup(c, func(g *group) error {
		drop := map[string]bool{} // rule ids
		if ids := c.p.list("SecurityGroupRuleId"); len(ids) > 0 {
			for _, id := range ids {
				found := false
				for _, e := range g.rules {
					if e.id == id && e.egress == egress {
						drop[id], found = true, true
					}
				}
				if !found {
					return errf("InvalidSecurityGroupRuleId.NotFound", "The security group rule ID '%s' does not exist", id)
				}
			}
		} else {
			rules, err := s.parseRules(c, g, egress)
			if err != nil {
				return err
			}
			for _, want := range rules {
				found := false
				for _, e := range g.rules {
					if e.key() == want.key() {
						drop[e.id], found = true, true
					}
				}
				if !found {
					return errf("InvalidPermission.NotFound", "The specified rule does not exist in this security group.")
				}
			}
		}
		var revoked []*sgRule
		g.rules = slices.DeleteFunc(g.rules, func(e *sgRule) bool {
			if drop[e.id] {
				revoked = append(revoked, e)
				return true
			}
			return false
		})
		x.boolean("return", true)
		x.set("revokedSecurityGroupRuleSet", len(revoked), func(i int) { writeRule(x, g, revoked[i]) })
		return nil
	})
}

// writePermissions groups one direction's rules by protocol and ports, in
// the order they were first added, as EC2 describes them.
func writePermissions(x *xmlw, name string, g *group, egress bool) {
	type perm struct{ rules []*sgRule }
	var perms []*perm
	index := map[string]*perm{}
	for _, r := range g.rules {
		if r.egress != egress {
			continue
		}
		k := fmt.Sprintf("%s|%d|%d", r.proto, r.from, r.to)
		p, ok := index[k]
		if !ok {
			p = &perm{}
			index[k] = p
			perms = append(perms, p)
		}
		p.rules = append(p.rules, r)
	}
	x.set(name, len(perms), func(i int) {
		rs := perms[i].rules
		first := rs[0]
		x.leaf("ipProtocol", first.proto)
		if first.hasPorts {
			x.int("fromPort", int64(first.from))
			x.int("toPort", int64(first.to))
		}
		pick := func(f func(*sgRule) bool) []*sgRule {
			var out []*sgRule
			for _, r := range rs {
				if f(r) {
					out = append(out, r)
				}
			}
			return out
		}
		pairs := pick(func(r *sgRule) bool { return r.groupID != "" })
		x.set("groups", len(pairs), func(j int) {
			x.opt("description", pairs[j].desc)
			x.leaf("userId", ownerID)
			x.leaf("groupId", pairs[j].groupID)
		})
		v4 := pick(func(r *sgRule) bool { return r.cidr != "" })
		x.set("ipRanges", len(v4), func(j int) {
			x.leaf("cidrIp", v4[j].cidr)
			x.opt("description", v4[j].desc)
		})
		v6 := pick(func(r *sgRule) bool { return r.cidr6 != "" })
		x.set("ipv6Ranges", len(v6), func(j int) {
			x.leaf("cidrIpv6", v6[j].cidr6)
			x.opt("description", v6[j].desc)
		})
		x.set("prefixListIds", 0, nil)
	})
}
