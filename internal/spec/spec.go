// Package spec parses, defaults and validates a MEC spec (DESIGN section 3),
// without calling AWS: internal/resolve checks what depends on the region.
//
// The same rules serve the API and console-started executions, so a spec is
// accepted or refused the same way whichever door it came through.
package spec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Spec is the MEC spec: the API body and the provision state machine input.
// Zero values mean "use the default" (see ApplyDefaults).
type Spec struct {
	Name            string `json:"name"`
	Region          string `json:"region,omitempty"`
	NodeCount       int    `json:"nodeCount,omitempty"`
	InstanceType    string `json:"instanceType,omitempty"`
	AmiID           string `json:"amiId,omitempty"`
	VpcID           string `json:"vpcId,omitempty"`
	SubnetID        string `json:"subnetId,omitempty"`
	Microk8sChannel string `json:"microk8sChannel,omitempty"`
	// Addons has no omitempty: an explicit [] (no addons at all) must survive
	// a JSON round trip instead of turning back into DefaultAddons.
	Addons         []string          `json:"addons"`
	APIAccessCIDRs []string          `json:"apiAccessCidrs,omitempty"`
	NodePortCIDRs  []string          `json:"nodePortCidrs,omitempty"`
	PublicEndpoint bool              `json:"publicEndpoint,omitempty"`
	HAControlPlane *bool             `json:"haControlPlane,omitempty"`
	RootVolumeGiB  int               `json:"rootVolumeGiB,omitempty"`
	TTL            string            `json:"ttl,omitempty"`
	ExpiresAt      *time.Time        `json:"expiresAt,omitempty"`
	Tags           map[string]string `json:"tags,omitempty"`
}

// Defaults carries what the rules need from the environment.
type Defaults struct {
	Region  string           // the stack's region, used when the spec names none
	Now     func() time.Time // clock for ttl/expiresAt; nil means time.Now
	Regions []string         // regions this stack serves; empty means any valid region name
}

func (d Defaults) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Defaults for optional fields. The MicroK8s channel is pinned here and only here.
const (
	DefaultChannel       = "1.35/stable"
	DefaultInstanceType  = "t4g.medium"
	DefaultNodeCount     = 3
	DefaultRootVolumeGiB = 30
)

// DefaultAddons is used when the spec has no addons field; an explicit [] means none.
var DefaultAddons = []string{"dns"}

// AllowedAddons lists the MicroK8s addons mecd enables; others are refused
// because they are untested on the node scripts' path.
var AllowedAddons = []string{"dns", "hostpath-storage", "ingress", "metrics-server", "cert-manager", "observability", "rbac", "edgex"}

// Bounds. Exported so the API documentation and tests quote the same numbers.
const (
	MinNodeCount     = 1
	MaxNodeCount     = 20
	MaxNameLen       = 40
	MinRootVolumeGiB = 20
	MaxRootVolumeGiB = 500
	MinLifetime      = 10 * time.Minute
	MaxLifetime      = 90 * 24 * time.Hour
	// MaxCIDRs keeps both lists plus the intra-cluster rule well under the
	// security group's default quota of 60 inbound rules.
	MaxCIDRs = 20
	// MaxTags leaves room under AWS's 50 tags per resource for mecd's own tags.
	MaxTags      = 40
	MaxTagKeyLen = 128
	MaxTagValLen = 256
	// haMinNodes is what dqlite needs for a fault-tolerant control plane.
	haMinNodes = 3
)

// Role is a node's part in the cluster.
type Role string

// Node roles.
const (
	RoleControlPlane Role = "control-plane"
	RoleWorker       Role = "worker"
)

// ControlPlaneCount is 3 (dqlite HA) when there are at least 3 nodes and HA
// is not disabled, else 1: node 0 is always a control-plane node.
func (s Spec) ControlPlaneCount() int {
	if s.NodeCount <= 0 {
		return 0
	}
	if s.NodeCount >= haMinNodes && (s.HAControlPlane == nil || *s.HAControlPlane) {
		return haMinNodes
	}
	return 1
}

