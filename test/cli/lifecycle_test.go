package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"gopkg.in/yaml.v3"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mecd/mecd/internal/client"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/test/localrt"
	"github.com/mecd/mecd/test/nodesim/fault"
)

// TestLifecycle drives a MEC through the CLI on the local runtime: create
// --wait to READY, list in every format, kubeconfig merged next to another
// context (and a refusal to overwrite), delete --wait.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	env := map[string]string{"MECD_ENDPOINT": rt.APIEndpoint()} // the endpoint from the environment
	name := localrt.UniqueName("cli")

	r := mecctl(t, env, "create", name, "--nodes", "1", "--ttl", "2h", "--addons", "dns,hostpath-storage", "--tag", "team=edge", "--wait")
	if r.code != exitOK {
		t.Fatalf("create --wait: %s", r)
	}
	// One line per step as it starts and ends, with the elapsed time.
	for _, step := range []string{mec.StepResolve, mec.StepLaunch, mec.StepNodesOnline, mec.StepInstall, mec.StepKubeconfig, mec.StepReady} {
		if !regexp.MustCompile(`(?m)^\[\s*\d+\.\ds\] ` + step + `\s+succeeded in \d+\.\ds`).MatchString(r.stdout) {
			t.Errorf("create --wait printed no completed %s step:\n%s", step, r.stdout)
		}
	}
	for _, want := range []string{"MEC " + name + " is READY", "Endpoint: https://", "control-plane", "mecctl kubeconfig " + name} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("create --wait output lacks %q:\n%s", want, r.stdout)
		}
	}

	t.Run("list", func(t *testing.T) {
		for _, tc := range []struct {
			args  []string
			check func(t *testing.T, out string)
		}{
			{[]string{"list"}, func(t *testing.T, out string) {
				if !regexp.MustCompile(`(?m)^NAME\s+ID\s+STATUS\s+REGION\s+NODES\s+AGE\s+EXPIRES`).MatchString(out) ||
					!regexp.MustCompile(`(?m)^`+name+`\s+mec-\w{26}\s+READY\s+us-east-1\s+1 \(1cp\)\s+\d+s\s+in 1h5\dm`).MatchString(out) {
					t.Errorf("table:\n%s", out)
				}
			}},
			{[]string{"list", "-o", "json", "--status", "READY"}, func(t *testing.T, out string) {
				var p client.ListPage
				if err := json.Unmarshal([]byte(out), &p); err != nil {
					t.Fatalf("json: %v\n%s", err, out)
				}
				if m := find(p.Items, name); m == nil || m.Status != mec.Ready || m.Spec.Tags["team"] != "edge" || len(m.Nodes) != 1 {
					t.Errorf("json has no READY %s with its tag and node: %s", name, out)
				}
				for _, m := range p.Items {
					if m.Status != mec.Ready {
						t.Errorf("--status READY listed %s %s", m.Name, m.Status)
					}
				}
			}},
			{[]string{"list", "-o", "yaml", "--region", "us-east-1"}, func(t *testing.T, out string) {
				var p struct {
					Items []struct {
						Name   string `yaml:"name"`
						Status string `yaml:"status"`
						Region string `yaml:"region"`
						Spec   struct {
							Addons []string `yaml:"addons"`
						} `yaml:"spec"`
						CreatedAt string `yaml:"createdAt"`
					} `yaml:"items"`
				}
				if err := yaml.Unmarshal([]byte(out), &p); err != nil {
					t.Fatalf("yaml: %v\n%s", err, out)
				}
				ok := false
				for _, it := range p.Items {
					ok = ok || (it.Name == name && it.Status == "READY" && len(it.Spec.Addons) == 2 && it.CreatedAt != "")
					if it.Region != "us-east-1" {
						t.Errorf("--region us-east-1 listed %s in %s", it.Name, it.Region)
					}
				}
				if !ok || strings.Contains(out, "{") {
					t.Errorf("yaml (block style) has no READY %s:\n%s", name, out)
				}
			}},
		} {
			t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
				r := mecctl(t, env, tc.args...)
				if r.code != exitOK {
					t.Fatalf("%s", r)
				}
				tc.check(t, r.stdout)
			})
		}
	})

	t.Run("get", func(t *testing.T) {
		r := mecctl(t, env, "get", name)
		if r.code != exitOK || !strings.Contains(r.stdout, "Status:    READY") || !strings.Contains(r.stdout, "Steps:") {
			t.Errorf("get: %s", r)
		}
	})

	t.Run("kubeconfig", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "config")
		if err := os.WriteFile(path, otherKubeconfig(t), 0o600); err != nil {
			t.Fatal(err)
		}
		kenv := map[string]string{"MECD_ENDPOINT": rt.APIEndpoint(), "KUBECONFIG": filepath.Join(dir, "missing") + ":" + path}
		r := mecctl(t, kenv, "kubeconfig", name)
		if r.code != exitOK || !strings.Contains(r.stdout, `Added context "`+name+`"`) {
			t.Fatalf("kubeconfig merge: %s", r)
		}
		kc := readKubeconfig(t, path)
		if kc.CurrentContext != name || kc.Contexts["other"] == nil || kc.Clusters["other-cluster"] == nil || kc.AuthInfos["other-user"] == nil {
			t.Fatalf("merged kubeconfig lost the other context or did not switch: %+v", kc)
		}
		mc := kc.Contexts[name]
		if mc == nil || mc.Cluster != name || mc.AuthInfo != name || kc.Clusters[name] == nil || kc.AuthInfos[name] == nil {
			t.Fatalf("merged kubeconfig has no complete %s context: %+v", name, kc)
		}
		if !strings.HasPrefix(kc.Clusters[name].Server, "https://") || len(kc.Clusters[name].CertificateAuthorityData) == 0 {
			t.Errorf("cluster %s: %+v", name, kc.Clusters[name])
		}
		if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
			t.Errorf("kubeconfig mode %v, want 0600", st.Mode().Perm())
		}
		if b, _ := os.ReadFile(path); !strings.Contains(string(b), "# my clusters") {
			t.Errorf("the file's comment is gone:\n%s", b)
		}

		// Again: nothing to change.
		if r := mecctl(t, kenv, "kubeconfig", name); r.code != exitOK || !strings.Contains(r.stdout, "Already had") {
			t.Errorf("second merge: %s", r)
		}

		// A different cluster under the MEC's name is not overwritten...
		b, _ := os.ReadFile(path)
		changed := strings.Replace(string(b), kc.Clusters[name].Server, "https://203.0.113.9:16443", 1)
		if err := os.WriteFile(path, []byte(changed), 0o600); err != nil {
			t.Fatal(err)
		}
		r = mecctl(t, kenv, "kubeconfig", name)
		if r.code != exitError || !strings.Contains(r.stderr, `cluster "`+name+`"`) || !strings.Contains(r.stderr, "--force") {
			t.Errorf("conflicting merge: %s", r)
		}
		if after, _ := os.ReadFile(path); string(after) != changed {
			t.Error("a refused merge changed the file")
		}
		// ...unless forced.
		r = mecctl(t, kenv, "kubeconfig", name, "--force")
		if r.code != exitOK || !strings.Contains(r.stdout, "Replaced") || readKubeconfig(t, path).Clusters[name].Server == "https://203.0.113.9:16443" {
			t.Errorf("forced merge: %s", r)
		}
		if readKubeconfig(t, path).Contexts["other"] == nil {
			t.Error("forced merge dropped the other context")
		}

		// A standalone file, and no overwriting it.
		out := filepath.Join(dir, name+".yaml")
		if r := mecctl(t, env, "kubeconfig", name, "-o", out); r.code != exitOK {
			t.Fatalf("kubeconfig -o: %s", r)
		}
		if s := readKubeconfig(t, out); s.CurrentContext != name || len(s.Contexts) != 1 {
			t.Errorf("standalone kubeconfig: %+v", s)
		}
		if r := mecctl(t, env, "kubeconfig", name, "-o", out); r.code != exitError || !strings.Contains(r.stderr, "exists") {
			t.Errorf("kubeconfig -o over a file: %s", r)
		}
	})

	r = mecctl(t, nil, "--endpoint", rt.APIEndpoint(), "delete", name, "--wait")
	if r.code != exitOK || !strings.Contains(r.stdout, "is DELETED") ||
		!regexp.MustCompile(`(?m)^\[\s*\d+\.\ds\] \S+\s+succeeded`).MatchString(r.stdout) {
		t.Fatalf("delete --wait: %s", r)
	}
	if leaks, err := rt.LeakAudit(t.Context(), find2(t, rt, name)); err != nil || len(leaks) > 0 {
		t.Errorf("after delete --wait: %v %v", leaks, err)
	}
	if r := mecctl(t, env, "list"); strings.Contains(r.stdout, name) {
		t.Errorf("list shows the DELETED MEC without --all:\n%s", r.stdout)
	}
	if r := mecctl(t, env, "list", "--all"); !regexp.MustCompile(name + `\s+mec-\w+\s+DELETED`).MatchString(r.stdout) {
		t.Errorf("list --all lacks the DELETED MEC:\n%s", r)
	}
	if r := mecctl(t, env, "kubeconfig", name); r.code != exitError || !strings.Contains(r.stderr, "DELETED") {
		t.Errorf("kubeconfig of a DELETED MEC: %s", r)
	}
}

