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
	// Needs are the MicroK8s addons it needs enabled first, and Why.
	Needs []string
	Why   string
	// Rollouts ("deployment/x", "statefulset/y") and Jobs ("job/z") must
	// be ready (complete) within Timeout seconds of the apply.
	Rollouts, Jobs []string
	Timeout        int
	file           string
}

// shipped is every addon mecd ships, by name.
var shipped = []Addon{edgex}

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

// Split separates a spec's addons into MicroK8s' own and mecd's, each in
// the spec's order.
func Split(all []string) (microk8s, own []string) {
	for _, a := range all {
		if _, ok := Get(a); ok {
			own = append(own, a)
		} else {
			microk8s = append(microk8s, a)
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
	fmt.Fprintf(&b, "addon_%s() {\n  apply_addon %s %s %d '%s' '%s' <<'MANIFEST'\n",
		strings.ReplaceAll(a.Name, "-", "_"), a.Name, a.Namespace, a.Timeout,
		strings.Join(a.Rollouts, " "), strings.Join(a.Jobs, " "))
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\nMANIFEST\n}\n")
	return b.String()
}
