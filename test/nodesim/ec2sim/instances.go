package ec2sim

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mecd/mecd/test/nodesim/latency"
)

// instance is a simulated instance: its public record plus what only the
// simulator needs. Fields change under s.mu.
type instance struct {
	Instance
	eniID, attachID, profileID string
	reason                     string
	volumes                    []*volume
	timer                      *time.Timer
}

// volume is a simulated EBS volume.
type volume struct {
	Volume
	region, az, state   string // state: in-use, available
	instanceID          string // attached instance, "" once detached
	snapshotID          string
	iops, throughput    int
	created, attachedAt time.Time
}

// launch is what a client token remembers: the parameters and the result.
type launch struct {
	fingerprint   string
	reservationID string
	instanceIDs   []string
}

func (in *instance) snapshot() Instance {
	out := in.Instance
	out.SecurityGroupIDs = slices.Clone(in.SecurityGroupIDs)
	out.Tags = maps.Clone(in.Tags)
	if out.Tags == nil {
		out.Tags = map[string]string{}
	}
	out.Volumes = make([]Volume, 0, len(in.volumes))
	for _, v := range in.volumes {
		out.Volumes = append(out.Volumes, v.snapshot())
	}
	return out
}

func (v *volume) snapshot() Volume {
	out := v.Volume
	out.Tags = maps.Clone(v.Tags)
	if out.Tags == nil {
		out.Tags = map[string]string{}
	}
	return out
}

// runSpec is a RunInstances request checked for everything that does not
// depend on the Sim's state.
type runSpec struct {
	imageID, instanceType, clientToken, userData, fingerprint string
	minCount, maxCount                                        int
	instanceTags, volumeTags                                  map[string]string
	httpTokens, httpEndpoint, metadataTags                    string
	hopLimit                                                  int
	devices                                                   []deviceSpec
	profileArn                                                string
	subnetID, az                                              string
	groupIDs, groupNames                                      []string
	publicIP                                                  *bool
}

type deviceSpec struct {
	name, volumeType, kmsKeyID string
	size, iops, throughput     int
	encrypted, deleteOnTerm    bool
}

var volumeTypes = map[string][2]int{ // size bounds in GiB
	"gp2": {1, 16384}, "gp3": {1, 16384}, "io1": {4, 16384}, "io2": {4, 65536},
	"st1": {125, 16384}, "sc1": {125, 16384}, "standard": {1, 1024},
}

func parseRunSpec(p params) (*runSpec, error) {
	sp := &runSpec{
		imageID: p.get("ImageId"), instanceType: p.get("InstanceType"), clientToken: p.get("ClientToken"),
		userData: p.get("UserData"), httpTokens: "optional", httpEndpoint: "enabled", metadataTags: "disabled", hopLimit: 1,
	}
	if sp.imageID == "" {
		return nil, missing("ImageId")
	}
	if !reImageID.MatchString(sp.imageID) {
		return nil, errf("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", sp.imageID)
	}
	if sp.instanceType == "" {
		sp.instanceType = "m1.small" // EC2's default
	}
	if _, ok := catalogue[sp.instanceType]; !ok {
		return nil, errf("InvalidParameterValue", "Invalid value '%s' for InstanceType.", sp.instanceType)
	}
	var err error
	if sp.minCount, err = requiredCount(p, "MinCount"); err != nil {
		return nil, err
	}
	if sp.maxCount, err = requiredCount(p, "MaxCount"); err != nil {
		return nil, err
	}
	if sp.minCount > sp.maxCount {
		return nil, errf("InvalidParameterValue", "MinCount (%d) must be less than or equal to MaxCount (%d).", sp.minCount, sp.maxCount)
	}
	if len(sp.clientToken) > 64 {
		return nil, errf("InvalidParameterValue", "Value (%s) for parameter clientToken is invalid. The length must not exceed 64 characters.", sp.clientToken)
	}
	if sp.userData != "" {
		raw, err := base64.StdEncoding.DecodeString(sp.userData)
		if err != nil {
			return nil, errf("InvalidParameterValue", "Invalid BASE64 encoding of user data.")
		}
		if len(raw) > 16384 {
			return nil, errf("InvalidParameterValue", "User data is limited to 16384 bytes")
		}
	}
	if sp.instanceTags, sp.volumeTags, err = parseRunTagSpecs(p); err != nil {
		return nil, err
	}
	if err := parseMetadataOptions(p.sub("MetadataOptions"), sp); err != nil {
		return nil, err
	}
	if sp.devices, err = parseDevices(p, sp.imageID); err != nil {
		return nil, err
	}
	if sp.profileArn, err = parseProfile(p.sub("IamInstanceProfile")); err != nil {
		return nil, err
	}
	if err := parseNetwork(p, sp); err != nil {
		return nil, err
	}
	sp.fingerprint = fingerprint(p)
	return sp, nil
}

