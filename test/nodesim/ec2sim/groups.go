package ec2sim

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// group is a simulated security group. Its rules are kept one source each,
// as EC2's security group rules (sgr-...) are, and grouped into permissions
// by protocol and ports when described.
type group struct {
	id, region, name, desc, vpcID string
	isDefault                     bool
	tags                          map[string]string
	rules                         []*sgRule
}

func (g *group) arn() string {
	return fmt.Sprintf("arn:aws:ec2:%s:%s:security-group/%s", g.region, ownerID, g.id)
}

// newDefaultGroup makes a VPC's "default" group: all traffic from itself,
// all traffic out. Callers hold s.mu.
func (s *Sim) newDefaultGroup(v *vpc) *group {
	g := &group{id: s.newID("sg"), region: v.region, name: "default", desc: "default VPC security group",
		vpcID: v.id, isDefault: true, tags: map[string]string{}}
	g.rules = []*sgRule{
		{id: s.newID("sgr"), proto: "-1", from: -1, to: -1, groupID: g.id},
		{id: s.newID("sgr"), egress: true, proto: "-1", from: -1, to: -1, cidr: "0.0.0.0/0"},
	}
	s.groups[g.id] = g
	return g
}

func (s *Sim) groupByName(vpcID, name string) *group {
	for _, g := range s.groups {
		if g.vpcID == vpcID && g.name == name {
			return g
		}
	}
	return nil
}

func (g *group) snapshot() SecurityGroup {
	out := SecurityGroup{ID: g.id, Region: g.region, Name: g.name, Description: g.desc, VpcID: g.vpcID, Tags: maps.Clone(g.tags)}
	if out.Tags == nil {
		out.Tags = map[string]string{}
	}
	for _, egress := range []bool{false, true} {
		var rules []Rule
		index := map[string]int{}
		for _, r := range g.rules {
			if r.egress != egress {
				continue
			}
			k := fmt.Sprintf("%s|%d|%d|%s", r.proto, r.from, r.to, r.desc)
			i, ok := index[k]
			if !ok {
				i = len(rules)
				index[k] = i
				rules = append(rules, Rule{Protocol: r.proto, FromPort: r.from, ToPort: r.to, Description: r.desc})
			}
			switch {
			case r.cidr != "":
				rules[i].CIDRs = append(rules[i].CIDRs, r.cidr)
			case r.cidr6 != "":
				rules[i].IPv6CIDRs = append(rules[i].IPv6CIDRs, r.cidr6)
			default:
				rules[i].GroupIDs = append(rules[i].GroupIDs, r.groupID)
			}
		}
		if egress {
			out.Egress = rules
		} else {
			out.Ingress = rules
		}
	}
	return out
}

var reGroupName = regexp.MustCompile(`^[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]*$`)