// Roles returns the role of node i at index i.
func (s Spec) Roles() []Role {
	if s.NodeCount <= 0 {
		return nil
	}
	cp := s.ControlPlaneCount()
	roles := make([]Role, s.NodeCount)
	for i := range roles {
		if i < cp {
			roles[i] = RoleControlPlane
		} else {
			roles[i] = RoleWorker
		}
	}
	return roles
}

// ValidationError reports every invalid field at once, keyed by JSON name
// ("nodeCount", "tags.owner", "apiAccessCidrs[1]"), each message saying what
// would be valid. Errors about the body as a whole use the key "body".
type ValidationError struct {
	Fields map[string]string `json:"fields"`
}

// BodyField is the ValidationError key for problems with the body as a whole
// (empty, not JSON, not one object).
const BodyField = "body"

func (e *ValidationError) Error() string {
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("invalid spec")
	for i, k := range keys {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(k)
		b.WriteString(": ")
		b.WriteString(e.Fields[k])
	}
	return b.String()
}

// Add records what is wrong with field, keeping the first message for a
// field: a decoding error is more precise than the rule failure its zero
// value would cause.
func (e *ValidationError) Add(field, msg string) {
	if e.Fields == nil {
		e.Fields = map[string]string{}
	}
	if _, ok := e.Fields[field]; !ok {
		e.Fields[field] = msg
	}
}

// Err is e, or nil when no field was added.
func (e *ValidationError) Err() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

// Messages, shared by type errors and rule errors so both say what is valid.
var (
	msgName         = fmt.Sprintf("must be a DNS-1123 label: 1-%d lowercase letters, digits or '-', starting and ending with a letter or digit", MaxNameLen)
	msgRegion       = `must be an AWS region name such as "eu-west-1"`
	msgNodeCount    = fmt.Sprintf("must be %d-%d", MinNodeCount, MaxNodeCount)
	msgInstanceType = `must be an EC2 instance type "family.size" such as "t4g.medium" or "m7g.xlarge"`
	msgAmiID        = `must be an AMI id: "ami-" and 8 or 17 lowercase hex digits`
	msgVpcID        = `must be a VPC id: "vpc-" and 8 or 17 lowercase hex digits`
	msgSubnetID     = `must be a subnet id: "subnet-" and 8 or 17 lowercase hex digits`
	msgChannel      = `must be a MicroK8s snap channel "<major>.<minor>", optionally with "/stable", "/candidate", "/beta" or "/edge", such as "` + DefaultChannel + `"`
	msgAddon        = "must be one of: " + strings.Join(AllowedAddons, ", ")
	msgCIDR         = `must be an IPv4 CIDR such as "203.0.113.0/24"`
	msgBool         = "must be true or false"
	msgRootVolume   = fmt.Sprintf("must be %d-%d (GiB)", MinRootVolumeGiB, MaxRootVolumeGiB)
	msgTTL          = `must be a Go duration between 10m and 2160h (90 days), such as "8h" or "168h" (units: s, m, h)`
	msgExpiresAt    = `must be an RFC 3339 time such as "2030-01-02T15:04:05Z", at least 10 minutes and at most 90 days in the future`
	msgTagKey       = fmt.Sprintf("tag keys must be 1-%d characters: letters, digits, spaces and _ . : / = + - @, not starting with \"aws:\" or \"mecd:\" (reserved)", MaxTagKeyLen)
	msgTagValue     = fmt.Sprintf("must be a string of 0-%d characters: letters, digits, spaces and _ . : / = + - @", MaxTagValLen)
)

var (
	reName         = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	reRegion       = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$`)
	reInstanceType = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*\.[a-z0-9]+(-[a-z0-9]+)*$`)
	reAmiID        = regexp.MustCompile(`^ami-[0-9a-f]{8}([0-9a-f]{9})?$`)
	reVpcID        = regexp.MustCompile(`^vpc-[0-9a-f]{8}([0-9a-f]{9})?$`)
	reSubnetID     = regexp.MustCompile(`^subnet-[0-9a-f]{8}([0-9a-f]{9})?$`)
	reChannel      = regexp.MustCompile(`^[0-9]+\.[0-9]+(/(stable|candidate|beta|edge))?$`)
	// reTag is the character set AWS accepts for tags on every service.
	reTag = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
)

