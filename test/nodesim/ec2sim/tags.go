package ec2sim

import (
	"strings"
)

const maxTags = 50

// parseTags reads name.N.Key / name.N.Value, checked as EC2 checks them.
func parseTags(p params, name string) (map[string]string, error) {
	out := map[string]string{}
	for _, t := range p.structs(name) {
		k, v := t.get("Key"), t.get("Value")
		if err := checkTag(k, v); err != nil {
			return nil, err
		}
		if _, dup := out[k]; dup {
			return nil, errf("InvalidParameterValue", "Duplicate tag key '%s' specified.", k)
		}
		out[k] = v
	}
	if len(out) > maxTags {
		return nil, errf("TagLimitExceeded", "The maximum number of tags per resource (%d) has been exceeded.", maxTags)
	}
	return out, nil
}

func checkTag(k, v string) error {
	switch {
	case k == "":
		return errf("InvalidParameterValue", "Tag key must not be empty.")
	case len(k) > 128:
		return errf("InvalidParameterValue", "Tag key exceeds the maximum length of 128 characters.")
	case len(v) > 256:
		return errf("InvalidParameterValue", "Tag value exceeds the maximum length of 256 characters.")
	case strings.HasPrefix(strings.ToLower(k), "aws:"):
		return errf("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use")
	}
	return nil
}

// tagsOf finds a taggable resource by id in a region and returns its tag map,
// or the NotFound error EC2 gives for that kind of resource. Callers hold s.mu.
func (s *Sim) tagsOf(region, id string) (*map[string]string, error) {
	prefix, _, _ := strings.Cut(id, "-")
	switch prefix {
	case "i":
		if in, ok := s.instances[id]; ok && in.Region == region {
			return &in.Tags, nil
		}
		return nil, errf("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
	case "vol":
		if v, ok := s.volumes[id]; ok && v.region == region {
			return &v.Tags, nil
		}
		return nil, errf("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
	case "sg":
		if g, ok := s.groups[id]; ok && g.region == region {
			return &g.tags, nil
		}
		return nil, errf("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
	case "vpc":
		if v, ok := s.vpcs[id]; ok && v.region == region {
			return &v.tags, nil
		}
		return nil, errf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
	case "subnet":
		if sn, ok := s.subnets[id]; ok && sn.region == region {
			return &sn.tags, nil
		}
		return nil, errf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
	case "rtb":
		if rt, ok := s.rtbs[id]; ok && rt.region == region {
			return &rt.tags, nil
		}
		return nil, errf("InvalidRouteTableID.NotFound", "The routeTable ID '%s' does not exist", id)
	case "igw":
		if g, ok := s.igws[id]; ok && g.region == region {
			return &g.tags, nil
		}
		return nil, errf("InvalidInternetGatewayID.NotFound", "The internetGateway ID '%s' does not exist", id)
	}
	return nil, errf("InvalidID", "The ID '%s' is not valid", id)
}

// resolveTagged checks every resource first, so a bad id changes nothing.
func (s *Sim) resolveTagged(c *call) ([]*map[string]string, error) {
	ids := c.p.list("ResourceId")
	if len(ids) == 0 {
		return nil, missing("ResourceId")
	}
	var out []*map[string]string
	for _, id := range ids {
		m, err := s.tagsOf(c.region, id)
		if err != nil {
			return nil, err
		}
		if *m == nil {
			*m = map[string]string{}
		}
		out = append(out, m)
	}
	return out, nil
}

func (s *Sim) createTags(c *call, x *xmlw) error {
	tags, err := parseTags(c.p, "Tag")
	if err != nil {
		return err
	}
	if len(tags) == 0 {
		return missing("Tag")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensureRegion(c.region)
	targets, err := s.resolveTagged(c)
	if err != nil {
		return err
	}
	for _, m := range targets {
		n := len(*m)
		for k := range tags {
			if _, ok := (*m)[k]; !ok {
				n++
			}
		}
		if n > maxTags {
			return errf("TagLimitExceeded", "The maximum number of tags per resource (%d) has been exceeded.", maxTags)
		}
	}
	for _, m := range targets {
		for k, v := range tags {
			(*m)[k] = v
		}
	}
	x.boolean("return", true)
	return nil
}

// deleteTags removes the named keys (only where the value matches, when a
// value is given), or every tag when no Tag.N is given, as EC2 does.
func (s *Sim) deleteTags(c *call, x *xmlw) error {
	type del struct {
		key, value string
		hasValue   bool
	}
	var dels []del
	for _, t := range c.p.structs("Tag") {
		if t.get("Key") == "" {
			return errf("InvalidParameterValue", "Tag key must not be empty.")
		}
		dels = append(dels, del{t.get("Key"), t.get("Value"), t.has("Value")})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensureRegion(c.region)
	targets, err := s.resolveTagged(c)
	if err != nil {
		return err
	}
	for _, m := range targets {
		if len(dels) == 0 {
			clear(*m)
			continue
		}
		for _, d := range dels {
			if v, ok := (*m)[d.key]; ok && (!d.hasValue || v == d.value) {
				delete(*m, d.key)
			}
		}
	}
	x.boolean("return", true)
	return nil
}
