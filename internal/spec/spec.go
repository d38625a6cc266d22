package spec

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mecd/mecd/internal/addons"
)

// Spec is the MEC spec: the API body and the provision state machine input.
// Zero values mean "use the default" (see ApplyDefaults).
type Spec struct {
	Name         string `json:"name"`
	Region       string `json:"region,omitempty"`
	NodeCount    int    `json:"nodeCount,omitempty"`
	InstanceType string `json:"instanceType,omitempty"`
	AmiID        string `json:"amiId,omitempty"`
	VpcID        string `json:"vpcId,omitempty"`
	SubnetID     string `json:"subnetId,omitempty"`
	// EBSKmsKeyID is the KMS key the nodes' volumes are encrypted with (key
	// id, key ARN, alias or alias ARN, as RunInstances takes it); empty: the
	// region's default EBS key.
	EBSKmsKeyID     string `json:"ebsKmsKeyId,omitempty"`
	Microk8sChannel string `json:"microk8sChannel,omitempty"`
	// Addons has no omitempty: an explicit [] (no addons at all) must survive
	// a JSON round trip instead of turning back into DefaultAddons.
	Addons         []string `json:"addons"`
	APIAccessCIDRs []string `json:"apiAccessCidrs,omitempty"`
	NodePortCIDRs  []string `json:"nodePortCidrs,omitempty"`
	PublicEndpoint bool     `json:"publicEndpoint,omitempty"`
	// AllowWorldAccess says a world-open CIDR (0.0.0.0/0) in apiAccessCidrs
	// or nodePortCidrs is meant, not a slip.
	AllowWorldAccess bool  `json:"allowWorldAccess,omitempty"`
	HAControlPlane   *bool `json:"haControlPlane,omitempty"`
	RootVolumeGiB    int   `json:"rootVolumeGiB,omitempty"`
	// DataVolumes are each node's extra EBS volumes (the seed's 3 x 100 GB
	// disks per node), launched and deleted with the node.
	DataVolumes *DataVolumes      `json:"dataVolumes,omitempty"`
	TTL         string            `json:"ttl,omitempty"`
	ExpiresAt   *time.Time        `json:"expiresAt,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

// DataVolumes asks for Count extra gp3 volumes of SizeGiB on every node,
// encrypted like the root volume and deleted with the instance.
type DataVolumes struct {
	Count   int `json:"count"`
	SizeGiB int `json:"sizeGiB,omitempty"`
}

// DataVolumeCount is how many data volumes each node gets.
func (s Spec) DataVolumeCount() int {
	if s.DataVolumes == nil {
		return 0
	}
	return s.DataVolumes.Count
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

// AllowedAddons lists the addons a spec may ask for: MicroK8s addons from
// its core repository of the pinned channel (others are refused because
// they are untested on the node scripts' path), then mecd's own
// (internal/addons). MicroK8s has no edgex addon (neither its core nor its
// community addons.yaml lists one): mecd ships it.
var AllowedAddons = append([]string{"dns", "hostpath-storage", "ingress", "metrics-server", "cert-manager", "observability", "rbac"}, addons.Names()...)

// Bounds. Exported so the API documentation and tests quote the same numbers.
const (
	MinNodeCount     = 1
	MaxNodeCount     = 20
	MaxNameLen       = 40
	MinRootVolumeGiB = 20
	MaxRootVolumeGiB = 500
	MaxDataVolumes   = 3
	MinDataVolumeGiB = 10
	MaxDataVolumeGiB = 1000
	// DefaultDataVolumeGiB is the seed's data disk size.
	DefaultDataVolumeGiB = 100
	MinLifetime          = 10 * time.Minute
	MaxLifetime          = 90 * 24 * time.Hour
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
	msgDataVolumes  = fmt.Sprintf(`must be an object such as {"count": 1, "sizeGiB": %d}: count 0-%d volumes per node, sizeGiB %d-%d (default %d)`, DefaultDataVolumeGiB, MaxDataVolumes, MinDataVolumeGiB, MaxDataVolumeGiB, DefaultDataVolumeGiB)
	msgDataCount    = fmt.Sprintf("must be 0-%d (volumes per node)", MaxDataVolumes)
	msgDataSize     = fmt.Sprintf("must be %d-%d (GiB per volume)", MinDataVolumeGiB, MaxDataVolumeGiB)
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
var jsonFields = []string{"name", "region", "nodeCount", "instanceType", "amiId", "vpcId", "subnetId", "ebsKmsKeyId", "microk8sChannel", "addons", "apiAccessCidrs", "nodePortCidrs", "publicEndpoint", "allowWorldAccess", "haControlPlane", "rootVolumeGiB", "dataVolumes", "ttl", "expiresAt", "tags"}

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
	if s.DataVolumes != nil && s.DataVolumes.Count > 0 && s.DataVolumes.SizeGiB == 0 {
		s.DataVolumes.SizeGiB = DefaultDataVolumeGiB
	}
	if s.HAControlPlane == nil {
		ha := s.NodeCount >= haMinNodes
		s.HAControlPlane = &ha
	}
}