// jsonFields lists the accepted JSON keys in document order, for messages.
var jsonFields = []string{"name", "region", "nodeCount", "instanceType", "amiId", "vpcId", "subnetId", "microk8sChannel", "addons", "apiAccessCidrs", "nodePortCidrs", "publicEndpoint", "haControlPlane", "rootVolumeGiB", "ttl", "expiresAt", "tags"}

// Parse reads one JSON object strictly (unknown or repeated fields, wrong
// types, trailing data and an empty body are errors), applies defaults and
// validates. A ttl is resolved into ExpiresAt (TTL is kept). Every problem is
// reported at once in a *ValidationError.
func Parse(data []byte, d Defaults) (Spec, error) {
	verr := &ValidationError{}
	var s Spec
	keys, vals, err := decodeObject(data)
	if err != nil {
		verr.Add(BodyField, err.Error())
		return Spec{}, verr
	}
	for _, k := range keys {
		if vals[k] == nil {
			verr.Add(k, "appears more than once; give each field once")
			continue
		}
		decodeField(&s, k, vals[k], verr)
	}
	// An explicit 0 is a request for zero, not for the default; refuse it
	// rather than silently replacing it.
	if isZeroNumber(vals["nodeCount"]) {
		verr.Add("nodeCount", msgNodeCount)
	}
	if isZeroNumber(vals["rootVolumeGiB"]) {
		verr.Add("rootVolumeGiB", msgRootVolume)
	}
	if isSet(vals["ttl"]) && isSet(vals["expiresAt"]) {
		verr.Add("ttl", "set either ttl or expiresAt, not both")
		verr.Add("expiresAt", "set either ttl or expiresAt, not both")
	}
	s.ApplyDefaults(d)
	var vv *ValidationError
	if err := s.Validate(d); errors.As(err, &vv) {
		for k, m := range vv.Fields {
			verr.Add(k, m)
		}
	}
	if err := verr.Err(); err != nil {
		return Spec{}, err
	}
	if s.TTL != "" {
		ttl, _ := time.ParseDuration(s.TTL) // validated above
		at := d.now().Add(ttl).UTC().Truncate(time.Second)
		s.ExpiresAt = &at
	}
	return s, nil
}

// decodeObject returns the top-level keys in order and their raw values; a
// repeated key maps to nil so the caller can report it.
func decodeObject(data []byte) ([]string, map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, errors.New(`is empty; send one JSON object such as {"name": "edge-1"}`)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, fmt.Errorf("must be one JSON object: %s", jsonMsg(err))
	}
	if tok != json.Delim('{') {
		return nil, nil, fmt.Errorf("must be one JSON object, not %s", jsonKind(tok))
	}
	var keys []string
	vals := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("must be one JSON object: %s", jsonMsg(err))
		}
		k, _ := tok.(string) // object keys are always strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, fmt.Errorf("must be one JSON object: %s", jsonMsg(err))
		}
		if _, dup := vals[k]; dup {
			vals[k] = nil
			continue
		}
		keys = append(keys, k)
		vals[k] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, fmt.Errorf("must be one JSON object: %s", jsonMsg(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fmt.Errorf("must be exactly one JSON object; unexpected data after it at byte %d", dec.InputOffset())
	}
	return keys, vals, nil
}