// TestCreateFailed: a provisioning that fails ends --wait with exit 1, the
// failed step and its cause.
func TestCreateFailed(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	name := localrt.UniqueName("cli-fail")
	rt.Sim.Faults.FailCommand(fault.Command{Host: fault.Host{TagKey: mec.TagName, TagValue: name, Index: 0},
		Prefix: "snap install", ExitCode: 1, Stderr: "error: snap store unreachable (injected)"})
	r := mecctl(t, nil, "create", name, "--nodes", "1", "--wait", "--endpoint", rt.APIEndpoint())
	if r.code != exitError || !strings.Contains(r.stdout, "failed in") || !strings.Contains(r.stderr, "is FAILED at step") {
		t.Fatalf("create --wait of a failing MEC: %s", r)
	}
	if r := mecctl(t, nil, "delete", name, "--wait", "--endpoint", rt.APIEndpoint()); r.code != exitOK {
		t.Errorf("delete: %s", r)
	}
}

// TestAPIErrors: what the API refuses is printed with every field message, exit 1.
func TestAPIErrors(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	ep := []string{"--endpoint", rt.APIEndpoint()}
	name := localrt.UniqueName("cli-err")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		// A region name spec.Parse accepts but this stack does not serve.
		{"region not served", []string{"create", localrt.UniqueName("cli-region"), "--region", "sa-east-1"},
			[]string{"Error: the MEC spec is not valid", "(ValidationError, HTTP 400)", "region: must be one of the regions this stack serves"}},
		{"no such id", []string{"get", "mec-00000000000000000000000000"}, []string{"Error: no MEC mec-00000000000000000000000000", "NotFound, HTTP 404"}},
		{"no such name", []string{"delete", "never-was-" + name}, []string{"no live MEC has this name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mecctl(t, nil, append(tc.args, ep...)...)
			if r.code != exitError {
				t.Errorf("%s", r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q: %s", w, r)
				}
			}
		})
	}
	t.Run("name taken", func(t *testing.T) {
		if r := mecctl(t, nil, append([]string{"create", name, "--nodes", "1"}, ep...)...); r.code != exitOK || !strings.Contains(r.stdout, "is CREATING") {
			t.Fatalf("create: %s", r)
		}
		r := mecctl(t, nil, append([]string{"create", name, "--nodes", "1"}, ep...)...)
		if r.code != exitError || !strings.Contains(r.stderr, "already exists") || !strings.Contains(r.stderr, "NameTaken, HTTP 409") {
			t.Errorf("same name again: %s", r)
		}
		if r := mecctl(t, nil, append([]string{"delete", name, "--wait"}, ep...)...); r.code != exitOK {
			t.Errorf("delete: %s", r)
		}
	})
}

func find(ms []*mec.MEC, name string) *mec.MEC {
	for _, m := range ms {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// find2 is the id of the (possibly DELETED) MEC named name.
func find2(t *testing.T, rt *localrt.Runtime, name string) string {
	t.Helper()
	r := mecctl(t, nil, "--endpoint", rt.APIEndpoint(), "get", name, "-o", "json")
	var m mec.MEC
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("get -o json: %v %s", err, r)
	}
	return m.ID
}

// otherKubeconfig is a user's own kubeconfig, with a comment, that a merge
// must keep.
func otherKubeconfig(t *testing.T) []byte {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["other-cluster"] = &clientcmdapi.Cluster{Server: "https://192.0.2.1:6443"}
	cfg.AuthInfos["other-user"] = &clientcmdapi.AuthInfo{Token: "abc"}
	cfg.Contexts["other"] = &clientcmdapi.Context{Cluster: "other-cluster", AuthInfo: "other-user"}
	cfg.CurrentContext = "other"
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte("# my clusters\n"), b...)
}

// readKubeconfig loads a kubeconfig as kubectl does.
func readKubeconfig(t *testing.T, path string) *clientcmdapi.Config {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cfg
}
