package spec

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Footprint is what one part of a node needs in memory, in MiB, and where
// the figure comes from: a published figure where there is one, else the
// estimate and why.
type Footprint struct {
	MiB    int
	Source string
}

// Footprints is the one table the fit check reads: MicroK8s, the OS and the
// room left for workloads, then each addon. Addons whose manifests set no
// memory request have an estimate, said so; all of an addon's pods are
// counted on one node, since nothing stops the scheduler from putting them
// there (they request little or nothing).
var Footprints = map[string]Footprint{
	fitMicroK8s: {515, `MicroK8s "runs in as little as 540MB of memory" (microk8s.io/docs/getting-started)`},
	fitEviction: {100, "the kubelet evicts below memory.available 100Mi (microk8s-resources/default-args/kubelet)"},
	fitOS:       {256, "Ubuntu 24.04 server, snapd and the SSM agent idle: an estimate, no published figure"},
	fitWorkload: {512, "room for the MEC's own workloads: mecd's choice"},

	"dns":              {170, "CoreDNS limit 170Mi (microk8s-core-addons addons/dns/coredns.yaml)"},
	"hostpath-storage": {32, "hostpath-provisioner sets no request: an estimate"},
	"ingress":          {128, "Traefik (chart 37.4.0) sets no request: an estimate"},
	"metrics-server":   {200, "metrics-server request 200Mi (addons/metrics-server/metrics-server.yaml)"},
	"cert-manager":     {192, "cert-manager v1.19.1's 3 pods set no request: an estimate of 64Mi each"},
	"rbac":             {0, "no pods: an API server flag"},
	// The observability addon's charts set no requests; kube-prometheus-stack's
	// own example request for Prometheus is 400Mi. The rest is estimated:
	// Grafana, Loki and Tempo 256Mi each, Alertmanager, the operator and
	// kube-state-metrics 64Mi each, Promtail 96Mi, node-exporter 32Mi.
	"edgex": {512, "internal/addons manifests/edgex.yaml: its containers' memory requests, 432Mi, rounded up (EdgeX publishes no per-service figure)"},
	// Longhorn sets no requests either. Per node: longhorn-manager, the
	// V1 instance manager, the engine image and the CSI plugin; on some
	// node, the UI (2 replicas), the driver deployer and 4 CSI sidecar
	// Deployments (3 replicas each). Estimated at 128Mi for the manager
	// and the instance manager, 32Mi for each other pod, as if all the
	// cluster-wide ones landed on one node.
	"replicated-storage": {768, "Longhorn 1.12.1 (manifests/longhorn.yaml) sets no requests: an estimate; Longhorn publishes 4 GiB per node as its minimum"},
	"observability":      {1536, "kube-prometheus-stack 77.6.2, loki-stack 2.10.3, tempo 1.24.1: Prometheus 400Mi (the chart's example request), the rest estimated"},
}

// Fixed parts of a node's footprint, keys of Footprints.
const (
	fitMicroK8s = "(microk8s)"
	fitEviction = "(eviction threshold)"
	fitOS       = "(os and agents)"
	fitWorkload = "(workloads)"
)

// NeedMiB is the memory a node of a MEC with these addons needs.
func NeedMiB(addons []string) int {
	n := 0
	for _, k := range []string{fitMicroK8s, fitEviction, fitOS, fitWorkload} {
		n += Footprints[k].MiB
	}
	for _, a := range addons {
		n += Footprints[a].MiB
	}
	return n
}

// Instance memory as EC2 publishes it (EC2 instance types: general purpose,
// compute optimized, memory optimized). Burstable types have their own
// table; m, c and r families have 4, 2 and 8 GiB per vCPU.
var (
	burstableGiB = []struct {
		size string
		gib  float64
	}{{"nano", 0.5}, {"micro", 1}, {"small", 2}, {"medium", 4}, {"large", 8}, {"xlarge", 16}, {"2xlarge", 32}}
	burstable   = regexp.MustCompile(`^t[34][a-z]*$`)
	perVCPU     = map[byte]float64{'m': 4, 'c': 2, 'r': 8}
	sizedFamily = regexp.MustCompile(`^[mcr][5-8][a-z]*$`)
	vcpus       = []struct {
		size string
		n    int
	}{{"medium", 1}, {"large", 2}, {"xlarge", 4}, {"2xlarge", 8}, {"4xlarge", 16}, {"8xlarge", 32}}
)

// memoryMiB is an instance type's memory, and the sizes of its family from
// the smallest, each with its memory; ok is false for a family the table
// does not know (the check is then left to EC2's own refusal or the
// node's).
func memoryMiB(instanceType string) (mib int, sizes []string, sizeMiB []int, ok bool) {
	family, _, found := strings.Cut(instanceType, ".")
	if !found {
		return 0, nil, nil, false
	}
	switch {
	case burstable.MatchString(family):
		for _, b := range burstableGiB {
			sizes, sizeMiB = append(sizes, family+"."+b.size), append(sizeMiB, int(b.gib*1024))
		}
	case sizedFamily.MatchString(family):
		for _, v := range vcpus {
			if v.size == "medium" && !strings.Contains(family, "g") {
				continue // only Graviton families have a medium size
			}
			sizes, sizeMiB = append(sizes, family+"."+v.size), append(sizeMiB, int(float64(v.n)*perVCPU[family[0]]*1024))
		}
	default:
		return 0, nil, nil, false
	}
	i := slices.Index(sizes, instanceType)
	if i < 0 {
		return 0, nil, nil, false
	}
	return sizeMiB[i], sizes, sizeMiB, true
}

// checkFit returns what to say when the addons will not fit the instance
// type's memory, as this table knows it, or "".
func checkFit(instanceType string, addons []string) string {
	have, sizes, sizeMiB, ok := memoryMiB(instanceType)
	if !ok {
		return ""
	}
	return fitMessage(instanceType, have, sizes, sizeMiB, addons)
}

// FitMessage is checkFit with the instance type's memory as EC2 reports it
// (DescribeInstanceTypes MemoryInfo.SizeInMiB), for a family the table does
// not know: "" when the addons fit.
func FitMessage(instanceType string, haveMiB int, addons []string) string {
	return fitMessage(instanceType, haveMiB, nil, nil, addons)
}

// fitMessage says what does not fit and the fix: the smallest size of the
// family that fits when the family's sizes are known, else the memory to
// look for.
func fitMessage(instanceType string, have int, sizes []string, sizeMiB []int, addons []string) string {
	need := NeedMiB(addons)
	if need <= have {
		return ""
	}
	fix := fmt.Sprintf("an instanceType with at least %d MiB", need)
	for i, m := range sizeMiB {
		if m >= need {
			fix = "instanceType " + sizes[i] + " or larger"
			break
		}
	}
	what := "MicroK8s with room for workloads"
	var heavy []string
	for _, a := range addons {
		if Footprints[a].MiB > 0 {
			heavy = append(heavy, a+" "+strconv.Itoa(Footprints[a].MiB))
		}
	}
	if len(heavy) > 0 {
		what += " and the addons " + strings.Join(heavy, ", ") + " (MiB)"
	}
	return fmt.Sprintf("will not fit %s's %d MiB: %s need about %d MiB; choose %s, or fewer addons",
		instanceType, have, what, need, fix)
}
