package ec2sim

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// instanceType is one catalogue entry, with AWS's published numbers.
type instanceType struct {
	name       string
	arch       []string
	vcpus      int
	memMiB     int
	burstable  bool
	clockGHz   float64
	processor  string
	currentGen bool
}

// catalogue lists the instance types the simulator knows: the families mecd
// is used with (t4g, t3, t3a, m7g, c7g, m6g, c6g, m6i) and m1.small, EC2's
// default when RunInstances names no type.
var catalogue = func() map[string]instanceType {
	m := map[string]instanceType{}
	add := func(family string, arch string, burstable bool, clock float64, proc string, sizes []string, vcpus, mem []int) {
		for i, size := range sizes {
			name := family + "." + size
			m[name] = instanceType{name: name, arch: []string{arch}, vcpus: vcpus[i], memMiB: mem[i],
				burstable: burstable, clockGHz: clock, processor: proc, currentGen: true}
		}
	}
	tSizes := []string{"nano", "micro", "small", "medium", "large", "xlarge", "2xlarge"}
	tCPU := []int{2, 2, 2, 2, 2, 4, 8}
	tMem := []int{512, 1024, 2048, 4096, 8192, 16384, 32768}
	add("t4g", "arm64", true, 2.5, "AWS", tSizes, tCPU, tMem)
	add("t3", "x86_64", true, 2.5, "Intel", tSizes, tCPU, tMem)
	add("t3a", "x86_64", true, 2.2, "AMD", tSizes, tCPU, tMem)
	gSizes := []string{"medium", "large", "xlarge", "2xlarge", "4xlarge"}
	gCPU := []int{1, 2, 4, 8, 16}
	add("m7g", "arm64", false, 2.6, "AWS", gSizes, gCPU, []int{4096, 8192, 16384, 32768, 65536})
	add("c7g", "arm64", false, 2.6, "AWS", gSizes, gCPU, []int{2048, 4096, 8192, 16384, 32768})
	add("m6g", "arm64", false, 2.5, "AWS", gSizes, gCPU, []int{4096, 8192, 16384, 32768, 65536})
	add("c6g", "arm64", false, 2.5, "AWS", gSizes, gCPU, []int{2048, 4096, 8192, 16384, 32768})
	add("m6i", "x86_64", false, 3.5, "Intel", []string{"large", "xlarge", "2xlarge", "4xlarge"},
		[]int{2, 4, 8, 16}, []int{8192, 16384, 32768, 65536})
	m["m1.small"] = instanceType{name: "m1.small", arch: []string{"i386", "x86_64"}, vcpus: 1, memMiB: 1740,
		clockGHz: 0, processor: "Intel"}
	return m
}()

// image is a registered AMI.
type image struct {
	id, region, arch string
	rootDevice       string
	created          time.Time
}

// ubuntuRoot is the root device name of Ubuntu's AMIs (Canonical's), the
// ones mecd launches by default; Amazon Linux's is /dev/xvda.
const ubuntuRoot = "/dev/sda1"

// defaultRootGiB is the root volume size of every registered AMI's snapshot.
const defaultRootGiB = 8

// RegisterImage makes an AMI known to RunInstances and DescribeImages in a
// region, with its architecture ("arm64" or "x86_64").
func (s *Sim) RegisterImage(region, imageID, architecture string) {
	s.RegisterImageWithRoot(region, imageID, architecture, ubuntuRoot)
}

// RegisterImageWithRoot registers an AMI whose root device has another name
// (Amazon Linux's /dev/xvda, say).
func (s *Sim) RegisterImageWithRoot(region, imageID, architecture, rootDevice string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.images[region] == nil {
		s.images[region] = map[string]*image{}
	}
	s.images[region][imageID] = &image{id: imageID, region: region, arch: architecture, rootDevice: rootDevice, created: time.Now()}
}

func snapshotID(imageID string) string {
	return "snap-" + strings.TrimPrefix(imageID, "ami-")
}