func requiredCount(p params, name string) (int, error) {
	n, ok, err := p.intOpt(name)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, missing(name)
	}
	if n < 1 {
		return 0, errf("InvalidParameterValue", "Value (%d) for parameter %s is invalid. Expecting a value greater than 0.", n, strings.ToLower(name[:1])+name[1:])
	}
	return n, nil
}

// fingerprint is a canonical form of a request's parameters, minus those that
// do not make a request different (the token itself, the envelope).
func fingerprint(p params) string {
	var b strings.Builder
	for _, k := range sortedKeys(p.v) {
		switch k {
		case "Action", "Version", "ClientToken", "DryRun":
			continue
		}
		for _, v := range p.v[k] {
			b.WriteString(k + "=" + v + "\n")
		}
	}
	return b.String()
}

func parseRunTagSpecs(p params) (inst, vol map[string]string, err error) {
	inst, vol = map[string]string{}, map[string]string{}
	for _, ts := range p.structs("TagSpecification") {
		rt := ts.get("ResourceType")
		tags, err := parseTags(ts, "Tag")
		if err != nil {
			return nil, nil, err
		}
		switch rt {
		case "instance":
			maps.Copy(inst, tags)
		case "volume":
			maps.Copy(vol, tags)
		case "network-interface", "spot-instances-request", "elastic-gpu":
			// Accepted as EC2 does; the simulator keeps no such resource.
		case "":
			return nil, nil, missing("TagSpecification.ResourceType")
		default:
			return nil, nil, errf("InvalidParameterValue", "'%s' is not a valid taggable resource type for this operation.", rt)
		}
	}
	return inst, vol, nil
}

func parseMetadataOptions(m params, sp *runSpec) error {
	if v := m.get("HttpTokens"); v != "" {
		if v != "required" && v != "optional" {
			return errf("InvalidParameterValue", "Value (%s) for parameter HttpTokens is invalid. Valid values are: required, optional.", v)
		}
		sp.httpTokens = v
	}
	if v := m.get("HttpEndpoint"); v != "" {
		if v != "enabled" && v != "disabled" {
			return errf("InvalidParameterValue", "Value (%s) for parameter HttpEndpoint is invalid. Valid values are: enabled, disabled.", v)
		}
		sp.httpEndpoint = v
	}
	if v := m.get("InstanceMetadataTags"); v != "" {
		if v != "enabled" && v != "disabled" {
			return errf("InvalidParameterValue", "Value (%s) for parameter InstanceMetadataTags is invalid. Valid values are: enabled, disabled.", v)
		}
		sp.metadataTags = v
	}
	n, ok, err := m.intOpt("HttpPutResponseHopLimit")
	if err != nil {
		return err
	}
	if ok {
		if n < 1 || n > 64 {
			return errf("InvalidParameterValue", "Value (%d) for parameter HttpPutResponseHopLimit is invalid. Valid values are 1 to 64.", n)
		}
		sp.hopLimit = n
	}
	return nil
}

// parseDevices reads BlockDeviceMapping.N. The root device of every
// registered AMI is rootDevice with an 8 GiB gp2 unencrypted snapshot; a
// mapping of that name overrides it, others add volumes.
func parseDevices(p params, imageID string) ([]deviceSpec, error) {
	root := deviceSpec{name: rootDevice, volumeType: "gp2", size: defaultRootGiB, deleteOnTerm: true}
	devices := []deviceSpec{root}
	seen := map[string]bool{}
	for _, m := range p.structs("BlockDeviceMapping") {
		name := m.get("DeviceName")
		if name == "" {
			return nil, missing("BlockDeviceMapping.DeviceName")
		}
		if seen[name] {
			return nil, errf("InvalidBlockDeviceMapping", "The device '%s' is used in more than one block-device mapping", name)
		}
		seen[name] = true
		isRoot := name == rootDevice
		if m.has("NoDevice") {
			if isRoot {
				return nil, errf("InvalidBlockDeviceMapping", "The device '%s' is the root device and cannot be suppressed", name)
			}
			continue
		}
		if !m.hasSub("Ebs") {
			continue // an instance store mapping: nothing the simulator keeps
		}
		d := deviceSpec{name: name, volumeType: "gp2", deleteOnTerm: true}
		if isRoot {
			d = root
		}
		e := m.sub("Ebs")
		if t := e.get("VolumeType"); t != "" {
			if _, ok := volumeTypes[t]; !ok {
				return nil, errf("InvalidParameterValue", "Value (%s) for parameter volumeType is invalid. Valid values: gp2, gp3, io1, io2, st1, sc1, standard.", t)
			}
			d.volumeType = t
		}
		size, hasSize, err := e.intOpt("VolumeSize")
		if err != nil {
			return nil, err
		}
		switch {
		case hasSize:
			d.size = size
		case !isRoot && !e.has("SnapshotId"):
			return nil, errf("MissingParameter", "The request must contain the parameter size or snapshotId")
		case !isRoot:
			d.size = defaultRootGiB
		}
		bounds := volumeTypes[d.volumeType]
		if d.size < bounds[0] || d.size > bounds[1] {
			return nil, errf("InvalidParameterValue", "Volume of %dGiB is outside the range for volume type %s: %d-%dGiB.", d.size, d.volumeType, bounds[0], bounds[1])
		}
		if isRoot && d.size < defaultRootGiB {
			return nil, errf("InvalidBlockDeviceMapping", "Volume of size %dGB is smaller than snapshot '%s', expect size >= %dGB", d.size, snapshotID(imageID), defaultRootGiB)
		}
		if b, ok, err := e.boolOpt("Encrypted"); err != nil {
			return nil, err
		} else if ok {
			d.encrypted = b
		}
		if b, ok, err := e.boolOpt("DeleteOnTermination"); err != nil {
			return nil, err
		} else if ok {
			d.deleteOnTerm = b
		}
		d.kmsKeyID = e.get("KmsKeyId")
		if d.kmsKeyID != "" && !d.encrypted {
			return nil, errf("InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be set.")
		}
		if d.iops, _, err = e.intOpt("Iops"); err != nil {
			return nil, err
		}
		if d.throughput, _, err = e.intOpt("Throughput"); err != nil {
			return nil, err
		}
		if isRoot {
			devices[0] = d
		} else {
			devices = append(devices, d)
		}
	}
	return devices, nil
}

