package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mecd/mecd/test/localrt"
)

// TestGrafana: mecctl grafana runs kubectl port-forward to the observability
// addon's Grafana service with the MEC's kubeconfig in a private file that
// is gone when it ends; a MEC without the addon is refused, naming the fix.
// kubectl is a stand-in script (the local runtime has no API server to
// forward from) that records what it was given.
func TestGrafana(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	dir := t.TempDir()
	fake := filepath.Join(dir, "kubectl")
	script := `#!/bin/sh
printf '%s\n' "$@" > "` + dir + `/args"
cp "$2" "` + dir + `/kubeconfig"
stat -c %a "$2" > "` + dir + `/mode"
echo "$2" > "` + dir + `/path"
echo "Forwarding from 127.0.0.1:8300 -> 3000"
`
	if err := os.WriteFile(fake, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MECD_ENDPOINT": rt.APIEndpoint(), "KUBECTL": fake}
	name := localrt.UniqueName("cli-graf")
	if r := mecctl(t, env, "create", name, "--nodes", "1", "--addons", "dns,observability", "--wait"); r.code != exitOK {
		t.Fatalf("create --wait: %s", r)
	}
	t.Cleanup(func() { mecctl(t, env, "delete", name, "--wait") })

	r := mecctl(t, env, "grafana", name, "--port", "8300")
	if r.code != exitOK || !strings.Contains(r.stdout, "Grafana of "+name+" on http://127.0.0.1:8300") || !strings.Contains(r.stdout, "Forwarding from") {
		t.Fatalf("grafana: %s", r)
	}
	read := func(f string) string {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	kubeconfigFile := read("path")
	want := []string{"--kubeconfig", kubeconfigFile, "--namespace", "observability", "port-forward", "--address", "127.0.0.1", "svc/kube-prom-stack-grafana", "8300:80"}
	if got := strings.Split(read("args"), "\n"); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("kubectl %q, want %q", got, want)
	}
	if mode := read("mode"); mode != "600" {
		t.Errorf("the kubeconfig file had mode %s, want 600", mode)
	}
	if _, err := os.Stat(kubeconfigFile); !os.IsNotExist(err) {
		t.Errorf("the kubeconfig file %s outlived the command (%v)", kubeconfigFile, err)
	}
	got := mecctl(t, env, "kubeconfig", name, "-o", "-")
	if got.code != exitOK {
		t.Fatalf("kubeconfig: %s", got)
	}
	kc := read("kubeconfig")
	if server := strings.TrimSpace(strings.SplitN(strings.SplitN(kc, "server: ", 2)[1], "\n", 2)[0]); !strings.Contains(got.stdout, "server: "+server) {
		t.Errorf("kubectl was given server %s; mecctl kubeconfig says:\n%s", server, got.stdout)
	}

	plain := localrt.UniqueName("cli-nograf")
	if r := mecctl(t, env, "create", plain, "--nodes", "1", "--wait"); r.code != exitOK {
		t.Fatalf("create --wait: %s", r)
	}
	t.Cleanup(func() { mecctl(t, env, "delete", plain, "--wait") })
	if r := mecctl(t, env, "grafana", plain); r.code != exitError || !strings.Contains(r.stderr, "has no observability addon") ||
		!strings.Contains(r.stderr, "--addons including observability") {
		t.Errorf("grafana of a MEC without the addon: %s", r)
	}
}