func (s *Sim) describeImages(c *call, x *xmlw) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	items, err := selection[*image]{idParam: "ImageId", listName: "imageIds", idForm: reImageID,
		malformed: func(id string) error {
			return errf("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", id)
		},
		missing: func(ids []string) error {
			return errf("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", strings.Join(ids, ", "))
		},
	}.pick(c, s.images[c.region], func(*image) bool { return true })
	if err != nil {
		return err
	}
	items, next, err := listing[*image]{fields: fields[*image]{
		"image-id":         func(i *image) []string { return []string{i.id} },
		"architecture":     func(i *image) []string { return []string{i.arch} },
		"state":            func(*image) []string { return []string{"available"} },
		"root-device-type": func(*image) []string { return []string{"ebs"} },
		"name":             func(i *image) []string { return []string{imageName(i)} },
	}, key: func(i *image) string { return i.id }, minMax: 5, maxMax: 1000}.apply(c, items)
	if err != nil {
		return err
	}
	x.set("imagesSet", len(items), func(i int) {
		img := items[i]
		x.leaf("imageId", img.id)
		x.leaf("imageLocation", "ec2sim/"+imageName(img))
		x.leaf("imageState", "available")
		x.leaf("imageOwnerId", ownerID)
		x.leaf("creationDate", img.created.UTC().Format(timeFormat))
		x.boolean("isPublic", true)
		x.leaf("architecture", img.arch)
		x.leaf("imageType", "machine")
		x.leaf("name", imageName(img))
		x.leaf("rootDeviceType", "ebs")
		x.leaf("rootDeviceName", img.rootDevice)
		x.set("blockDeviceMapping", 1, func(int) {
			x.leaf("deviceName", img.rootDevice)
			x.elem("ebs", func() {
				x.leaf("snapshotId", snapshotID(img.id))
				x.int("volumeSize", defaultRootGiB)
				x.boolean("deleteOnTermination", true)
				x.leaf("volumeType", "gp2")
				x.boolean("encrypted", false)
			})
		})
		x.leaf("virtualizationType", "hvm")
		x.leaf("hypervisor", "xen")
		x.boolean("enaSupport", true)
		x.leaf("platformDetails", "Linux/UNIX")
		x.leaf("usageOperation", "RunInstances")
	})
	x.opt("nextToken", next)
	return nil
}

func imageName(i *image) string { return "ec2sim-" + i.arch + "-" + i.id }

func (s *Sim) describeInstanceTypes(c *call, x *xmlw) error {
	items, err := selection[instanceType]{idParam: "InstanceType", listName: "instanceTypes",
		missing: func(names []string) error {
			return errf("InvalidInstanceType", "The following supplied instance types do not exist: [%s]", strings.Join(names, ", "))
		},
	}.pick(c, catalogue, func(instanceType) bool { return true })
	if err != nil {
		return err
	}
	items, next, err := listing[instanceType]{fields: fields[instanceType]{
		"instance-type":                               func(t instanceType) []string { return []string{t.name} },
		"processor-info.supported-architecture":       func(t instanceType) []string { return t.arch },
		"vcpu-info.default-vcpus":                     func(t instanceType) []string { return []string{fmt.Sprint(t.vcpus)} },
		"memory-info.size-in-mib":                     func(t instanceType) []string { return []string{fmt.Sprint(t.memMiB)} },
		"current-generation":                          func(t instanceType) []string { return []string{fmt.Sprint(t.currentGen)} },
		"burstable-performance-supported":             func(t instanceType) []string { return []string{fmt.Sprint(t.burstable)} },
		"processor-info.manufacturer":                 func(t instanceType) []string { return []string{t.processor} },
		"supported-virtualization-type":               func(instanceType) []string { return []string{"hvm"} },
		"processor-info.sustained-clock-speed-in-ghz": func(t instanceType) []string { return []string{fmt.Sprint(t.clockGHz)} },
	}, key: func(t instanceType) string { return t.name }, minMax: 5, maxMax: 100}.apply(c, items)
	if err != nil {
		return err
	}
	x.set("instanceTypeSet", len(items), func(i int) {
		t := items[i]
		x.leaf("instanceType", t.name)
		x.boolean("currentGeneration", t.currentGen)
		x.boolean("freeTierEligible", t.name == "t3.micro" || t.name == "t4g.micro")
		x.set("supportedUsageClasses", 2, func(j int) { x.raw(escape([]string{"on-demand", "spot"}[j])) })
		x.set("supportedRootDeviceTypes", 1, func(int) { x.raw("ebs") })
		x.set("supportedVirtualizationTypes", 1, func(int) { x.raw("hvm") })
		x.boolean("bareMetal", false)
		x.leaf("hypervisor", "nitro")
		x.elem("processorInfo", func() {
			x.set("supportedArchitectures", len(t.arch), func(j int) { x.raw(escape(t.arch[j])) })
			if t.clockGHz > 0 {
				x.leaf("sustainedClockSpeedInGhz", fmt.Sprint(t.clockGHz))
			}
			x.leaf("manufacturer", t.processor)
		})
		x.elem("vCpuInfo", func() {
			x.int("defaultVCpus", int64(t.vcpus))
			cores, threads := t.vcpus, 1
			if slices.Contains(t.arch, "x86_64") && t.vcpus > 1 {
				cores, threads = t.vcpus/2, 2
			}
			x.int("defaultCores", int64(cores))
			x.int("defaultThreadsPerCore", int64(threads))
		})
		x.elem("memoryInfo", func() { x.int("sizeInMiB", int64(t.memMiB)) })
		x.boolean("instanceStorageSupported", false)
		x.boolean("burstablePerformanceSupported", t.burstable)
		x.boolean("hibernationSupported", false)
		x.boolean("dedicatedHostsSupported", !t.burstable)
		x.boolean("autoRecoverySupported", true)
		x.set("supportedBootModes", 1, func(int) {
			if slices.Contains(t.arch, "arm64") {
				x.raw("uefi")
			} else {
				x.raw("legacy-bios")
			}
		})
	})
	x.opt("nextToken", next)
	return nil
}
