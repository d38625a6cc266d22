package ssmsim

import (
	"embed"
	"fmt"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// The addon repositories MicroK8s 1.35 ships: the published addons.yaml of
// canonical/microk8s-core-addons and canonical/microk8s-community-addons,
// branch 1.35, unchanged (testdata/addons/SOURCE.md names the commits).
// `microk8s enable` knows exactly these; an addon in neither fails as
// MicroK8s fails (scripts/wrappers/common/utils.py, parse_xable_single_arg:
// "Addon X was not found in any repository", exit 1).
//
//go:embed testdata/addons/core-1.35.yaml testdata/addons/community-1.35.yaml
var addonFiles embed.FS

type addonInfo struct {
	name, repo, desc string
	archs            []string // supported_architectures: Kubernetes names (arm64, amd64)
}

// addonCatalog is every addon of both repositories, as get_available_addons
// lists them (utils.py): by repository, then name.
var addonCatalog = func() []addonInfo {
	var out []addonInfo
	for _, repo := range []string{"core", "community"} {
		b, err := addonFiles.ReadFile("testdata/addons/" + repo + "-1.35.yaml")
		if err != nil {
			panic(err)
		}
		var doc struct {
			Addons struct {
				Addons []struct {
					Name          string   `yaml:"name"`
					Description   string   `yaml:"description"`
					Architectures []string `yaml:"supported_architectures"`
				} `yaml:"addons"`
			} `yaml:"microk8s-addons"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			panic(fmt.Sprintf("addons.yaml of %s: %v", repo, err))
		}
		for _, a := range doc.Addons.Addons {
			out = append(out, addonInfo{name: a.Name, repo: repo, desc: a.Description, archs: a.Architectures})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].repo != out[j].repo {
			return out[i].repo < out[j].repo
		}
		return out[i].name < out[j].name
	})
	return out
}()

// Enabled on every fresh MicroK8s.
var defaultAddons = map[string]bool{"ha-cluster": true, "helm": true, "helm3": true}

// visibleAddons are the addons a host can enable: the core repository's,
// the community's once `microk8s enable community` added it, each only on
// an architecture it supports.
func visibleAddons(c *cluster, arch string) []addonInfo {
	var out []addonInfo
	for _, a := range addonCatalog {
		if (a.repo == "core" || c.addons["community"]) && slices.Contains(a.archs, arch) {
			out = append(out, a)
		}
	}
	return out
}

// findAddon resolves "name", "repo/name" or "name:args" against the
// repositories the cluster has.
func findAddon(c *cluster, arch, spec string) (addonInfo, bool) {
	name, _, _ := strings.Cut(spec, ":")
	repo := ""
	if r, n, found := strings.Cut(name, "/"); found {
		repo, name = r, n
	}
	for _, a := range visibleAddons(c, arch) {
		if a.name == name && (repo == "" || a.repo == repo) {
			return a, true
		}
	}
	return addonInfo{}, false
}

// notFound is MicroK8s' answer for an addon no enabled repository has,
// with its hint when the community repository has it.
func notFound(arch, spec string) string {
	name, _, _ := strings.Cut(spec, ":")
	msg := fmt.Sprintf("Addon %s was not found in any repository\n", name)
	for _, a := range addonCatalog {
		if a.repo == "community" && a.name == name && slices.Contains(a.archs, arch) {
			msg += "To use the community maintained flavor enable the respective repository:\n\n    microk8s enable community\n\n"
		}
	}
	return msg
}
