package ec2sim

import (
	"fmt"
	"maps"
	"time"
)

// volume is a simulated EBS volume.
type volume struct {
	Volume
	region, az, state   string // state: in-use, available
	instanceID          string // attached instance, "" once detached
	snapshotID          string
	iops, throughput    int
	created, attachedAt time.Time
}

func (v *volume) snapshot() Volume {
	out := v.Volume
	out.Region, out.State = v.region, v.state
	out.Tags = maps.Clone(v.Tags)
	if out.Tags == nil {
		out.Tags = map[string]string{}
	}
	return out
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
	items, err := selection[*volume]{idParam: "VolumeId", listName: "volumeIds", idForm: reVolumeID,
		malformed: func(id string) error { return errf("InvalidVolumeID.Malformed", "Invalid id: \"%s\"", id) },
		missing: func(ids []string) error {
			return errf("InvalidVolume.NotFound", "The volume '%s' does not exist.", ids[0])
		},
	}.pick(c, s.volumes, func(v *volume) bool { return v.region == c.region })
	if err != nil {
		return err
	}
	items, next, err := listing[*volume]{fields: volumeFields, tags: func(v *volume) map[string]string { return v.Tags },
		key: func(v *volume) string { return v.ID }, minMax: 5, maxMax: 500}.apply(c, items)
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

// SetEBSDefaults sets a region's EBS encryption settings (EC2
// EnableEbsEncryptionByDefault, ModifyEbsDefaultKmsKeyId): keyArn "" is the
// AWS managed key; usable false means the key's policy and grants do not let
// EC2 use it for the launching principal, so launches that encrypt with it
// terminate at once.
func (s *Sim) SetEBSDefaults(region string, byDefault bool, keyArn string, usable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensureRegion(region).ebs = ebsDefaults{byDefault: byDefault, keyArn: keyArn, keyUsable: usable || keyArn == ""}
}

// KMSKey is a customer managed key as far as EC2 cares: whether its key
// policy and grants let EC2 use it for the launching principal, and its
// tags (which IAM policies may check).
type KMSKey struct {
	Usable bool
	Tags   map[string]string
}

// SetKMSKey makes (or changes) a customer managed key, by ARN.
func (s *Sim) SetKMSKey(arn string, k KMSKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kmsKeys[arn] = k
}

// KMSKeyTags are a key's tags (nil if the simulator knows no such key).
func (s *Sim) KMSKeyTags(arn string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.kmsKeys[arn]
	if !ok {
		return nil
	}
	return maps.Clone(k.Tags)
}

func (s *Sim) getEbsEncryptionByDefault(c *call, x *xmlw) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	x.boolean("ebsEncryptionByDefault", s.ensureRegion(c.region).ebs.byDefault)
	x.leaf("sseType", "sse-ebs")
	return nil
}

func (s *Sim) getEbsDefaultKmsKeyID(c *call, x *xmlw) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	x.leaf("kmsKeyId", s.ensureRegion(c.region).ebs.key(c.region))
	return nil
}
