package ssmsim

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"
)

const (
	pingOnline         = "Online"
	pingConnectionLost = "ConnectionLost"
	agentVersion       = "3.3.1142.0"
)

// agentStatus is what the SSM agent of instance id reports now: "Online",
// "ConnectionLost" (it was online, the instance is no longer running) or ""
// (never registered: not running long enough, or a NeverOnline fault).
func (s *Sim) agentStatus(inst Instance) string {
	if s.faults.IsNeverOnline(inst.Tags, inst.LaunchIndex) {
		return ""
	}
	now := time.Now()
	s.mu.Lock()
	// Drawn once per instance, so a random latency mode cannot make an agent flap.
	b := s.bootLocked(inst)
	s.mu.Unlock()
	if b.online.IsZero() || now.Before(b.online) {
		return ""
	}
	switch inst.State {
	case "running":
		if _, stopped := s.faults.AgentStopped(inst.ID); stopped {
			return pingConnectionLost
		}
		return pingOnline
	case "pending":
		return ""
	default: // stopping, stopped, shutting-down, terminated
		return pingConnectionLost
	}
}

// online reports whether SendCommand may target the instance, and ensures its host.
func (s *Sim) online(id string) (Instance, bool) {
	inst, ok := s.instance(id)
	if !ok || s.agentStatus(inst) != pingOnline {
		return inst, false
	}
	s.mu.Lock()
	_, err := s.ensureHostLocked(inst)
	s.mu.Unlock()
	return inst, err == nil
}

type instanceInformationFilter struct {
	Key      string   `json:"key"`
	ValueSet []string `json:"valueSet"`
}

type instanceInformationStringFilter struct {
	Key    string
	Values []string
}

type describeInstanceInformationInput struct {
	InstanceInformationFilterList []instanceInformationFilter
	Filters                       []instanceInformationStringFilter
	MaxResults                    *int
	NextToken                     string
}

type instanceInformation struct {
	InstanceId       string
	PingStatus       string
	LastPingDateTime *json.Number `json:",omitempty"`
	AgentVersion     string
	IsLatestVersion  bool
	PlatformType     string
	PlatformName     string
	PlatformVersion  string
	ResourceType     string
	IPAddress        string `json:",omitempty"`
	ComputerName     string
	IamRole          string `json:",omitempty"`
	SourceId         string
	SourceType       string
}