func jsonMsg(err error) string {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(tok json.Token) string {
	switch tok.(type) {
	case json.Delim:
		return "an array"
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	default:
		return "null"
	}
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// isSet says whether a field was given a non-null, non-empty value.
func isSet(raw json.RawMessage) bool {
	return raw != nil && !isNull(raw) && string(raw) != `""`
}

func isZeroNumber(raw json.RawMessage) bool {
	var n json.Number
	if raw == nil || json.Unmarshal(raw, &n) != nil {
		return false
	}
	f, err := n.Float64()
	return err == nil && f == 0
}

// decodeField decodes one known field, or reports an unknown one. null is the
// same as leaving the field out.
func decodeField(s *Spec, key string, raw json.RawMessage, verr *ValidationError) {
	str := func(dst *string, msg string) {
		if !isNull(raw) && json.Unmarshal(raw, dst) != nil {
			verr.Add(key, msg)
		}
	}
	num := func(dst *int, msg string) {
		if !isNull(raw) && json.Unmarshal(raw, dst) != nil {
			verr.Add(key, "must be a whole number, "+strings.TrimPrefix(msg, "must be "))
		}
	}
	switch key {
	case "name":
		str(&s.Name, msgName)
	case "region":
		str(&s.Region, msgRegion)
	case "nodeCount":
		num(&s.NodeCount, msgNodeCount)
	case "instanceType":
		str(&s.InstanceType, msgInstanceType)
	case "amiId":
		str(&s.AmiID, msgAmiID)
	case "vpcId":
		str(&s.VpcID, msgVpcID)
	case "subnetId":
		str(&s.SubnetID, msgSubnetID)
	case "microk8sChannel":
		str(&s.Microk8sChannel, msgChannel)
	case "addons":
		s.Addons = decodeStrings(key, raw, "must be a list of addon names; each "+msgAddon, msgAddon, verr)
	case "apiAccessCidrs":
		s.APIAccessCIDRs = decodeStrings(key, raw, "must be a list of IPv4 CIDRs such as [\"203.0.113.0/24\"]", msgCIDR, verr)
	case "nodePortCidrs":
		s.NodePortCIDRs = decodeStrings(key, raw, "must be a list of IPv4 CIDRs such as [\"203.0.113.0/24\"]", msgCIDR, verr)
	case "publicEndpoint":
		if !isNull(raw) && json.Unmarshal(raw, &s.PublicEndpoint) != nil {
			verr.Add(key, msgBool)
		}
	case "haControlPlane":
		var b *bool
		if json.Unmarshal(raw, &b) != nil {
			verr.Add(key, msgBool)
		}
		s.HAControlPlane = b
	case "rootVolumeGiB":
		num(&s.RootVolumeGiB, msgRootVolume)
	case "ttl":
		str(&s.TTL, msgTTL)
	case "expiresAt":
		var v string
		if isNull(raw) {
			return
		}
		if json.Unmarshal(raw, &v) != nil {
			verr.Add(key, msgExpiresAt)
			return
		}
		if v == "" {
			return
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			verr.Add(key, msgExpiresAt)
			return
		}
		t = t.UTC()
		s.ExpiresAt = &t
	case "tags":
		s.Tags = decodeTags(raw, verr)
	default:
		msg := "unknown field; valid fields are " + strings.Join(jsonFields, ", ")
		for _, f := range jsonFields {
			if strings.EqualFold(f, key) {
				msg = fmt.Sprintf("unknown field; did you mean %q? (field names are case-sensitive)", f)
			}
		}
		verr.Add(key, msg)
	}
}

// decodeStrings decodes a list of strings, reporting a bad element by index.
// A bad element is kept as "" so later indexes still line up.
func decodeStrings(key string, raw json.RawMessage, listMsg, elemMsg string, verr *ValidationError) []string {
	if isNull(raw) {
		return nil
	}
	var elems []json.RawMessage
	if json.Unmarshal(raw, &elems) != nil {
		verr.Add(key, listMsg)
		return nil
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		if isNull(e) || json.Unmarshal(e, &out[i]) != nil {
			verr.Add(fmt.Sprintf("%s[%d]", key, i), "must be a string; "+elemMsg)
		}
	}
	return out
}

func decodeTags(raw json.RawMessage, verr *ValidationError) map[string]string {
	if isNull(raw) {
		return nil
	}
	keys, vals, err := decodeObject(raw)
	if err != nil {
		verr.Add("tags", "must be an object of tag keys to string values")
		return nil
	}
	tags := make(map[string]string, len(keys))
	for _, k := range keys {
		if vals[k] == nil {
			verr.Add("tags."+k, "appears more than once; give each tag once")
			continue
		}
		var v string
		if isNull(vals[k]) || json.Unmarshal(vals[k], &v) != nil {
			verr.Add("tags."+k, msgTagValue)
		}
		tags[k] = v
	}
	return tags
}

// ApplyDefaults fills every unset field that has a default (DESIGN section 3).
// HAControlPlane is made explicit so records say what was built.
func (s *Spec) ApplyDefaults(d Defaults) {
	if s.Region == "" {
		s.Region = d.Region
	}
	if s.NodeCount == 0 {
		s.NodeCount = DefaultNodeCount
	}
	if s.InstanceType == "" {
		s.InstanceType = DefaultInstanceType
	}
	if s.Microk8sChannel == "" {
		s.Microk8sChannel = DefaultChannel
	}
	if s.Addons == nil {
		s.Addons = slices.Clone(DefaultAddons)
	}
	if s.RootVolumeGiB == 0 {
		s.RootVolumeGiB = DefaultRootVolumeGiB
	}
	if s.HAControlPlane == nil {
		ha := s.NodeCount >= haMinNodes
		s.HAControlPlane = &ha
	}
}

// Validate checks every rule and reports all failures in one
// *ValidationError. It expects defaults applied. With both TTL and ExpiresAt
// set it takes ExpiresAt as resolved from TTL (as Parse leaves a spec) and
// checks TTL only; Parse refuses input that sets both.
func (s Spec) Validate(d Defaults) error {
	verr := &ValidationError{}

	switch {
	case s.Name == "":
		verr.Add("name", "is required; "+msgName)
	case len(s.Name) > MaxNameLen || !reName.MatchString(s.Name):
		verr.Add("name", msgName)
	}

	switch {
	case s.Region == "":
		verr.Add("region", "is required (the stack has no default region); "+msgRegion)
	case !reRegion.MatchString(s.Region):
		verr.Add("region", msgRegion)
	case len(d.Regions) > 0 && !slices.Contains(d.Regions, s.Region):
		verr.Add("region", "must be one of the regions this stack serves: "+strings.Join(d.Regions, ", "))
	}

	if s.NodeCount < MinNodeCount || s.NodeCount > MaxNodeCount {
		verr.Add("nodeCount", msgNodeCount)
	}
	if s.HAControlPlane != nil && *s.HAControlPlane && s.NodeCount < haMinNodes {
		verr.Add("haControlPlane", fmt.Sprintf("can be true only with nodeCount >= %d (dqlite HA needs 3 control-plane nodes); omit it or set false", haMinNodes))
	}
	if !reInstanceType.MatchString(s.InstanceType) {
		verr.Add("instanceType", msgInstanceType)
	}
	if s.AmiID != "" && !reAmiID.MatchString(s.AmiID) {
		verr.Add("amiId", msgAmiID)
	}
	if s.VpcID != "" && !reVpcID.MatchString(s.VpcID) {
		verr.Add("vpcId", msgVpcID)
	}
	if s.SubnetID != "" && !reSubnetID.MatchString(s.SubnetID) {
		verr.Add("subnetId", msgSubnetID)
	}
	if !reChannel.MatchString(s.Microk8sChannel) {
		verr.Add("microk8sChannel", msgChannel)
	}

	seen := map[string]int{}
	for i, a := range s.Addons {
		key := fmt.Sprintf("addons[%d]", i)
		if j, dup := seen[a]; dup {
			verr.Add(key, fmt.Sprintf("duplicate of addons[%d]; list each addon once", j))
			continue
		}
		seen[a] = i
		if !slices.Contains(AllowedAddons, a) {
			verr.Add(key, msgAddon)
		}
	}

	validateCIDRs("apiAccessCidrs", s.APIAccessCIDRs, verr)
	validateCIDRs("nodePortCidrs", s.NodePortCIDRs, verr)

	if s.RootVolumeGiB < MinRootVolumeGiB || s.RootVolumeGiB > MaxRootVolumeGiB {
		verr.Add("rootVolumeGiB", msgRootVolume)
	}

	now := d.now()
	if s.TTL != "" {
		ttl, err := time.ParseDuration(s.TTL)
		if err != nil || ttl < MinLifetime || ttl > MaxLifetime {
			verr.Add("ttl", msgTTL)
		}
	} else if s.ExpiresAt != nil {
		earliest, latest := now.Add(MinLifetime), now.Add(MaxLifetime)
		if s.ExpiresAt.Before(earliest) || s.ExpiresAt.After(latest) {
			verr.Add("expiresAt", fmt.Sprintf("%s (now between %s and %s)", msgExpiresAt,
				earliest.UTC().Format(time.RFC3339), latest.UTC().Format(time.RFC3339)))
		}
	}

	if len(s.Tags) > MaxTags {
		verr.Add("tags", fmt.Sprintf("must have at most %d tags, got %d (mecd adds its own under AWS's limit of 50)", MaxTags, len(s.Tags)))
	}
	for k, v := range s.Tags {
		key := "tags." + k
		n := utf8.RuneCountInString(k)
		lk := strings.ToLower(k)
		switch {
		case n < 1 || n > MaxTagKeyLen || !utf8.ValidString(k) || !reTag.MatchString(k):
			verr.Add(key, msgTagKey)
		case strings.HasPrefix(lk, "aws:") || strings.HasPrefix(lk, "mecd:"):
			verr.Add(key, `tag keys starting with "aws:" or "mecd:" are reserved; choose another key`)
		}
		if utf8.RuneCountInString(v) > MaxTagValLen || !utf8.ValidString(v) || !reTag.MatchString(v) {
			verr.Add(key, msgTagValue)
		}
	}

	return verr.Err()
}

// IsAMIID reports whether id has the form of an AMI id.
func IsAMIID(id string) bool { return reAmiID.MatchString(id) }

// validateCIDRs requires canonical IPv4 CIDRs, since they become security
// group rules and AWS rejects (or silently rewrites) anything else.
func validateCIDRs(field string, cidrs []string, verr *ValidationError) {
	if len(cidrs) > MaxCIDRs {
		verr.Add(field, fmt.Sprintf("must list at most %d CIDRs, got %d", MaxCIDRs, len(cidrs)))
	}
	seen := map[string]int{}
	for i, c := range cidrs {
		key := fmt.Sprintf("%s[%d]", field, i)
		if msg := checkCIDR(c); msg != "" {
			verr.Add(key, msg)
			continue
		}
		if j, dup := seen[c]; dup {
			verr.Add(key, fmt.Sprintf("duplicate of %s[%d]; list each CIDR once", field, j))
			continue
		}
		seen[c] = i
	}
}

// checkCIDR returns what is wrong with c, or "". netip is strict (no leading
// zeros, no "/08"), so a parsed IPv4 prefix with zero host bits is canonical.
func checkCIDR(c string) string {
	p, err := netip.ParsePrefix(c)
	if err != nil {
		if a, err := netip.ParseAddr(c); err == nil && a.Is4() {
			return fmt.Sprintf("%s; for the single address use %q", msgCIDR, a.String()+"/32")
		}
		return msgCIDR
	}
	if !p.Addr().Is4() {
		return msgCIDR + "; IPv6 is not supported"
	}
	if m := p.Masked(); m != p {
		return fmt.Sprintf("must be a canonical IPv4 CIDR with the host bits zero: %q (or %q for the single address)", m.String(), p.Addr().String()+"/32")
	}
	return ""
}

// Hash is a stable digest of the normalized spec, for idempotency checks: the
// same request twice hashes the same even though a ttl resolves to a
// different ExpiresAt each time. Lists that are sets (addons, CIDRs) are
// sorted. Call it on a spec with defaults applied.
func (s Spec) Hash() string {
	n := s
	if n.Addons == nil {
		n.Addons = DefaultAddons
	}
	n.Addons = sortedCopy(n.Addons)
	n.APIAccessCIDRs = sortedCopy(n.APIAccessCIDRs)
	n.NodePortCIDRs = sortedCopy(n.NodePortCIDRs)
	ha := n.ControlPlaneCount() > 1
	n.HAControlPlane = &ha
	if n.TTL != "" {
		n.ExpiresAt = nil
	} else if n.ExpiresAt != nil {
		t := n.ExpiresAt.UTC()
		n.ExpiresAt = &t
	}
	if len(n.Tags) == 0 {
		n.Tags = nil
	}
	b, _ := json.Marshal(n) // cannot fail: strings, numbers, bools and a time
	sum := sha256.Sum256(append([]byte("mecd-spec-v1\n"), b...))
	return hex.EncodeToString(sum[:])
}

func sortedCopy(v []string) []string {
	if len(v) == 0 {
		if v == nil {
			return nil
		}
		return []string{}
	}
	c := slices.Clone(v)
	slices.Sort(c)
	return c
}
