// Package addons owns the addons mecd ships itself, beside MicroK8s' own:
// their manifests, embedded in the binary, and how node 0 tells each is
// ready (rollouts, which wait for the pods' readiness probes, and jobs).
package addons

import (
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
)

//go:embed manifests/*.yaml
var manifests embed.FS

// Addon is one addon mecd ships.
type Addon struct {
	Name      string
	Namespace string
	// Needs are the addons it needs enabled first, and Why: each entry is
	// met by any one of its addons ("hostpath-storage|replicated-storage").
	Needs []string
	Why   string
	// MinNodes and DataVolumes: the MEC it needs (0: any), and Why not.
	MinNodes    int
	DataVolumes bool
	NeedsWhy    string
	// Rollouts ("deployment/x", "statefulset/y", "daemonset/z") and Jobs
	// ("job/z") must be ready (complete) within Timeout seconds of the
	// apply.
	Rollouts, Jobs []string
	// Made are rollouts the addon's own components create at run time
	// (not in the manifest), waited for after Rollouts.
	Made []string
	// Check names a node-script function (storage.sh) run once the
	// rollouts are ready, until the same deadline: it prints what of the
	// addon's own state is not ready yet, nothing once all is.
	Check   string
	Timeout int
	// Upstream: the manifest is the project's own release manifest (with
	// the changes its header lists), whose pods set no memory requests;
	// the fit check's figure for it is an estimate.
	Upstream bool
	file     string
}

// shipped is every addon mecd ships, in the order node 0 applies them:
// storage before the workloads that claim it.
var shipped = []Addon{replicatedStorage, edgex}

// Satisfied reports whether the spec's addons meet need, one of Needs.
func Satisfied(need string, have []string) bool {
	return slices.ContainsFunc(strings.Split(need, "|"), func(a string) bool { return slices.Contains(have, a) })
}

// Get returns the shipped addon of that name.
func Get(name string) (Addon, bool) {
	i := slices.IndexFunc(shipped, func(a Addon) bool { return a.Name == name })
	if i < 0 {
		return Addon{}, false
	}
	return shipped[i], true
}

// Names lists the shipped addons.
func Names() []string {
	out := make([]string, len(shipped))
	for i, a := range shipped {
		out[i] = a.Name
	}
	return out
}

// Split separates a spec's addons into MicroK8s' own, in the spec's order,
// and mecd's, in the order they are applied (shipped).
func Split(all []string) (microk8s, own []string) {
	for _, a := range all {
		if _, ok := Get(a); !ok {
			microk8s = append(microk8s, a)
		}
	}
	for _, a := range shipped {
		if slices.Contains(all, a.Name) {
			own = append(own, a.Name)
		}
	}
	return microk8s, own
}

// Manifest is the addon's manifest, as embedded.
func (a Addon) Manifest() []byte {
	b, err := manifests.ReadFile("manifests/" + a.file)
	if err != nil {
		panic(fmt.Sprintf("addon %s: manifest %s not embedded: %v", a.Name, a.file, err))
	}
	return b
}

// Script is the bash function that applies the addon on node 0 and waits
// for it (lib.sh apply_addon), its manifest inline, gzipped and base64
// encoded: the whole command must stay under SSM's 64 KB document size.
func (a Addon) Script() string {
	var gz bytes.Buffer
	w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	_, _ = w.Write(a.Manifest())
	_ = w.Close()
	enc := base64.StdEncoding.EncodeToString(gz.Bytes())
	var b strings.Builder
	fmt.Fprintf(&b, "addon_%s() {\n  apply_addon %s %s %d '%s' '%s' '%s' <<'MANIFEST'\n",
		strings.ReplaceAll(a.Name, "-", "_"), a.Name, a.Namespace, a.Timeout,
		strings.Join(slices.Concat(a.Rollouts, a.Made), " "), strings.Join(a.Jobs, " "), a.Check)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\nMANIFEST\n}\n")
	return b.String()
}
