package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mecd/mecd/internal/addons"
)

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
	if msg := checkKMSKey(s.EBSKmsKeyID, s.Region); msg != "" {
		verr.Add("ebsKmsKeyId", msg)
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

	for _, a := range s.Addons {
		own, ok := addons.Get(a)
		if !ok {
			continue
		}
		var all, missing []string
		for _, n := range own.Needs {
			say := n
			if alt := strings.Split(n, "|"); len(alt) > 1 {
				say = "one of " + strings.Join(alt, ", ")
			}
			all = append(all, say)
			if !addons.Satisfied(n, s.Addons) {
				missing = append(missing, say)
			}
		}
		if len(missing) > 0 {
			verr.Add("addons", fmt.Sprintf("%s needs %s (%s): add %s", a, strings.Join(all, " and "), own.Why, strings.Join(missing, " and ")))
		}
		if msg := MinNodesMessage([]string{a}, s.NodeCount); msg != "" {
			verr.Add("nodeCount", msg)
		}
		if own.DataVolumes && s.DataVolumeCount() == 0 {
			verr.Add("dataVolumes.count", fmt.Sprintf(`must be at least 1 with %s (%s): add "dataVolumes": {"count": 1, "sizeGiB": %d}`, a, own.NeedsWhy, DefaultDataVolumeGiB))
		}
	}
	if _, bad := verr.Fields["instanceType"]; !bad {
		if msg := checkFit(s.InstanceType, s.Addons); msg != "" {
			verr.Add("addons", msg)
		}
	}

	validateCIDRs("apiAccessCidrs", s.APIAccessCIDRs, s.AllowWorldAccess, verr)
	validateCIDRs("nodePortCidrs", s.NodePortCIDRs, s.AllowWorldAccess, verr)

	if s.RootVolumeGiB < MinRootVolumeGiB || s.RootVolumeGiB > MaxRootVolumeGiB {
		verr.Add("rootVolumeGiB", msgRootVolume)
	}

	if dv := s.DataVolumes; dv != nil {
		if dv.Count < 0 || dv.Count > MaxDataVolumes {
			verr.Add("dataVolumes.count", msgDataCount)
		}
		if dv.Count > 0 && (dv.SizeGiB < MinDataVolumeGiB || dv.SizeGiB > MaxDataVolumeGiB) {
			verr.Add("dataVolumes.sizeGiB", msgDataSize)
		}
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

// MinNodesMessage says why n nodes are too few for these addons (mecd's
// own with a MinNodes), with the fix, or "": for a new MEC's nodeCount and
// for a scale's.
func MinNodesMessage(list []string, n int) string {
	for _, a := range list {
		own, ok := addons.Get(a)
		if ok && n < own.MinNodes {
			return fmt.Sprintf("must be at least %d with %s (%s): ask for %d or more nodes, or leave %s out", own.MinNodes, a, own.NeedsWhy, own.MinNodes, a)
		}
	}
	return ""
}

// IsAMIID reports whether id has the form of an AMI id.
func IsAMIID(id string) bool { return reAmiID.MatchString(id) }

// validateCIDRs requires canonical IPv4 CIDRs, since they become security
// group rules and AWS rejects (or silently rewrites) anything else.
// msgWorld refuses a world-open CIDR given without allowWorldAccess (the
// Akraino seed opened 16443 to 0.0.0.0/0 by default).
const msgWorld = `opens the port to the whole internet: list the networks that need it, or set "allowWorldAccess": true to mean it`

func validateCIDRs(field string, cidrs []string, world bool, verr *ValidationError) {
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
		if c == "0.0.0.0/0" && !world {
			verr.Add(key, msgWorld)
		}
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
		if p.Bits() == 0 {
			// Security group rules here are IPv4 (the nodes have no IPv6).
			return msgCIDR + `; IPv6 is not supported: for the whole internet use "0.0.0.0/0" with "allowWorldAccess": true`
		}
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
	if n.DataVolumeCount() == 0 {
		n.DataVolumes = nil // {"count": 0} asks for what no field asks for
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

// The forms of a KMS key RunInstances takes for an EBS volume (EC2 API
// Reference, EbsBlockDevice.KmsKeyId): key id (or a multi-Region key's
// mrk- id), key ARN, alias name, alias ARN.
var (
	reKeyID    = regexp.MustCompile(`^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$`)
	reAlias    = regexp.MustCompile(`^alias/[a-zA-Z0-9/_-]{1,250}$`)
	reKMSArn   = regexp.MustCompile(`^arn:aws[a-z-]*:kms:([a-z0-9-]+):[0-9]{12}:(key/|alias/)(.+)$`)
	msgKMSKey  = `must be a KMS key id ("1234abcd-12ab-34cd-56ef-1234567890ab"), key ARN, alias ("alias/mecd-ebs") or alias ARN`
	msgKMSArea = "must be a key in the MEC's region %s (EBS volumes use a key of their own region): give that region's key"
)

// checkKMSKey returns what is wrong with key for a MEC in region, or "".
func checkKMSKey(key, region string) string {
	switch {
	case key == "", reKeyID.MatchString(key), reAlias.MatchString(key):
		return ""
	}
	m := reKMSArn.FindStringSubmatch(key)
	if m == nil || (m[2] == "key/" && !reKeyID.MatchString(m[3])) || (m[2] == "alias/" && !reAlias.MatchString("alias/"+m[3])) {
		return msgKMSKey
	}
	if region != "" && m[1] != region {
		return fmt.Sprintf(msgKMSArea, region)
	}
	return ""
}
