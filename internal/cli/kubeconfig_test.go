package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

// A kubeconfig as `microk8s config` writes it.
const microk8sConfig = `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0EK
    server: https://172.31.0.4:16443
  name: microk8s-cluster
contexts:
- context:
    cluster: microk8s-cluster
    user: admin
  name: microk8s
current-context: microk8s
kind: Config
preferences: {}
users:
- name: admin
  user:
    client-certificate-data: Q0VSVAo=
    client-key-data: S0VZCg==
`

func TestMergeKubeconfig(t *testing.T) {
	t.Parallel()
	entries, err := mecEntries([]byte(microk8sConfig), "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	same, _ := encodeYAML(standalone(entries))
	otherServer := strings.Replace(string(same), "172.31.0.4", "172.31.9.9", 1)
	for _, tc := range []struct {
		name       string
		existing   string // "" = no file
		force      bool
		setCurrent bool
		wantErr    string
		want       []string // in the result
		notWant    []string
		current    string
		res        mergeResult
	}{
		{name: "no file yet", setCurrent: true, current: "edge-1",
			want: []string{"name: edge-1", "server: https://172.31.0.4:16443", "client-key-data: S0VZCg==", "cluster: edge-1", "user: edge-1"}},
		{name: "empty file", existing: "\n", setCurrent: true, current: "edge-1", want: []string{"name: edge-1"}},
		{name: "other context kept, not switched", existing: otherKubeconfig, current: "other",
			want: []string{"# my clusters", "name: other-cluster", "name: other-user", "name: other", "token: abc", "name: edge-1"}},
		{name: "identical entries", existing: string(same), setCurrent: true, current: "edge-1", res: mergeResult{unchanged: true}},
		{name: "different cluster refused", existing: otherServer, setCurrent: true, current: "edge-1",
			wantErr: `already has cluster "edge-1", different from this MEC's`},
		{name: "different cluster forced", existing: otherServer, force: true, setCurrent: true, current: "edge-1",
			want: []string{"172.31.0.4"}, notWant: []string{"172.31.9.9"}, res: mergeResult{replaced: true}},
		{name: "null sections", existing: "apiVersion: v1\nkind: Config\nclusters: null\nusers:\ncontexts: []\n", setCurrent: true, current: "edge-1",
			want: []string{"name: edge-1"}},
		{name: "not YAML", existing: "clusters: [\n", wantErr: "not a kubeconfig"},
		{name: "not a mapping", existing: "- a\n- b\n", wantErr: "not a kubeconfig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kube", "config")
			if tc.existing != "" {
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(tc.existing), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			res, err := mergeInto(path, nil, entries, tc.force, tc.setCurrent)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				if b, _ := os.ReadFile(path); string(b) != tc.existing {
					t.Error("a refused merge changed the file")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res != tc.res {
				t.Errorf("result %+v, want %+v", res, tc.res)
			}
			b, _ := os.ReadFile(path)
			got := string(b)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(got, w) {
					t.Errorf("still has %q:\n%s", w, got)
				}
			}
			if kc, err := clientcmd.LoadFromFile(path); err != nil {
				t.Errorf("kubectl cannot load the result: %v", err)
			} else if kc.CurrentContext != tc.current {
				t.Errorf("current-context %q, want %q", kc.CurrentContext, tc.current)
			}
			st, _ := os.Stat(path)
			wantMode := os.FileMode(0o600)
			if tc.existing != "" {
				wantMode = 0o640 // kept
			}
			if st.Mode().Perm() != wantMode {
				t.Errorf("mode %v, want %v", st.Mode().Perm(), wantMode)
			}
			if _, err := os.Stat(path + ".lock"); err == nil {
				t.Error("lock file left behind")
			}
			// Merging again changes nothing.
			if res, err := mergeInto(path, nil, entries, false, tc.setCurrent); err != nil || !res.unchanged {
				t.Errorf("second merge: %+v %v", res, err)
			}
		})
	}
}

func TestMergeKubeconfigShadowedElsewhere(t *testing.T) {
	t.Parallel()
	entries, _ := mecEntries([]byte(microk8sConfig), "other")
	dir := t.TempDir()
	first := filepath.Join(dir, "first")
	if err := os.WriteFile(first, []byte(otherKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := mergeInto(filepath.Join(dir, "second"), []string{first}, entries, true, true)
	if err == nil || !strings.Contains(err.Error(), `already has a context named "other"`) {
		t.Errorf("a name another $KUBECONFIG file has: %v", err)
	}
}

func TestKubeconfigPaths(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	exists := filepath.Join(dir, "exists")
	if err := os.WriteFile(exists, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	a1, a2 := filepath.Join(dir, "a1"), filepath.Join(dir, "a2")
	for _, tc := range []struct {
		flag, env, home string
		dest            string
		others          []string
	}{
		{flag: "/x/config", env: exists, dest: "/x/config"},
		{env: "", home: "/home/u", dest: "/home/u/.kube/config"},
		{env: a1 + ":" + exists + ":" + a2, dest: exists, others: []string{a1, a2}},
		{env: a1 + "::" + a2, dest: a2, others: []string{a1}}, // none exists: the last
	} {
		a := &App{getenv: func(k string) string {
			return map[string]string{"KUBECONFIG": tc.env, "HOME": tc.home}[k]
		}}
		dest, others := a.kubeconfigPaths(tc.flag)
		if dest != tc.dest || strings.Join(others, ",") != strings.Join(tc.others, ",") {
			t.Errorf("flag %q KUBECONFIG %q: %s %v, want %s %v", tc.flag, tc.env, dest, others, tc.dest, tc.others)
		}
	}
}

func TestMecEntries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, raw, err string
	}{
		{"no users", "clusters:\n- name: c\n  cluster: {server: https://x}\n", "no cluster or no user"},
		{"context names a missing cluster", strings.Replace(microk8sConfig, "cluster: microk8s-cluster\n    user", "cluster: gone\n    user", 1), `cluster "gone"`},
		{"not yaml", "{", "not a kubeconfig"},
	} {
		if _, err := mecEntries([]byte(tc.raw), "x"); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
		}
	}
}

const otherKubeconfig = `# my clusters
apiVersion: v1
kind: Config
preferences: {}
clusters:
- name: other-cluster
  cluster:
    server: https://192.0.2.1:6443
users:
- name: other-user
  user:
    token: abc
contexts:
- name: other
  context:
    cluster: other-cluster
    user: other-user
current-context: other
`