func (s *Sim) describeInstanceInformation(r *http.Request) (any, error) {
	var in describeInstanceInformationInput
	if err := decodeBody(r, &in); err != nil {
		return nil, err
	}
	// Without MaxResults a page holds 10 (SSM API Reference,
	// DescribeInstanceInformation: "MaxResults ... Valid Range: Minimum value
	// of 5. Maximum value of 50", and the aws-sdk-go-v2 doc comment "the
	// default value is 10 items"): a caller that reads one page sees at most
	// 10 nodes.
	max, err := pageSize(in.MaxResults, 5, 50)
	if err != nil {
		return nil, err
	}
	if in.MaxResults == nil {
		max = 10
	}
	if len(in.InstanceInformationFilterList) > 0 && len(in.Filters) > 0 {
		return nil, badRequest("InvalidFilter", "You can specify InstanceInformationFilterList or Filters, not both.")
	}
	// Normalise both filter forms to key -> values.
	filters := map[string][]string{}
	for _, f := range in.InstanceInformationFilterList {
		if len(f.ValueSet) == 0 {
			return nil, badRequest("InvalidInstanceInformationFilterValue", "The filter value set for %s is empty.", f.Key)
		}
		filters[f.Key] = append(filters[f.Key], f.ValueSet...)
	}
	for _, f := range in.Filters {
		if len(f.Values) == 0 {
			return nil, badRequest("InvalidInstanceInformationFilterValue", "The filter value set for %s is empty.", f.Key)
		}
		filters[f.Key] = append(filters[f.Key], f.Values...)
	}
	for k := range filters {
		switch {
		case k == "InstanceIds", k == "PingStatus", k == "PlatformTypes", k == "ResourceType", k == "AgentVersion", k == "IamRole":
		case strings.HasPrefix(k, "tag:"), k == "tag-key":
		default:
			return nil, badRequest("InvalidFilterKey", "The filter key %s isn't valid.", k)
		}
	}

	ids := filters["InstanceIds"]
	if len(ids) == 0 {
		if l, ok := s.cfg.Instances.(InstanceLister); ok {
			ids = l.InstanceIDs()
		} else {
			s.mu.Lock()
			for id := range s.agent {
				ids = append(ids, id)
			}
			s.mu.Unlock()
		}
	}
	ids = dedupe(ids)
	sort.Strings(ids)

	var list []instanceInformation
	for _, id := range ids {
		inst, ok := s.instance(id)
		if !ok {
			continue
		}
		ping := s.agentStatus(inst)
		if ping == "" {
			continue // not registered with SSM (yet): absent, as on AWS
		}
		if ping == pingOnline {
			s.mu.Lock()
			_, _ = s.ensureHostLocked(inst)
			s.mu.Unlock()
		}
		info := instanceInformation{
			InstanceId: id, PingStatus: ping, AgentVersion: agentVersion,
			PlatformType: "Linux", PlatformName: "Ubuntu", PlatformVersion: "24.04",
			ResourceType: "EC2Instance", IPAddress: inst.PrivateIP, ComputerName: hostnameFor(inst.PrivateIP, id),
			IamRole: roleName(inst.IamInstanceProfileArn), SourceId: id, SourceType: "AWS::EC2::Instance",
		}
		switch ping {
		case pingOnline:
			info.LastPingDateTime = epoch(time.Now())
		case pingConnectionLost:
			// The last ping before the agent stopped or its host went down.
			info.LastPingDateTime = epoch(s.lastPing(id))
		}
		if !matchInfo(info, inst, filters) {
			continue
		}
		list = append(list, info)
	}

	off, err := pageOffset("dii", in.NextToken)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	if off > len(list) {
		off = len(list)
	}
	end := min(off+max, len(list))
	page := list[off:end]
	if page == nil {
		page = []instanceInformation{}
	}
	out["InstanceInformationList"] = page
	if end < len(list) {
		out["NextToken"] = pageToken("dii", end)
	}
	return out, nil
}

func matchInfo(info instanceInformation, inst Instance, filters map[string][]string) bool {
	for k, vals := range filters {
		var got []string
		switch {
		case k == "InstanceIds":
			continue // already applied
		case k == "PingStatus":
			got = []string{info.PingStatus}
		case k == "PlatformTypes":
			got = []string{info.PlatformType}
		case k == "ResourceType":
			got = []string{info.ResourceType}
		case k == "AgentVersion":
			got = []string{info.AgentVersion}
		case k == "IamRole":
			got = []string{info.IamRole}
		case k == "tag-key":
			for tk := range inst.Tags {
				got = append(got, tk)
			}
		case strings.HasPrefix(k, "tag:"):
			if v, ok := inst.Tags[strings.TrimPrefix(k, "tag:")]; ok {
				got = []string{v}
			}
		}
		if !anyIn(got, vals) {
			return false
		}
	}
	return true
}

func anyIn(got, want []string) bool {
	for _, g := range got {
		for _, w := range want {
			if g == w {
				return true
			}
		}
	}
	return false
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range in {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// roleName is the IMDS role name for an instance profile: the simulator knows
// only the profile, so the role is taken to carry the profile's name.
func roleName(profileArn string) string {
	if profileArn == "" {
		return ""
	}
	i := strings.LastIndex(profileArn, "/")
	return profileArn[i+1:]
}

// lastPing is when a ConnectionLost agent last reported: when it was
// stopped, or when its host went down.
func (s *Sim) lastPing(id string) time.Time {
	if at, ok := s.faults.AgentStopped(id); ok {
		return at
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.hosts[id]; h != nil && !h.downAt.IsZero() {
		return h.downAt
	}
	return time.Now()
}
