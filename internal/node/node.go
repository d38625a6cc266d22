package node

import (
	"embed"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/mecd/mecd/internal/addons"
	"github.com/mecd/mecd/internal/mec"
)

//go:embed scripts/*.sh
var scripts embed.FS

// Script names: each is the node step (internal/mec) it runs.
const (
	Install  = mec.StepInstall
	Join     = mec.StepJoin
	Reset    = mec.StepReset
	Finalize = mec.StepFinalize
	// Shrink takes a scale's leaving nodes out of the cluster (on node 0).
	Shrink = mec.StepShrink
	// Boot is the user data: cloud-init runs it at first boot.
	Boot = "boot"
)

// safeValue is what a script input may contain: ids, IPs, channels, paths,
// addon names, numbers. Nothing that needs quoting beyond single quotes, and
// never a secret (secrets are read from Parameter Store by the node).
var safeValue = regexp.MustCompile(`^[A-Za-z0-9 ._:/,=@+-]*$`)

var varName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// Render returns the full script: strict mode, the inputs, the shared
// helpers, then the named script.
func Render(name string, vars map[string]string) (string, error) {
	body, err := scripts.ReadFile("scripts/" + name + ".sh")
	if err != nil {
		return "", fmt.Errorf("render %s: no such script", name)
	}
	lib, err := scripts.ReadFile("scripts/lib.sh")
	if err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("#!/bin/bash\n# mecd node script: " + name + "\nset -euo pipefail\n")
	for _, k := range keys {
		v := vars[k]
		if !varName.MatchString(k) {
			return "", fmt.Errorf("render %s: bad variable name %q", name, k)
		}
		if !safeValue.MatchString(v) {
			return "", fmt.Errorf("render %s: value of %s has characters a script input may not have", name, k)
		}
		fmt.Fprintf(&b, "%s='%s'\n", k, v)
	}
	if name == Boot {
		// User data is at most 16 KB: the helpers go without their
		// comment lines (bash, and the python and YAML inside, skip them).
		lib = withoutCommentLines(lib)
	}
	b.Write(lib)
	b.WriteString("\n")
	if name != Boot {
		// The storage helpers: never needed at first boot.
		storage, err := scripts.ReadFile("scripts/storage.sh")
		if err != nil {
			return "", fmt.Errorf("render %s: %w", name, err)
		}
		b.Write(storage)
		b.WriteString("\n")
	}
	for _, name := range strings.Fields(vars["OWN_ADDONS"]) {
		a, ok := addons.Get(name)
		if !ok {
			return "", fmt.Errorf("render %s: no addon %q of mecd's own", name, name)
		}
		b.WriteString(a.Script())
	}
	b.Write(body)
	return b.String(), nil
}

// withoutCommentLines drops the lines whose first non-blank is "#".
func withoutCommentLines(src []byte) []byte {
	var out []byte
	for _, line := range strings.SplitAfter(string(src), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			out = append(out, line...)
		}
	}
	return out
}

// Names lists the scripts (for tests such as shellcheck).
func Names() []string { return []string{Boot, Install, Join, Reset, Finalize, Shrink} }

// Markers parses the progress markers a script prints: "::mecd-step NAME START_MS END_MS".
type Marker struct {
	Step         string
	StartMs, End int64
}

// ParseOutput reads the markers and key values ("::mecd-check HASH") from a script's stdout.
func ParseOutput(stdout string) (steps []Marker, values map[string]string) {
	values = map[string]string{}
	for _, line := range strings.Split(stdout, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "::mecd-") {
			continue
		}
		if f[0] == "::mecd-step" && len(f) == 4 {
			var m Marker
			m.Step = f[1]
			_, err1 := fmt.Sscan(f[2], &m.StartMs)
			_, err2 := fmt.Sscan(f[3], &m.End)
			if err1 == nil && err2 == nil {
				steps = append(steps, m)
			}
			continue
		}
		if len(f) == 2 {
			values[strings.TrimPrefix(f[0], "::mecd-")] = f[1]
		}
	}
	return steps, values
}

// beforeJoins are the addons node 0 may enable while the other nodes join:
// each only applies cluster-wide manifests, or sets a kubelet argument that
// every node already has from its launch configuration (boot.sh,
// write_launch_config) or from MicroK8s' defaults, so a node that joins
// while the addon is enabled misses nothing. Sources, canonical/
// microk8s-core-addons addons/<name>/enable: dns sets --cluster-domain and
// --cluster-dns (the launch configuration sets both, as MicroK8s' own
// microk8s.default.yaml does, which ours displaces: snap/hooks/install uses
// the first configuration found); metrics-server sets
// --authentication-token-webhook=true (microk8s-resources/default-args/
// kubelet has it); hostpath-storage, ingress and cert-manager only apply
// manifests. A joining node takes node 0's kubelet arguments when its join
// is served (microk8s-cluster-agent pkg/api/v2/join.go), and the nodes
// joined before get an argument's change from refresh_opt_in_config
// (distributed_op.py). The others change arguments a join does not copy
// (rbac: kube-apiserver's; observability: the scheduler's, the controller
// manager's, kube-proxy's) and wait for every node to have joined.
var beforeJoins = map[string]bool{"dns": true, "metrics-server": true, "hostpath-storage": true, "ingress": true, "cert-manager": true}

// SplitAddons splits addons, in order, into those node 0 enables while the
// other nodes join and those it enables once they all joined.
func SplitAddons(addons []string) (early, late []string) {
	for _, a := range addons {
		if beforeJoins[a] {
			early = append(early, a)
		} else {
			late = append(late, a)
		}
	}
	return early, late
}

// ServiceDNS is the DNS addon's service address in MicroK8s' default
// service range (10.152.183.0/24), which mecd does not change.
const ServiceDNS = "10.152.183.10"

// withDNS are the addons that enable dns: dns itself, and those whose
// enable script enables it first (canonical/microk8s-core-addons
// addons/cert-manager/enable: `$ENABLE dns`; addons/observability/enable:
// microk8s-enable.wrapper core/dns).
var withDNS = []string{"dns", "cert-manager", "observability"}

// ClusterDNS is the CLUSTER_DNS input of the scripts that install MicroK8s:
// the kubelet's --cluster-dns when an addon enables dns (ServiceDNS), else
// "". Without the addon nothing answers there, and the kubelet gives pods
// the node's resolver instead.
func ClusterDNS(addons []string) string {
	if slices.ContainsFunc(addons, func(a string) bool { return slices.Contains(withDNS, a) }) {
		return ServiceDNS
	}
	return ""
}