func (s *Sim) createSecurityGroup(c *call, x *xmlw) error {
	name, desc := c.p.get("GroupName"), c.p.get("GroupDescription")
	switch {
	case name == "":
		return missing("GroupName")
	case desc == "":
		return missing("GroupDescription")
	case len(name) > 255:
		return errf("InvalidParameterValue", "Value (%s) for parameter GroupName is invalid. Length exceeds maximum of 255.", name)
	case strings.HasPrefix(strings.ToLower(name), "sg-"):
		return errf("InvalidParameterValue", "Group names may not be in the format sg-*.")
	case len(desc) > 255 || !reGroupName.MatchString(desc):
		return errf("InvalidParameterValue", "Value (%s) for parameter GroupDescription is invalid. Character sets beyond ASCII are not supported.", desc)
	}
	tags := map[string]string{}
	for _, ts := range c.p.structs("TagSpecification") {
		if rt := ts.get("ResourceType"); rt != "security-group" {
			return errf("InvalidParameterValue", "'%s' is not a valid taggable resource type for this operation.", rt)
		}
		t, err := parseTags(ts, "Tag")
		if err != nil {
			return err
		}
		maps.Copy(tags, t)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.ensureRegion(c.region)
	vpcID := c.p.get("VpcId")
	if vpcID == "" {
		vpcID = r.defaultVPC
	}
	if v, ok := s.vpcs[vpcID]; !ok || v.region != c.region {
		if !reVpcID.MatchString(vpcID) {
			return errf("InvalidVpcID.Malformed", "Invalid id: \"%s\"", vpcID)
		}
		return errf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", vpcID)
	}
	if s.groupByName(vpcID, name) != nil {
		return errf("InvalidGroup.Duplicate", "The security group '%s' already exists for VPC '%s'", name, vpcID)
	}
	g := &group{id: s.newID("sg"), region: c.region, name: name, desc: desc, vpcID: vpcID, tags: tags}
	// A new group may send anything anywhere until told otherwise, as on AWS.
	g.rules = []*sgRule{{id: s.newID("sgr"), egress: true, proto: "-1", from: -1, to: -1, cidr: "0.0.0.0/0"}}
	s.groups[g.id] = g
	x.boolean("return", true)
	x.leaf("groupId", g.id)
	x.leaf("securityGroupArn", g.arn())
	x.tags(g.tags, true)
	return nil
}

// findGroup resolves GroupId, or GroupName in the default VPC. Callers hold s.mu.
func (s *Sim) findGroup(c *call, r *regionState) (*group, error) {
	if id := c.p.get("GroupId"); id != "" {
		return s.groupByID(c.region, id)
	}
	if name := c.p.get("GroupName"); name != "" {
		g := s.groupByName(r.defaultVPC, name)
		if g == nil {
			return nil, errf("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC '%s'", name, r.defaultVPC)
		}
		return g, nil
	}
	return nil, errf("MissingParameter", "The request must contain the parameter groupName or groupId")
}

func (s *Sim) groupByID(region, id string) (*group, error) {
	if !reGroupID.MatchString(id) {
		return nil, errf("InvalidGroupId.Malformed", "Invalid id: \"%s\" (expecting \"sg-...\")", id)
	}
	g, ok := s.groups[id]
	if !ok || g.region != region {
		return nil, errf("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
	}
	return g, nil
}

var groupFields = fields[*group]{
	"group-id":    func(g *group) []string { return []string{g.id} },
	"group-name":  func(g *group) []string { return []string{g.name} },
	"vpc-id":      func(g *group) []string { return []string{g.vpcID} },
	"description": func(g *group) []string { return []string{g.desc} },
	"owner-id":    func(*group) []string { return []string{ownerID} },
	"ip-permission.group-id": func(g *group) []string {
		return ruleValues(g, false, func(r *sgRule) string { return r.groupID })
	},
	"ip-permission.cidr": func(g *group) []string {
		return ruleValues(g, false, func(r *sgRule) string { return r.cidr })
	},
	"ip-permission.from-port": func(g *group) []string {
		return ruleValues(g, false, func(r *sgRule) string { return strconv.Itoa(int(r.from)) })
	},
	"egress.ip-permission.cidr": func(g *group) []string {
		return ruleValues(g, true, func(r *sgRule) string { return r.cidr })
	},
}

func ruleValues(g *group, egress bool, f func(*sgRule) string) []string {
	var out []string
	for _, r := range g.rules {
		if r.egress == egress {
			if v := f(r); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

func (s *Sim) describeSecurityGroups(c *call, x *xmlw) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.ensureRegion(c.region)
	ids, names := c.p.list("GroupId"), c.p.list("GroupName")
	if err := noMaxWithIDs(c.p, append(slices.Clone(ids), names...), "groupIds"); err != nil {
		return err
	}
	var items []*group
	for _, id := range ids {
		g, err := s.groupByID(c.region, id)
		if err != nil {
			return err
		}
		items = append(items, g)
	}
	for _, name := range names {
		g := s.groupByName(r.defaultVPC, name)
		if g == nil {
			return errf("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC '%s'", name, r.defaultVPC)
		}
		items = append(items, g)
	}
	if len(ids) == 0 && len(names) == 0 {
		for _, g := range s.groups {
			if g.region == c.region {
				items = append(items, g)
			}
		}
	}
	items, next, err := listing[*group]{fields: groupFields, tags: func(g *group) map[string]string { return g.tags },
		key: func(g *group) string { return g.id }, minMax: 5, maxMax: 1000}.apply(c, items)
	if err != nil {
		return err
	}
	x.set("securityGroupInfo", len(items), func(i int) {
		g := items[i]
		x.leaf("ownerId", ownerID)
		x.leaf("groupId", g.id)
		x.leaf("groupName", g.name)
		x.leaf("groupDescription", g.desc)
		x.leaf("vpcId", g.vpcID)
		x.leaf("securityGroupArn", g.arn())
		writePermissions(x, "ipPermissions", g, false)
		writePermissions(x, "ipPermissionsEgress", g, true)
		x.tags(g.tags, true)
	})
	x.opt("nextToken", next)
	return nil
}

func (s *Sim) deleteSecurityGroup(c *call, x *xmlw) error {
	return s.withGroup(c, func(g *group) error {
		if g.isDefault {
			return errf("CannotDelete", "the specified group: \"%s\" name: \"default\" cannot be deleted by a user", g.id)
		}
		for _, in := range s.instances {
			if in.State != StateTerminated && slices.Contains(in.SecurityGroupIDs, g.id) {
				return errf("DependencyViolation", "resource %s has a dependent object", g.id)
			}
		}
		for _, o := range s.groups {
			if o == g {
				continue
			}
			for _, rule := range o.rules {
				if rule.groupID == g.id {
					return errf("DependencyViolation", "resource %s has a dependent object", g.id)
				}
			}
		}
		delete(s.groups, g.id)
		x.boolean("return", true)
		x.leaf("groupId", g.id)
		return nil
	})
}

// withGroup runs fn under the lock on the group the call names.
func (s *Sim) withGroup(c *call, fn func(g *group) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.findGroup(c, s.ensureRegion(c.region))
	if err != nil {
		return err
	}
	return fn(g)
}
