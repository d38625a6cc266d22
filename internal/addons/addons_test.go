package addons

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

// typed is the k8s.io/api type each kind a manifest may hold decodes into.
var typed = map[string]func() any{
	"apps/v1/Deployment":                               func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                              func() any { return &appsv1.StatefulSet{} },
	"batch/v1/Job":                                     func() any { return &batchv1.Job{} },
	"v1/Namespace":                                     func() any { return &corev1.Namespace{} },
	"v1/Service":                                       func() any { return &corev1.Service{} },
	"v1/ConfigMap":                                     func() any { return &corev1.ConfigMap{} },
	"v1/PersistentVolumeClaim":                         func() any { return &corev1.PersistentVolumeClaim{} },
	"networking.k8s.io/v1/NetworkPolicy":               func() any { return &networkingv1.NetworkPolicy{} },
	"networking.k8s.io/v1/IngressClass":                func() any { return &networkingv1.IngressClass{} },
	"networking.k8s.io/v1/Ingress":                     func() any { return &networkingv1.Ingress{} },
	"v1/ServiceAccount":                                func() any { return &corev1.ServiceAccount{} },
	"v1/Secret":                                        func() any { return &corev1.Secret{} },
	"v1/PersistentVolume":                              func() any { return &corev1.PersistentVolume{} },
	"v1/LimitRange":                                    func() any { return &corev1.LimitRange{} },
	"v1/ResourceQuota":                                 func() any { return &corev1.ResourceQuota{} },
	"apps/v1/DaemonSet":                                func() any { return &appsv1.DaemonSet{} },
	"scheduling.k8s.io/v1/PriorityClass":               func() any { return &schedulingv1.PriorityClass{} },
	"rbac.authorization.k8s.io/v1/ClusterRole":         func() any { return &rbacv1.ClusterRole{} },
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding":  func() any { return &rbacv1.ClusterRoleBinding{} },
	"rbac.authorization.k8s.io/v1/Role":                func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding":         func() any { return &rbacv1.RoleBinding{} },
	"apiextensions.k8s.io/v1/CustomResourceDefinition": func() any { return &apiextensionsv1.CustomResourceDefinition{} },
}

// imageRefs are the images a pod starts and the ones its containers pass
// on to what they create (Longhorn's manager and driver deployer take
// them as --*-image flags and *_IMAGE variables).
func imageRefs(pod *corev1.PodSpec) map[string]string {
	refs := map[string]string{}
	for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
		refs[c.Name] = c.Image
		for i, a := range c.Command {
			if strings.HasSuffix(a, "-image") && strings.HasPrefix(a, "--") && i+1 < len(c.Command) {
				refs[c.Name+" "+a] = c.Command[i+1]
			}
		}
		for _, e := range c.Env {
			if strings.HasSuffix(e.Name, "_IMAGE") {
				refs[c.Name+" "+e.Name] = e.Value
			}
		}
	}
	return refs
}

// docs splits a manifest into its YAML documents, comments and all.
func docs(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		d, err := yaml.Marshal(&n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
}

// Every manifest decodes strictly (an unknown or misspelt field is an
// error) into the k8s.io/api type of its kind, and each image has an exact
// tag: registry/name:tag, never latest.
func TestManifestsDecodeStrictly(t *testing.T) {
	exact := regexp.MustCompile(`^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+:[0-9A-Za-z._-]+$`)
	for _, name := range Names() {
		a, _ := Get(name)
		t.Run(name, func(t *testing.T) {
			kinds, names := map[string]int{}, map[string]bool{}
			for i, d := range docs(t, a.Manifest()) {
				var tm struct {
					APIVersion string `json:"apiVersion"`
					Kind       string `json:"kind"`
				}
				if err := sigsyaml.Unmarshal(d, &tm); err != nil {
					t.Fatalf("document %d: %v", i, err)
				}
				mk := typed[tm.APIVersion+"/"+tm.Kind]
				if mk == nil {
					t.Fatalf("document %d: %s %s has no k8s.io/api type here", i, tm.APIVersion, tm.Kind)
				}
				obj := mk()
				if err := sigsyaml.UnmarshalStrict(d, obj); err != nil {
					t.Fatalf("document %d (%s): %v", i, tm.Kind, err)
				}
				kinds[tm.Kind]++
				var pod *corev1.PodSpec
				switch o := obj.(type) {
				case *appsv1.Deployment:
					pod = &o.Spec.Template.Spec
				case *appsv1.StatefulSet:
					pod = &o.Spec.Template.Spec
				case *appsv1.DaemonSet:
					pod = &o.Spec.Template.Spec
				case *batchv1.Job:
					pod = &o.Spec.Template.Spec
				}
				if pod == nil {
					continue
				}
				for what, img := range imageRefs(pod) {
					if !exact.MatchString(img) || strings.HasSuffix(img, ":latest") {
						t.Errorf("%s: image %q is not registry/name:exact-tag", what, img)
					}
				}
				for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
					// mecd's own manifests set them; an upstream one is
					// counted by an estimate (spec.Footprints).
					if !a.Upstream && (c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero()) {
						t.Errorf("%s: no memory request or limit (the fit check counts them)", c.Name)
					}
				}
				names[tm.Kind+"/"+objectName(t, d)] = true
			}
			for _, r := range slices.Concat(a.Rollouts, a.Jobs) {
				kind, name, _ := strings.Cut(r, "/")
				k := map[string]string{"deployment": "Deployment", "statefulset": "StatefulSet", "daemonset": "DaemonSet", "job": "Job"}[kind]
				if !names[k+"/"+name] {
					t.Errorf("waits for %s, which the manifest lacks", r)
				}
			}
			for _, r := range a.Made {
				if kind, _, _ := strings.Cut(r, "/"); kind != "deployment" && kind != "daemonset" {
					t.Errorf("made at run time: %s is not a rollout kubectl can wait for", r)
				}
			}
		})
	}
}

func objectName(t *testing.T, d []byte) string {
	t.Helper()
	var m struct {
		Metadata struct{ Name string } `json:"metadata"`
	}
	if err := sigsyaml.Unmarshal(d, &m); err != nil {
		t.Fatal(err)
	}
	return m.Metadata.Name
}

// The manifest a node applies is the embedded one: the script's inline
// copy decodes back to it byte for byte.
func TestScriptCarriesTheManifest(t *testing.T) {
	for _, name := range Names() {
		a, _ := Get(name)
		s := a.Script()
		body := s[strings.Index(s, "<<'MANIFEST'\n")+len("<<'MANIFEST'\n") : strings.LastIndex(s, "\nMANIFEST\n")]
		gz, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(body, "\n", ""))
		if err != nil {
			t.Fatal(err)
		}
		r, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, a.Manifest()) {
			t.Errorf("%s: the script's manifest differs from the embedded one (%v)", name, err)
		}
		if len(s) > 16<<10 {
			t.Errorf("%s: %d bytes of script: the node command must stay under SSM's 64 KB document size", name, len(s))
		}
	}
}

func TestSplit(t *testing.T) {
	mk, own := Split([]string{"dns", "edgex", "hostpath-storage"})
	if !slices.Equal(mk, []string{"dns", "hostpath-storage"}) || !slices.Equal(own, []string{"edgex"}) {
		t.Errorf("Split = %v, %v", mk, own)
	}
}
