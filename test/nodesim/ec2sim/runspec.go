package ec2sim

import (
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
)

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
	for _, k := range slices.Sorted(maps.Keys(p.v)) {
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
func parseDevices(p params, imageID, rootDevice string) ([]deviceSpec, error) {
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