// parseProfile reads IamInstanceProfile.Arn or .Name. The simulator cannot
// see kumo's IAM, so it keeps the profile without checking it exists.
func parseProfile(m params) (string, error) {
	arn, name := m.get("Arn"), m.get("Name")
	switch {
	case arn != "" && name != "":
		return "", errf("InvalidParameterCombination", "The parameter 'iamInstanceProfile.name' may not be used in combination with 'iamInstanceProfile.arn'")
	case arn != "":
		if !strings.HasPrefix(arn, "arn:aws:iam::") || !strings.Contains(arn, ":instance-profile/") {
			return "", errf("InvalidParameterValue", "Value (%s) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN", arn)
		}
		return arn, nil
	case name != "":
		return fmt.Sprintf("arn:aws:iam::%s:instance-profile/%s", iamAccount, name), nil
	}
	return "", nil
}

// parseNetwork reads the subnet, groups and public IP choice, either at the
// top level or from the primary NetworkInterface, not both (as EC2).
func parseNetwork(p params, sp *runSpec) error {
	sp.subnetID = p.get("SubnetId")
	sp.groupIDs = p.list("SecurityGroupId")
	sp.groupNames = p.list("SecurityGroup")
	sp.az = p.get("Placement.AvailabilityZone")
	nis := p.structs("NetworkInterface")
	if len(nis) == 0 {
		return nil
	}
	if sp.subnetID != "" {
		return errf("InvalidParameterCombination", "Network interfaces and an instance-level subnet ID may not be specified on the same request")
	}
	if len(sp.groupIDs) > 0 || len(sp.groupNames) > 0 {
		return errf("InvalidParameterCombination", "Network interfaces and an instance-level security groups may not be specified on the same request")
	}
	if len(nis) > 1 {
		return errf("InvalidParameterValue", "The simulator supports only one network interface (device index 0)")
	}
	ni := nis[0]
	if idx := ni.get("DeviceIndex"); idx != "" && idx != "0" {
		return errf("InvalidParameterValue", "Value (%s) for parameter networkInterface.deviceIndex is invalid. The primary network interface must have device index 0.", idx)
	}
	sp.subnetID = ni.get("SubnetId")
	sp.groupIDs = ni.list("SecurityGroupId")
	b, ok, err := ni.boolOpt("AssociatePublicIpAddress")
	if err != nil {
		return err
	}
	if ok {
		sp.publicIP = &b
	}
	return nil
}

