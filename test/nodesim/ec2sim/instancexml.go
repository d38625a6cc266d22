package ec2sim

import (
	"strings"
)

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
		code, msg := in.stateReason[0], in.stateReason[1]
		if code == "" {
			code, msg = "Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown"
		}
		x.elem("stateReason", func() {
			x.leaf("code", code)
			x.leaf("message", msg)
		})
	}
	x.leaf("architecture", in.Architecture)
	x.leaf("rootDeviceType", "ebs")
	x.leaf("rootDeviceName", in.RootDevice)
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
