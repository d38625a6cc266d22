package ec2sim

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mecd/mecd/test/nodesim/fidelity"
	"github.com/mecd/mecd/test/nodesim/latency"
)

// instance is a simulated instance: its public record plus what only the
// simulator needs. Fields change under s.mu.
type instance struct {
	Instance
	// visibleAt is when Describe and Terminate first see the instance
	// (fidelity.InstanceVisibility); RunInstances' own answer has it at once.
	visibleAt                  time.Time
	eniID, attachID, profileID string
	reason                     string
	stateReason                [2]string // code, message: why EC2 ended it
	volumes                    []*volume
	timer                      *time.Timer
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
	if err := s.profileUsable(sp.profileArn); err != nil {
		return err
	}
	img, ok := s.images[c.region][sp.imageID]
	if !ok {
		return errf("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", sp.imageID)
	}
	// A mapping names a device: only the AMI's root device name resizes or
	// encrypts the root volume; any other name adds a volume.
	if sp.devices, err = parseDevices(c.p, sp.imageID, img.rootDevice); err != nil {
		return err
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
		unusableKey := ""
		in := &instance{
			Instance: Instance{
				ID: s.newID("i"), Region: c.region, State: StatePending, InstanceType: sp.instanceType,
				ImageID: sp.imageID, Architecture: img.arch, RootDevice: img.rootDevice, PrivateIP: ip.String(), SubnetID: sn.id, VpcID: sn.vpcID,
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
		if s.fidelity.Happens(fidelity.InstanceVisibility) {
			in.visibleAt = now.Add(s.delay(latency.Visibility))
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
			if d.name == img.rootDevice {
				v.snapshotID = snapshotID(sp.imageID)
			}
			if r.ebs.byDefault {
				v.Encrypted = true // EBS encryption by default encrypts every new volume
			}
			if v.Encrypted && v.KmsKeyID == "" {
				v.KmsKeyID = r.ebs.key(c.region)
			}
			if v.Encrypted && v.KmsKeyID == r.ebs.keyArn && !r.ebs.keyUsable {
				unusableKey = v.KmsKeyID
			}
			if k, ok := s.kmsKeys[v.KmsKeyID]; ok && v.Encrypted && !k.Usable {
				unusableKey = v.KmsKeyID // the spec's own key, same end
			}
			v.fillPerformance()
			s.volumes[v.ID] = v
			in.volumes = append(in.volumes, v)
		}
		s.instances[in.ID] = in
		l.instanceIDs = append(l.instanceIDs, in.ID)
		s.emit(in)
		if unusableKey != "" {
			// EC2 cannot use the volumes' KMS key for the launching
			// principal: the instance goes from pending to terminated (EC2
			// User Guide, "Instance terminates immediately":
			// Client.InternalError: Client error on launch).
			s.schedule(in, s.delay(latency.Boot), func(in *instance) bool {
				if in.State != StatePending {
					return false
				}
				s.finishTermination(in)
				in.reason = "Server.InternalError"
				in.stateReason = [2]string{"Client.InternalError", "Client.InternalError: Client error on launch"}
				return true
			})
			continue
		}
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
	now := time.Now()
	for _, id := range ids {
		in, ok := s.instances[id]
		if !ok || in.Region != region || now.Before(in.visibleAt) {
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
		now := time.Now()
		for _, in := range s.instances {
			if in.Region == c.region && !now.Before(in.visibleAt) {
				items = append(items, in)
			}
		}
	}
	items, next, err := listing[*instance]{fields: instanceFields, tags: func(in *instance) map[string]string { return in.Tags },
		key: func(in *instance) string { return in.ID }, minMax: 5, maxMax: 1000}.apply(c, items)
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

// ProfileCreated tells the simulator an instance profile was just created
// (the front sees IAM's CreateInstanceProfile): with
// fidelity.ProfilePropagation it is not usable by RunInstances until
// latency.ProfilePropagation has passed.
func (s *Sim) ProfileCreated(name string) {
	if !s.fidelity.Happens(fidelity.ProfilePropagation) {
		return
	}
	at := time.Now().Add(s.delay(latency.ProfilePropagation))
	s.mu.Lock()
	s.profilesReadyAt[name] = at
	s.mu.Unlock()
}

// profileUsable refuses a profile IAM has not propagated to EC2 yet, as
// RunInstances does. Callers hold s.mu.
func (s *Sim) profileUsable(arn string) error {
	if arn == "" {
		return nil
	}
	name := arn[strings.LastIndex(arn, "/")+1:]
	if at, ok := s.profilesReadyAt[name]; ok && time.Now().Before(at) {
		return errf("InvalidParameterValue", "Value (%s) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN", arn)
	}
	return nil
}