func (s *Sim) runInstances(c *call, x *xmlw) error {
	sp, err := parseRunSpec(c.p)
	if err != nil {
		return err
	}
	// The call itself takes time on AWS; callers must cope with it.
	if err := sleepCtx(c.ctx, s.delay(latency.RunInstancesCall)); err != nil {
		return fmt.Errorf("run instances: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.ensureRegion(c.region)
	tokenKey := c.region + "\x00" + sp.clientToken
	if sp.clientToken != "" {
		if l, ok := s.launches[tokenKey]; ok {
			if l.fingerprint != sp.fingerprint {
				return errf("IdempotentParameterMismatch", "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).")
			}
			s.writeReservation(x, l.reservationID, l.instanceIDs)
			return nil
		}
	}
	img, ok := s.images[c.region][sp.imageID]
	if !ok {
		return errf("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", sp.imageID)
	}
	it := catalogue[sp.instanceType]
	if !slices.Contains(it.arch, img.arch) {
		return errf("InvalidParameterValue", "The architecture '%s' of the specified instance type does not match the architecture '%s' of the specified AMI. Specify an instance type and an AMI that have matching architectures, and try again. You can use 'describe-instance-types' or 'describe-images' to discover the architecture of the instance type or AMI.", it.arch[len(it.arch)-1], img.arch)
	}
	sn, err := s.launchSubnet(r, sp)
	if err != nil {
		return err
	}
	groups, err := s.launchGroups(sn, sp)
	if err != nil {
		return err
	}
	public := sn.mapPublic
	if sp.publicIP != nil {
		public = *sp.publicIP
	}
	var ips []netip.Addr
	for range sp.maxCount {
		a, ok := sn.allocIP()
		if !ok {
			break
		}
		ips = append(ips, a)
	}
	if len(ips) < sp.minCount {
		for _, a := range ips {
			delete(sn.used, a)
		}
		return errf("InsufficientFreeAddressesInSubnet", "There are not enough free addresses in subnet '%s' to satisfy the requested number of instances.", sn.id)
	}
	now := time.Now()
	resID := s.newID("r")
	l := &launch{fingerprint: sp.fingerprint, reservationID: resID}
	for i, ip := range ips {
		in := &instance{
			Instance: Instance{
				ID: s.newID("i"), Region: c.region, State: StatePending, InstanceType: sp.instanceType,
				ImageID: sp.imageID, Architecture: img.arch, PrivateIP: ip.String(), SubnetID: sn.id, VpcID: sn.vpcID,
				IamInstanceProfileArn: sp.profileArn, HTTPTokens: sp.httpTokens, ClientToken: sp.clientToken,
				ReservationID: resID, UserData: sp.userData, LaunchIndex: i, SecurityGroupIDs: slices.Clone(groups),
				Tags: maps.Clone(sp.instanceTags), LaunchedAt: now, AvailabilityZone: sn.az,
				HTTPEndpoint: sp.httpEndpoint, HTTPPutResponseHopLimit: sp.hopLimit,
			},
			eniID:    s.newID("eni"),
			attachID: s.newID("eni-attach"),
		}
		if sp.profileArn != "" {
			in.profileID = profileID(sp.profileArn)
		}
		if public {
			in.PublicIP = s.newPublicIP()
		}
		for _, d := range sp.devices {
			v := &volume{
				Volume: Volume{ID: s.newID("vol"), DeviceName: d.name, VolumeType: d.volumeType, SizeGiB: d.size,
					Encrypted: d.encrypted, DeleteOnTermination: d.deleteOnTerm, KmsKeyID: d.kmsKeyID, Tags: maps.Clone(sp.volumeTags)},
				region: c.region, az: sn.az, state: "in-use", instanceID: in.ID, created: now, attachedAt: now,
				iops: d.iops, throughput: d.throughput,
			}
			if d.name == rootDevice {
				v.snapshotID = snapshotID(sp.imageID)
			}
			if v.Encrypted && v.KmsKeyID == "" {
				v.KmsKeyID = defaultKMSKey(c.region)
			}
			v.fillPerformance()
			s.volumes[v.ID] = v
			in.volumes = append(in.volumes, v)
		}
		s.instances[in.ID] = in
		l.instanceIDs = append(l.instanceIDs, in.ID)
		s.emit(in)
		s.schedule(in, s.delay(latency.Boot), func(in *instance) bool {
			if in.State != StatePending {
				return false
			}
			in.State, in.RunningAt = StateRunning, time.Now()
			return true
		})
	}
	if sp.clientToken != "" {
		s.launches[tokenKey] = l
	}
	s.writeReservation(x, l.reservationID, l.instanceIDs)
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// launchSubnet picks the subnet: the one named, else the default subnet of
// the placement AZ, else the first default subnet.
func (s *Sim) launchSubnet(r *regionState, sp *runSpec) (*subnet, error) {
	if sp.az != "" && !slices.Contains(r.azs, sp.az) {
		return nil, errf("InvalidParameterValue", "Invalid availability zone: [%s]", sp.az)
	}
	if sp.subnetID != "" {
		if !reSubnetID.MatchString(sp.subnetID) {
			return nil, errf("InvalidSubnetID.Malformed", "Invalid id: \"%s\" (expecting \"subnet-...\")", sp.subnetID)
		}
		sn, ok := s.subnets[sp.subnetID]
		if !ok || sn.region != r.name {
			return nil, errf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", sp.subnetID)
		}
		if sp.az != "" && sp.az != sn.az {
			return nil, errf("InvalidParameterValue", "The specified subnet '%s' is in availability zone '%s', not '%s'.", sn.id, sn.az, sp.az)
		}
		return sn, nil
	}
	var defaults []*subnet
	for _, sn := range s.subnets {
		if sn.region == r.name && sn.vpcID == r.defaultVPC && sn.defaultForAz && (sp.az == "" || sn.az == sp.az) {
			defaults = append(defaults, sn)
		}
	}
	if len(defaults) == 0 {
		return nil, errf("MissingInput", "No subnets found for the default VPC '%s'. Please specify a subnet.", r.defaultVPC)
	}
	slices.SortFunc(defaults, func(a, b *subnet) int { return strings.Compare(a.az, b.az) })
	return defaults[0], nil
}

// launchGroups resolves the security groups in the subnet's VPC; none named
// means the VPC's default group, as EC2 does.
func (s *Sim) launchGroups(sn *subnet, sp *runSpec) ([]string, error) {
	var out []string
	for _, id := range sp.groupIDs {
		if !reGroupID.MatchString(id) {
			return nil, errf("InvalidGroupId.Malformed", "Invalid id: \"%s\"", id)
		}
		g, ok := s.groups[id]
		if !ok || g.region != sn.region {
			return nil, errf("InvalidGroup.NotFound", "The security group '%s' does not exist in VPC '%s'", id, sn.vpcID)
		}
		if g.vpcID != sn.vpcID {
			return nil, errf("InvalidParameter", "Security group %s and subnet %s belong to different networks.", id, sn.id)
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	for _, name := range sp.groupNames {
		g := s.groupByName(sn.vpcID, name)
		if g == nil {
			return nil, errf("InvalidGroup.NotFound", "The security group '%s' does not exist in VPC '%s'", name, sn.vpcID)
		}
		if !slices.Contains(out, g.id) {
			out = append(out, g.id)
		}
	}
	if len(out) == 0 {
		out = append(out, s.vpcs[sn.vpcID].defaultSG)
	}
	return out, nil
}

// newPublicIP draws an unused address from 3.0.0.0/8 or 54.0.0.0/8: AWS
// ranges nothing here ever contacts.
func (s *Sim) newPublicIP() string {
	for {
		first := []int{3, 54}[s.rng.IntN(2)]
		ip := fmt.Sprintf("%d.%d.%d.%d", first, s.rng.IntN(256), s.rng.IntN(256), 1+s.rng.IntN(254))
		if !s.publicIPs[ip] {
			s.publicIPs[ip] = true
			return ip
		}
	}
}

// profileID is a stable AIPA... id for a profile ARN.
func profileID(arn string) string {
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	var h uint64 = 1469598103934665603
	for i := 0; i < len(arn); i++ {
		h = (h ^ uint64(arn[i])) * 1099511628211
	}
	b := make([]byte, 17)
	for i := range b {
		b[i] = alnum[h%32]
		h = h/32 ^ (h << 59) ^ uint64(i)*0x9e3779b97f4a7c15
	}
	return "AIPA" + string(b)
}

func defaultKMSKey(region string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/00000000-0000-4000-8000-0000000ebs00", region, ownerID)
}

// fillPerformance sets the IOPS and throughput AWS reports when none were asked.
func (v *volume) fillPerformance() {
	switch v.VolumeType {
	case "gp3":
		if v.iops == 0 {
			v.iops = 3000
		}
		if v.throughput == 0 {
			v.throughput = 125
		}
	case "gp2":
		v.iops = min(max(100, 3*v.SizeGiB), 16000)
	}
}

// schedule runs fn on in after d, unless superseded by another schedule or
// the Sim is closed; fn reports whether the state changed. Callers hold s.mu,
// which the timer takes too, so the timer never sees in.timer unset.
func (s *Sim) schedule(in *instance, d time.Duration, fn func(*instance) bool) {
	if in.timer != nil {
		in.timer.Stop()
		in.timer = nil
	}
	if s.closed {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.mu.Lock()
		if in.timer != t || s.closed {
			s.mu.Unlock()
			return
		}
		in.timer = nil
		if fn(in) {
			s.emit(in)
		}
		s.mu.Unlock()
		s.drain()
	})
	in.timer = t
}

// lookupInstances checks each id is well formed and exists in the region,
// reporting every missing id at once as EC2 does. Callers hold s.mu.
func (s *Sim) lookupInstances(region string, ids []string) ([]*instance, error) {
	for _, id := range ids {
		if !reInstanceID.MatchString(id) {
			return nil, errf("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
		}
	}
	var out []*instance
	var missingIDs []string
	for _, id := range ids {
		in, ok := s.instances[id]
		if !ok || in.Region != region {
			missingIDs = append(missingIDs, id)
			continue
		}
		out = append(out, in)
	}
	if len(missingIDs) > 0 {
		return nil, notFoundList("InvalidInstanceID.NotFound", "instance", missingIDs)
	}
	return out, nil
}

var instanceFields = fields[*instance]{
	"instance-id":              func(in *instance) []string { return []string{in.ID} },
	"instance-state-name":      func(in *instance) []string { return []string{in.State} },
	"instance-state-code":      func(in *instance) []string { return []string{fmt.Sprint(stateCodes[in.State])} },
	"vpc-id":                   func(in *instance) []string { return live(in, in.VpcID) },
	"subnet-id":                func(in *instance) []string { return live(in, in.SubnetID) },
	"reservation-id":           func(in *instance) []string { return []string{in.ReservationID} },
	"client-token":             func(in *instance) []string { return nonEmpty(in.ClientToken) },
	"instance-type":            func(in *instance) []string { return []string{in.InstanceType} },
	"image-id":                 func(in *instance) []string { return []string{in.ImageID} },
	"architecture":             func(in *instance) []string { return []string{in.Architecture} },
	"availability-zone":        func(in *instance) []string { return []string{in.AvailabilityZone} },
	"private-ip-address":       func(in *instance) []string { return live(in, in.PrivateIP) },
	"ip-address":               func(in *instance) []string { return live(in, in.PublicIP) },
	"iam-instance-profile.arn": func(in *instance) []string { return nonEmpty(in.IamInstanceProfileArn) },
	"launch-index":             func(in *instance) []string { return []string{fmt.Sprint(in.LaunchIndex)} },
	"metadata-options.http-tokens": func(in *instance) []string {
		return []string{in.HTTPTokens}
	},
	"instance.group-id": func(in *instance) []string {
		if in.State == StateTerminated {
			return nil
		}
		return in.SecurityGroupIDs
	},
}

// live is a value EC2 stops reporting once an instance is terminated.
func live(in *instance, v string) []string {
	if in.State == StateTerminated {
		return nil
	}
	return nonEmpty(v)
}

func nonEmpty(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

func (s *Sim) describeInstances(c *call, x *xmlw) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensureRegion(c.region)
	ids := c.p.list("InstanceId")
	if err := noMaxWithIDs(c.p, ids, "instanceIds"); err != nil {
		return err
	}
	var items []*instance
	if len(ids) > 0 {
		var err error
		if items, err = s.lookupInstances(c.region, ids); err != nil {
			return err
		}
	} else {
		for _, in := range s.instances {
			if in.Region == c.region {
				items = append(items, in)
			}
		}
	}
	items, err := applyFilters(items, parseFilters(c.p), instanceFields, func(in *instance) map[string]string { return in.Tags })
	if err != nil {
		return err
	}
	items, next, err := page(items, func(in *instance) string { return in.ID }, c.p, 5, 1000)
	if err != nil {
		return err
	}
	// Group the page's instances by reservation, in order of first appearance.
	var order []string
	byRes := map[string][]*instance{}
	for _, in := range items {
		if _, ok := byRes[in.ReservationID]; !ok {
			order = append(order, in.ReservationID)
		}
		byRes[in.ReservationID] = append(byRes[in.ReservationID], in)
	}
	x.set("reservationSet", len(order), func(i int) {
		ins := byRes[order[i]]
		sort.Slice(ins, func(a, b int) bool { return ins[a].LaunchIndex < ins[b].LaunchIndex })
		s.writeReservationBody(x, order[i], ins)
	})
	x.opt("nextToken", next)
	return nil
}

// writeReservation writes a RunInstances answer: the reservation's fields at
// the top level.
func (s *Sim) writeReservation(x *xmlw, resID string, ids []string) {
	ins := make([]*instance, 0, len(ids))
	for _, id := range ids {
		ins = append(ins, s.instances[id])
	}
	s.writeReservationBody(x, resID, ins)
}

func (s *Sim) writeReservationBody(x *xmlw, resID string, ins []*instance) {
	x.leaf("reservationId", resID)
	x.leaf("ownerId", ownerID)
	x.set("groupSet", 0, nil) // EC2 leaves it empty for instances in a VPC
	x.set("instancesSet", len(ins), func(i int) { s.writeInstance(x, ins[i]) })
}

func (s *Sim) writeInstance(x *xmlw, in *instance) {
	alive := in.State != StateTerminated
	x.leaf("instanceId", in.ID)
	x.leaf("imageId", in.ImageID)
	writeState(x, "instanceState", in.State)
	if alive {
		x.leaf("privateDnsName", privateDNS(in.Region, in.PrivateIP))
		x.leaf("dnsName", publicDNS(in.Region, in.PublicIP))
	} else {
		x.leaf("privateDnsName", "")
		x.leaf("dnsName", "")
	}
	x.leaf("reason", in.reason)
	x.int("amiLaunchIndex", int64(in.LaunchIndex))
	x.set("productCodes", 0, nil)
	x.leaf("instanceType", in.InstanceType)
	x.time("launchTime", in.LaunchedAt)
	x.elem("placement", func() {
		x.leaf("availabilityZone", in.AvailabilityZone)
		x.leaf("groupName", "")
		x.leaf("tenancy", "default")
	})
	x.elem("monitoring", func() { x.leaf("state", "disabled") })
	if alive {
		x.leaf("subnetId", in.SubnetID)
		x.leaf("vpcId", in.VpcID)
		x.leaf("privateIpAddress", in.PrivateIP)
		x.opt("ipAddress", in.PublicIP)
		x.boolean("sourceDestCheck", true)
	}
	groups := in.SecurityGroupIDs
	if !alive {
		groups = nil
	}
	x.set("groupSet", len(groups), func(i int) {
		x.leaf("groupId", groups[i])
		if g, ok := s.groups[groups[i]]; ok {
			x.leaf("groupName", g.name)
		}
	})
	if in.State == StateShuttingDown || in.State == StateTerminated {
		x.elem("stateReason", func() {
			x.leaf("code", "Client.UserInitiatedShutdown")
			x.leaf("message", "Client.UserInitiatedShutdown: User initiated shutdown")
		})
	}
	x.leaf("architecture", in.Architecture)
	x.leaf("rootDeviceType", "ebs")
	x.leaf("rootDeviceName", rootDevice)
	var vols []*volume
	if alive {
		vols = in.volumes
	}
	x.set("blockDeviceMapping", len(vols), func(i int) {
		v := vols[i]
		x.leaf("deviceName", v.DeviceName)
		x.elem("ebs", func() {
			x.leaf("volumeId", v.ID)
			x.leaf("status", "attached")
			x.time("attachTime", v.attachedAt)
			x.boolean("deleteOnTermination", v.DeleteOnTermination)
		})
	})
	x.leaf("virtualizationType", "hvm")
	x.opt("clientToken", in.ClientToken)
	x.tags(in.Tags, true)
	x.leaf("hypervisor", "xen")
	if alive {
		x.set("networkInterfaceSet", 1, func(int) { s.writeENI(x, in) })
	}
	if in.IamInstanceProfileArn != "" {
		x.elem("iamInstanceProfile", func() {
			x.leaf("arn", in.IamInstanceProfileArn)
			x.leaf("id", in.profileID)
		})
	}
	x.boolean("ebsOptimized", false)
	x.boolean("enaSupport", true)
	x.elem("cpuOptions", func() {
		it := catalogue[in.InstanceType]
		cores, threads := it.vcpus, 1
		if in.Architecture == "x86_64" && it.vcpus > 1 {
			cores, threads = it.vcpus/2, 2
		}
		x.int("coreCount", int64(cores))
		x.int("threadsPerCore", int64(threads))
	})
	x.elem("metadataOptions", func() {
		state := "applied"
		if in.State == StatePending {
			state = "pending" // EC2 applies the options as the instance starts
		}
		x.leaf("state", state)
		x.leaf("httpTokens", in.HTTPTokens)
		x.int("httpPutResponseHopLimit", int64(in.HTTPPutResponseHopLimit))
		x.leaf("httpEndpoint", in.HTTPEndpoint)
		x.leaf("httpProtocolIpv6", "disabled")
		x.leaf("instanceMetadataTags", "disabled")
	})
	x.leaf("platformDetails", "Linux/UNIX")
	x.leaf("usageOperation", "RunInstances")
	x.time("usageOperationUpdateTime", in.LaunchedAt)
}

func (s *Sim) writeENI(x *xmlw, in *instance) {
	x.leaf("networkInterfaceId", in.eniID)
	x.leaf("subnetId", in.SubnetID)
	x.leaf("vpcId", in.VpcID)
	x.leaf("description", "")
	x.leaf("ownerId", ownerID)
	x.leaf("status", "in-use")
	x.leaf("privateIpAddress", in.PrivateIP)
	x.leaf("privateDnsName", privateDNS(in.Region, in.PrivateIP))
	x.boolean("sourceDestCheck", true)
	x.set("groupSet", len(in.SecurityGroupIDs), func(i int) {
		x.leaf("groupId", in.SecurityGroupIDs[i])
		if g, ok := s.groups[in.SecurityGroupIDs[i]]; ok {
			x.leaf("groupName", g.name)
		}
	})
	x.elem("attachment", func() {
		x.leaf("attachmentId", in.attachID)
		x.int("deviceIndex", 0)
		x.leaf("status", "attached")
		x.time("attachTime", in.LaunchedAt)
		x.boolean("deleteOnTermination", true)
		x.int("networkCardIndex", 0)
	})
	if in.PublicIP != "" {
		x.elem("association", func() {
			x.leaf("publicIp", in.PublicIP)
			x.leaf("publicDnsName", publicDNS(in.Region, in.PublicIP))
			x.leaf("ipOwnerId", "amazon")
		})
	}
	x.leaf("interfaceType", "interface")
}

func writeState(x *xmlw, name, state string) {
	x.elem(name, func() {
		x.int("code", int64(stateCodes[state]))
		x.leaf("name", state)
	})
}

func privateDNS(region, ip string) string {
	if ip == "" {
		return ""
	}
	host := "ip-" + strings.ReplaceAll(ip, ".", "-")
	if region == "us-east-1" {
		return host + ".ec2.internal"
	}
	return host + "." + region + ".compute.internal"
}

func publicDNS(region, ip string) string {
	if ip == "" {
		return ""
	}
	host := "ec2-" + strings.ReplaceAll(ip, ".", "-")
	if region == "us-east-1" {
		return host + ".compute-1.amazonaws.com"
	}
	return host + "." + region + ".compute.amazonaws.com"
}

func (s *Sim) terminateInstances(c *call, x *xmlw) error {
	ids := c.p.list("InstanceId")
	if len(ids) == 0 {
		return missing("InstanceId")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensureRegion(c.region)
	ins, err := s.lookupInstances(c.region, ids)
	if err != nil {
		return err
	}
	type change struct{ id, prev, cur string }
	var changes []change
	seen := map[string]bool{}
	for _, in := range ins {
		if seen[in.ID] {
			continue
		}
		seen[in.ID] = true
		prev := in.State
		if prev == StatePending || prev == StateRunning {
			in.State = StateShuttingDown
			in.reason = "User initiated (" + time.Now().UTC().Format("2006-01-02 15:04:05") + " GMT)"
			s.emit(in)
			s.schedule(in, s.delay(latency.Terminate), func(in *instance) bool {
				s.finishTermination(in)
				return true
			})
		}
		changes = append(changes, change{in.ID, prev, in.State})
	}
	x.set("instancesSet", len(changes), func(i int) {
		x.leaf("instanceId", changes[i].id)
		writeState(x, "currentState", changes[i].cur)
		writeState(x, "previousState", changes[i].prev)
	})
	return nil
}

// finishTermination frees the addresses and deletes or detaches the volumes.
// Callers hold s.mu.
func (s *Sim) finishTermination(in *instance) {
	in.State, in.TerminatedAt = StateTerminated, time.Now()
	if sn, ok := s.subnets[in.SubnetID]; ok {
		if a, err := netip.ParseAddr(in.PrivateIP); err == nil {
			delete(sn.used, a)
		}
	}
	delete(s.publicIPs, in.PublicIP)
	for _, v := range in.volumes {
		if v.DeleteOnTermination {
			delete(s.volumes, v.ID)
			v.state = "deleted"
		} else {
			v.state, v.instanceID = "available", ""
		}
	}
}

var volumeFields = fields[*volume]{
	"volume-id":                        func(v *volume) []string { return []string{v.ID} },
	"status":                           func(v *volume) []string { return []string{v.state} },
	"encrypted":                        func(v *volume) []string { return []string{fmt.Sprint(v.Encrypted)} },
	"volume-type":                      func(v *volume) []string { return []string{v.VolumeType} },
	"size":                             func(v *volume) []string { return []string{fmt.Sprint(v.SizeGiB)} },
	"availability-zone":                func(v *volume) []string { return []string{v.az} },
	"snapshot-id":                      func(v *volume) []string { return nonEmpty(v.snapshotID) },
	"attachment.instance-id":           func(v *volume) []string { return nonEmpty(v.instanceID) },
	"attachment.device":                func(v *volume) []string { return attached(v, v.DeviceName) },
	"attachment.status":                func(v *volume) []string { return attached(v, "attached") },
	"attachment.delete-on-termination": func(v *volume) []string { return attached(v, fmt.Sprint(v.DeleteOnTermination)) },
}

func attached(v *volume, val string) []string {
	if v.instanceID == "" {
		return nil
	}
	return []string{val}
}

func (s *Sim) describeVolumes(c *call, x *xmlw) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := c.p.list("VolumeId")
	if err := noMaxWithIDs(c.p, ids, "volumeIds"); err != nil {
		return err
	}
	var items []*volume
	if len(ids) > 0 {
		for _, id := range ids {
			if !reVolumeID.MatchString(id) {
				return errf("InvalidVolumeID.Malformed", "Invalid id: \"%s\"", id)
			}
			v, ok := s.volumes[id]
			if !ok || v.region != c.region {
				return errf("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
			}
			items = append(items, v)
		}
	} else {
		for _, v := range s.volumes {
			if v.region == c.region {
				items = append(items, v)
			}
		}
	}
	items, err := applyFilters(items, parseFilters(c.p), volumeFields, func(v *volume) map[string]string { return v.Tags })
	if err != nil {
		return err
	}
	items, next, err := page(items, func(v *volume) string { return v.ID }, c.p, 5, 500)
	if err != nil {
		return err
	}
	x.set("volumeSet", len(items), func(i int) {
		v := items[i]
		x.leaf("volumeId", v.ID)
		x.int("size", int64(v.SizeGiB))
		x.leaf("snapshotId", v.snapshotID)
		x.leaf("availabilityZone", v.az)
		x.leaf("status", v.state)
		x.time("createTime", v.created)
		n := 0
		if v.instanceID != "" {
			n = 1
		}
		x.set("attachmentSet", n, func(int) {
			x.leaf("volumeId", v.ID)
			x.leaf("instanceId", v.instanceID)
			x.leaf("device", v.DeviceName)
			x.leaf("status", "attached")
			x.time("attachTime", v.attachedAt)
			x.boolean("deleteOnTermination", v.DeleteOnTermination)
		})
		x.leaf("volumeType", v.VolumeType)
		if v.iops > 0 {
			x.int("iops", int64(v.iops))
		}
		if v.throughput > 0 {
			x.int("throughput", int64(v.throughput))
		}
		x.boolean("encrypted", v.Encrypted)
		x.opt("kmsKeyId", v.KmsKeyID)
		x.tags(v.Tags, true)
		x.boolean("multiAttachEnabled", false)
	})
	x.opt("nextToken", next)
	return nil
}
