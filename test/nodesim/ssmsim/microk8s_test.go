package ssmsim

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mecd/mecd/internal/addons"
	"github.com/mecd/mecd/internal/spec"
	"github.com/mecd/mecd/test/nodesim/fault"
	"github.com/mecd/mecd/test/nodesim/fidelity"
	"github.com/mecd/mecd/test/nodesim/latency"
)

const testToken = "0123456789abcdef0123456789abcdef"

// install installs MicroK8s on every instance with one SendCommand, as the product does.
func (e *env) install(t *testing.T, insts ...Instance) {
	t.Helper()
	id := e.send(t, ids(insts), installScript, nil)
	for _, i := range insts {
		if r := e.wait(t, id, i.ID); r.status != "Success" {
			t.Fatalf("install on %s: %+v", i.ID, r)
		}
	}
}

// joinURL registers testToken on the leader (discarding add-node's output,
// which carries the token) and builds the join URL with the certificate check
// read back from server.crt, as the product's scripts do.
func (e *env) joinURL(t *testing.T, leader Instance, ttl string) string {
	t.Helper()
	e.mustSh(t, leader.ID, "microk8s add-node --token "+testToken+" --token-ttl "+ttl+" >/dev/null")
	r := e.mustSh(t, leader.ID, `openssl x509 -in "${MECD_HOST_ROOT:-}/var/snap/microk8s/current/certs/server.crt" -outform der | sha256sum | cut -c1-12`)
	check := strings.TrimSpace(r.stdout)
	if check != e.host(t, leader.ID).CertCheck {
		t.Fatalf("check from openssl %q, simulator %q", check, e.host(t, leader.ID).CertCheck)
	}
	return leader.PrivateIP + ":25000/" + testToken + "/" + check
}

func TestBeforeInstall(t *testing.T) {
	e := newEnv(t, envOptions{})
	inst := e.addInstance()
	for _, tc := range []struct {
		script string
		code   int32
		stderr string
	}{
		{"microk8s status --wait-ready", 127, "microk8s: command not found"},
		{"microk8s add-node --token " + testToken + " --token-ttl 60", 127, "microk8s: command not found"},
		{"microk8s join 172.31.0.10:25000/" + testToken, 127, "microk8s: command not found"},
		{"snap list microk8s", 1, "error: no matching snaps installed"},
		{"snap install microk8s --channel=1.35/stable", 1, "classic confinement"},
		{"snap install microk8s --classic --channel=9.99/stable", 1, "not available on channel"},
		{"snap install kubectl --classic", 1, `snap "kubectl" not found`},
	} {
		r := e.sh(t, inst.ID, tc.script)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("%s: %+v", tc.script, r)
		}
	}
	e.mustSh(t, inst.ID, "snap wait system seed.loaded")
	if e.host(t, inst.ID).Installed {
		t.Fatal("installed")
	}
}

func TestSnapInstallWithLaunchConfiguration(t *testing.T) {
	e := newEnv(t, envOptions{})
	inst := e.addInstance(func(i *Instance) { i.PublicIP = "203.0.113.10" })
	lc := "---\nversion: 0.1.0\nextraSANs:\n  - 203.0.113.10\n  - api.example.com\naddons:\n  - name: dns\n  - name: rbac\n"
	script := fmt.Sprintf("mkdir -p \"${MECD_HOST_ROOT:-}/var/snap/microk8s/common\"\ncat > \"${MECD_HOST_ROOT:-}/var/snap/microk8s/common/.microk8s.yaml\" <<'EOF'\n%sEOF\n%s", lc, installScript)
	r := e.mustSh(t, inst.ID, script)
	if r.stdout != "microk8s (1.35/stable) v1.35.0 from Canonical✓ installed\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
	h := e.host(t, inst.ID)
	if !h.Installed || h.Channel != "1.35/stable" || h.LaunchConfigRaw != lc || h.LaunchConfig == nil ||
		len(h.LaunchConfig.ExtraSANs) != 2 || strings.Join(h.Addons, ",") != "dns,rbac" || h.ClusterID != inst.ID || h.ClusterLeader != inst.ID {
		t.Fatalf("host %+v", h)
	}
	// The certificate on disk is real and carries every SAN the product relies on.
	b, err := os.ReadFile(filepath.Join(h.RootDir, "var/snap/microk8s/current/certs/server.crt"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var sans []string
	for _, ip := range cert.IPAddresses {
		sans = append(sans, ip.String())
	}
	sans = append(sans, cert.DNSNames...)
	for _, want := range []string{"127.0.0.1", "10.152.183.1", inst.PrivateIP, "203.0.113.10", hostnameFor(inst.PrivateIP, inst.ID), "api.example.com"} {
		if !contains(sans, want) || !contains(h.CertSANs, want) {
			t.Errorf("SAN %s missing: cert %v, state %v", want, sans, h.CertSANs)
		}
	}
	if certCheck(blk.Bytes) != h.CertCheck {
		t.Fatal("check hash")
	}

	if r := e.mustSh(t, inst.ID, installScript); r.stdout != "snap \"microk8s\" is already installed, see 'snap help refresh'\n" {
		t.Fatalf("second install %q", r.stdout)
	}
	if r := e.mustSh(t, inst.ID, "snap list microk8s"); !strings.Contains(r.stdout, "1.35/stable") {
		t.Fatalf("snap list %q", r.stdout)
	}
	if r := e.mustSh(t, inst.ID, "microk8s status --wait-ready --timeout 30"); !strings.Contains(r.stdout, "microk8s is running") || !strings.Contains(r.stdout, "dns ") {
		t.Fatalf("status %q", r.stdout)
	}
	if r := e.mustSh(t, inst.ID, "/snap/bin/microk8s version 2>/dev/null || \"$MECD_HOST_ROOT/snap/bin/microk8s\" version"); r.stdout != "MicroK8s v1.35.0 revision 8611\n" {
		t.Fatalf("version %q", r.stdout)
	}
}

// TestClusterHappyPath: 3 control-plane voters and 2 workers, joined in parallel.
func TestClusterHappyPath(t *testing.T) {
	e := newEnv(t, envOptions{})
	nodes := e.addInstances(5)
	e.install(t, nodes...)
	url := e.joinURL(t, nodes[0], "600")

	// One SendCommand joins them all in parallel; the role comes from the host.
	script := fmt.Sprintf(`set -euo pipefail
case "$MECD_SIM_INSTANCE_ID" in
  %s|%s) microk8s join %s ;;
  *) microk8s join %s --worker ;;
esac >/dev/null`, nodes[1].ID, nodes[2].ID, url, url)
	cmd := e.send(t, ids(nodes[1:]), script, nil)
	for _, n := range nodes[1:] {
		if r := e.wait(t, cmd, n.ID); r.status != "Success" {
			t.Fatalf("join %s: %+v", n.ID, r)
		}
	}

	h := e.host(t, nodes[0].ID)
	if len(h.Members) != 5 || h.ClusterLeader != nodes[0].ID {
		t.Fatalf("members %+v", h.Members)
	}
	voters := 0
	for _, m := range h.Members {
		wantRole := "control-plane"
		if m.InstanceID == nodes[3].ID || m.InstanceID == nodes[4].ID {
			wantRole = "worker"
		}
		if m.Role != wantRole || m.SkipVerify || m.Left || (m.InstanceID != nodes[0].ID && !m.CheckVerified) {
			t.Errorf("member %+v", m)
		}
		if m.Voter {
			voters++
		}
	}
	if voters != 3 {
		t.Fatalf("voters %d", voters)
	}
	for _, n := range nodes {
		if e.host(t, n.ID).ClusterID != nodes[0].ID {
			t.Fatalf("%s not in the cluster", n.ID)
		}
	}

	r := e.mustSh(t, nodes[0].ID, "microk8s enable dns ingress\nmicrok8s status --format short\nmicrok8s kubectl get nodes\nmicrok8s kubectl wait --for=condition=Ready node --all --timeout=30s")
	if !strings.Contains(r.stdout, "high-availability: yes") || !strings.Contains(r.stdout, "core/ingress: enabled") ||
		strings.Count(r.stdout, " Ready ") != 5 || strings.Count(r.stdout, "condition met") != 5 {
		t.Fatalf("cluster view:\n%s", r.stdout)
	}
	if got := e.host(t, nodes[4].ID).Addons; strings.Join(got, ",") != "dns,ingress" {
		t.Fatalf("addons seen from a worker: %v", got)
	}
	r = e.mustSh(t, nodes[0].ID, "microk8s kubectl get nodes -o json")
	var list struct {
		Items []struct {
			Metadata struct {
				Name   string
				Labels map[string]string
			}
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Items) != 5 {
		t.Fatalf("json: %v %s", err, r.stdout)
	}
	labels := map[string]map[string]string{}
	for _, it := range list.Items {
		labels[it.Metadata.Name] = it.Metadata.Labels
	}
	if labels[hostnameFor(nodes[4].PrivateIP, "")]["node.kubernetes.io/microk8s-worker"] != "microk8s-worker" ||
		labels[hostnameFor(nodes[1].PrivateIP, "")]["node.kubernetes.io/microk8s-controlplane"] != "microk8s-controlplane" {
		t.Fatalf("node labels %+v", labels)
	}

	// Kubeconfig: from any control-plane node, never from a worker.
	r = e.mustSh(t, nodes[0].ID, "microk8s config")
	if n := len(r.stdout); n < 5000 || n > 6500 {
		t.Fatalf("kubeconfig is %d bytes", n)
	}
	var kc struct {
		Clusters []struct {
			Name    string
			Cluster map[string]string
		}
		Users []struct {
			Name string
			User map[string]string
		}
	}
	if err := yaml.Unmarshal([]byte(r.stdout), &kc); err != nil {
		t.Fatal(err)
	}
	if kc.Clusters[0].Name != "microk8s-cluster" || kc.Clusters[0].Cluster["server"] != "https://"+nodes[0].PrivateIP+":16443" {
		t.Fatalf("kubeconfig clusters %+v", kc.Clusters)
	}
	for _, v := range []string{kc.Clusters[0].Cluster["certificate-authority-data"], kc.Users[0].User["client-certificate-data"], kc.Users[0].User["client-key-data"]} {
		b, err := base64.StdEncoding.DecodeString(v)
		if blk, _ := pem.Decode(b); err != nil || blk == nil {
			t.Fatal("embedded data is not base64 PEM")
		}
	}
	if r := e.mustSh(t, nodes[1].ID, "microk8s config"); !strings.Contains(r.stdout, "server: https://"+nodes[1].PrivateIP+":16443") {
		t.Fatal("config on a control-plane member")
	}
	r = e.sh(t, nodes[3].ID, "microk8s config")
	if r.code != 1 || !strings.Contains(r.stdout, "This MicroK8s deployment is acting as a node in a cluster. Please use the microk8s config on the control plane.") {
		t.Fatalf("config on a worker: %+v", r)
	}
}

func TestJoinFailures(t *testing.T) {
	e := newEnv(t, envOptions{})
	leader, a, b, c, notInstalled := e.addInstance(), e.addInstance(), e.addInstance(), e.addInstance(), e.addInstance()
	e.install(t, leader, a, b, c)
	url := e.joinURL(t, leader, "600")
	check := e.host(t, leader.ID).CertCheck
	base := leader.PrivateIP + ":25000/"

	e.mustSh(t, a.ID, "microk8s join "+url)
	e.mustSh(t, b.ID, "microk8s join "+url+" --worker")

	// Expiring and single-use tokens.
	const (
		shortTok  = "ffffffffffffffffffffffffffffffff"
		singleTok = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
	)
	e.mustSh(t, leader.ID, "microk8s add-node --token "+shortTok+" --token-ttl 1 >/dev/null; microk8s add-node --token "+singleTok+" >/dev/null")
	time.Sleep(1100 * time.Millisecond)

	tests := []struct {
		name, on, args string
		code           int32
		want           string
	}{
		{"unknown token", c.ID, base + "00000000000000000000000000000000/" + check, 1, "Error code 500. invalid token"},
		{"expired token", c.ID, base + shortTok + "/" + check, 1, "Error code 500. invalid token"},
		{"bad check hash", c.ID, base + testToken + "/000000000000", 1, "Fingerprint mismatch"},
		{"unknown address", c.ID, "172.31.99.99:25000/" + testToken + "/" + check, 1, "Connection refused"},
		{"leader not installed", c.ID, notInstalled.PrivateIP + ":25000/" + testToken, 1, "Connection refused"},
		{"joiner not installed", notInstalled.ID, url, 127, "microk8s: command not found"},
		{"control-plane joins again", a.ID, url, 1, "the joining node (" + a.PrivateIP + ") is already known to dqlite"},
		{"worker joins again", b.ID, url + " --worker", 1, "already part of a MicroK8s cluster"},
		{"joining itself", leader.ID, url, 1, "the joining node has the same IP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.sh(t, tc.on, "microk8s join "+tc.args)
			if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
				t.Fatalf("%+v", r)
			}
		})
	}
	if h := e.host(t, leader.ID); len(h.Members) != 3 {
		t.Fatalf("failed joins changed the cluster: %+v", h.Members)
	}

	t.Run("single-use token is consumed", func(t *testing.T) {
		// A join that fails after the token check still consumes a single-use token.
		r := e.sh(t, a.ID, "microk8s join "+base+singleTok+"/"+check)
		if !strings.Contains(r.stdout, "already known to dqlite") {
			t.Fatalf("%+v", r)
		}
		r = e.sh(t, c.ID, "microk8s join "+base+singleTok+"/"+check)
		if !strings.Contains(r.stdout, "invalid token") {
			t.Fatalf("%+v", r)
		}
	})

	t.Run("skip-verify is recorded", func(t *testing.T) {
		e.mustSh(t, c.ID, "microk8s join "+base+testToken+"/000000000000 --skip-verify")
		for _, m := range e.host(t, leader.ID).Members {
			if m.InstanceID == c.ID && (!m.SkipVerify || m.CheckVerified) {
				t.Fatalf("%+v", m)
			}
		}
	})

	t.Run("add-node rules", func(t *testing.T) {
		r := e.sh(t, leader.ID, "microk8s add-node --token short")
		if r.code != 1 || !strings.Contains(r.stdout, "Invalid token size") {
			t.Fatalf("%+v", r)
		}
		r = e.sh(t, b.ID, "microk8s add-node")
		if r.code != 1 || !strings.Contains(r.stdout, "acting as a node in a cluster") {
			t.Fatalf("add-node on a worker: %+v", r)
		}
		r = e.mustSh(t, leader.ID, "microk8s add-node --token "+testToken+" --token-ttl 600 --format json")
		var out struct {
			Token string
			URLs  []string
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.URLs[0] != url {
			t.Fatalf("json: %v %q", err, r.stdout)
		}
		if r := e.mustSh(t, leader.ID, "microk8s add-node --token "+testToken+" --token-ttl 600"); !strings.Contains(r.stdout, "microk8s join "+url+" --worker") {
			t.Fatalf("pretty: %q", r.stdout)
		}
	})
}

// TestJoinFaultNeedsReset: an injected join failure leaves the leader's dqlite
// knowing the node; a plain retry fails until remove-node on the leader and
// leave on the joiner.
func TestJoinFaultNeedsReset(t *testing.T) {
	e := newEnv(t, envOptions{})
	leader, joiner := e.addInstance(), e.addInstance()
	e.install(t, leader, joiner)
	url := e.joinURL(t, leader, "600")
	e.faults.FailCommand(fault.Command{Host: fault.Host{TagKey: "mecd:cluster-id", TagValue: "c-test", Index: joiner.LaunchIndex},
		Prefix: "microk8s join", Times: 1, ExitCode: 1, Stderr: "Contacting cluster at " + leader.PrivateIP + "\nConnection lost during join"})

	r := e.sh(t, joiner.ID, "microk8s join "+url)
	if r.status != "Failed" || !strings.Contains(r.stdout, "Connection lost during join") {
		t.Fatalf("injected: %+v", r)
	}
	if h := e.host(t, leader.ID); !contains(h.DqliteKnown, joiner.PrivateIP) || len(h.Members) != 1 {
		t.Fatalf("leader after fault: %+v", h)
	}
	if h := e.host(t, joiner.ID); !h.PartialJoin {
		t.Fatalf("joiner after fault: %+v", h)
	}
	steps := []struct {
		reset string // run before the retry: "on leader" or "on joiner"
		on    Instance
		want  string
	}{
		{"", joiner, "already known to dqlite"},
		{"microk8s leave", joiner, "already known to dqlite"}, // leave alone is not enough
		// Not a Kubernetes node: remove_node.py clears its dqlite entry
		// with --force only, and exits 1 regardless.
		{"microk8s remove-node " + joiner.PrivateIP + " --force || true", leader, ""},
	}
	for i, st := range steps {
		if st.reset != "" {
			e.mustSh(t, st.on.ID, st.reset)
		}
		r := e.sh(t, joiner.ID, "microk8s join "+url)
		if st.want == "" {
			if r.status != "Success" {
				t.Fatalf("step %d: retry after remove-node and leave: %+v", i, r)
			}
			continue
		}
		if r.code != 1 || !strings.Contains(r.stdout, st.want) {
			t.Fatalf("step %d: %+v", i, r)
		}
	}
	h := e.host(t, leader.ID)
	if len(h.Members) != 2 || !h.Members[1].CheckVerified || e.host(t, joiner.ID).PartialJoin {
		t.Fatalf("after reset and retry: %+v", h)
	}

	// The other order: remove-node first still needs a leave on the joiner.
	other := e.addInstance()
	e.install(t, other)
	e.faults.FailCommand(fault.Command{Host: fault.Host{Index: other.LaunchIndex}, Prefix: "microk8s join", Times: 1})
	e.sh(t, other.ID, "microk8s join "+url)
	// Not a Kubernetes node: only its address finds the dqlite entry
	// (remove_node.py), and the tool exits 1 after removing it.
	e.sh(t, leader.ID, "microk8s remove-node "+other.PrivateIP+" --force")
	if contains(e.host(t, leader.ID).DqliteKnown, other.PrivateIP) {
		t.Fatal("remove-node --force by address left the partial join's dqlite entry")
	}
	if r := e.sh(t, other.ID, "microk8s join "+url); r.code != 1 || !strings.Contains(r.stdout, "microk8s leave") {
		t.Fatalf("retry without leave: %+v", r)
	}
	e.mustSh(t, other.ID, "microk8s leave")
	e.mustSh(t, other.ID, "microk8s join "+url)
}

func TestLeaveAndRemoveNode(t *testing.T) {
	e := newEnv(t, envOptions{})
	nodes := e.addInstances(3)
	e.install(t, nodes...)
	url := e.joinURL(t, nodes[0], "600")
	e.mustSh(t, nodes[1].ID, "microk8s join "+url)
	e.mustSh(t, nodes[2].ID, "microk8s join "+url)

	if r := e.sh(t, nodes[0].ID, "microk8s remove-node "+nodes[2].PrivateIP); r.code != 1 || !strings.Contains(r.stdout, "run first 'microk8s leave' on the departing node") {
		t.Fatalf("remove a Ready node: %+v", r)
	}
	e.mustSh(t, nodes[2].ID, "microk8s leave")
	r := e.mustSh(t, nodes[0].ID, "microk8s kubectl get nodes --no-headers")
	if !strings.Contains(r.stdout, "NotReady") || strings.HasPrefix(r.stdout, "NAME") {
		t.Fatalf("after leave:\n%s", r.stdout)
	}
	e.mustSh(t, nodes[0].ID, "microk8s remove-node "+nodes[2].PrivateIP)
	if h := e.host(t, nodes[0].ID); len(h.Members) != 2 || contains(h.DqliteKnown, nodes[2].PrivateIP) {
		t.Fatalf("after remove-node: %+v", h)
	}
	if h := e.host(t, nodes[2].ID); h.ClusterID != nodes[2].ID || len(h.Members) != 1 {
		t.Fatalf("the node that left is alone: %+v", h)
	}
	e.mustSh(t, nodes[2].ID, "microk8s join "+url) // and may join again
	if r := e.sh(t, nodes[0].ID, "microk8s remove-node 172.31.250.250"); r.code != 1 || !strings.Contains(r.stdout, "does not exist in Kubernetes") {
		t.Fatalf("remove unknown: %+v", r)
	}
}

func TestLaunchConfigurationJoin(t *testing.T) {
	e := newEnv(t, envOptions{})
	leader, joiner := e.addInstance(), e.addInstance()
	write := func(inst Instance, lc string) {
		e.mustSh(t, inst.ID, fmt.Sprintf("mkdir -p \"$MECD_HOST_ROOT/var/snap/microk8s/common\"\ncat > \"$MECD_HOST_ROOT/var/snap/microk8s/common/.microk8s.yaml\" <<'EOF'\n%sEOF", lc))
	}
	write(leader, "version: 0.1.0\npersistentClusterToken: "+testToken+"\n")
	write(joiner, fmt.Sprintf("version: 0.1.0\njoin:\n  url: %s:25000/%s\n  worker: true\n", leader.PrivateIP, testToken))
	// Installed together: the joiner's launch join retries until the leader is up.
	e.install(t, joiner, leader)
	e.mustSh(t, joiner.ID, "microk8s status --wait-ready --timeout 5")
	jh := e.host(t, joiner.ID)
	if jh.LaunchJoin != "joined" || jh.ClusterID != leader.ID {
		t.Fatalf("joiner %+v", jh)
	}
	m := e.host(t, leader.ID).Members
	if len(m) != 2 || m[1].Role != "worker" || m[1].CheckVerified {
		t.Fatalf("members %+v", m)
	}
	if tok := e.host(t, leader.ID).Tokens; len(tok) != 1 || !tok[0].Persistent {
		t.Fatalf("tokens %+v", tok)
	}
}

func TestEnableAddons(t *testing.T) {
	e := newEnv(t, envOptions{})
	inst := e.addInstance()
	e.install(t, inst)
	r := e.sh(t, inst.ID, "microk8s enable dns nosuchaddon")
	if r.code != 1 || !strings.Contains(r.stderr, "Addon nosuchaddon was not found in any repository") {
		t.Fatalf("%+v", r)
	}
	// A community addon needs the community repository, and says so.
	r = e.sh(t, inst.ID, "microk8s enable traefik")
	if r.code != 1 || !strings.Contains(r.stderr, "Addon traefik was not found in any repository") || !strings.Contains(r.stderr, "microk8s enable community") {
		t.Fatalf("traefik without the community repository: %+v", r)
	}
	// Neither 1.35 repository has edgex (testdata/addons): it fails with or without community.
	e.mustSh(t, inst.ID, "microk8s enable community\nmicrok8s enable traefik hostpath-storage metrics-server cert-manager observability rbac")
	r = e.sh(t, inst.ID, "microk8s enable edgex")
	if r.code != 1 || !strings.Contains(r.stderr, "Addon edgex was not found in any repository") || strings.Contains(r.stderr, "community") {
		t.Fatalf("edgex: %+v", r)
	}
	// An addon of another architecture is not available: nvidia is amd64 only.
	if r := e.sh(t, inst.ID, "microk8s enable nvidia"); r.code != 1 || !strings.Contains(r.stderr, "Addon nvidia was not found") {
		t.Fatalf("nvidia on arm64: %+v", r)
	}
	r = e.mustSh(t, inst.ID, "microk8s enable dns; microk8s enable dns")
	if !strings.Contains(r.stdout, "Addon core/dns is already enabled") {
		t.Fatalf("%q", r.stdout)
	}
	want := "cert-manager,community,dns,hostpath-storage,metrics-server,observability,rbac,traefik"
	if got := strings.Join(e.host(t, inst.ID).Addons, ","); got != want {
		t.Fatalf("addons %s", got)
	}
}

func TestCommandFaultOnInstall(t *testing.T) {
	e := newEnv(t, envOptions{})
	bad, good := e.addInstance(), e.addInstance()
	e.faults.FailCommand(fault.Command{Host: fault.Host{TagKey: "mecd:cluster-id", TagValue: "c-test", Index: bad.LaunchIndex},
		Prefix: "snap install", ExitCode: 1, Stderr: "error: cannot perform the following tasks:\n- Download snap \"microk8s\" (8611) from channel \"1.35/stable\" (unexpected EOF)"})
	id := e.send(t, []string{bad.ID, good.ID}, installScript, nil)
	if r := e.wait(t, id, bad.ID); r.status != "Failed" || !strings.Contains(r.stderr, "unexpected EOF") {
		t.Fatalf("%+v", r)
	}
	if r := e.wait(t, id, good.ID); r.status != "Success" {
		t.Fatalf("%+v", r)
	}
	if e.host(t, bad.ID).Installed || !e.host(t, good.ID).Installed {
		t.Fatal("install state")
	}
	evs := e.sink.forCommand(id)
	if last := evs[len(evs)-1]; last.detailType != "EC2 Command Status-change Notification" || last.detail["status"] != "Failed" {
		t.Fatalf("command event %+v", last)
	}
}

// Every addon the spec accepts exists in MicroK8s 1.35's core repository
// for both architectures mecd launches: none needs `microk8s enable
// community` and none is invented.
func TestAllowedAddonsAreInTheRealCatalogue(t *testing.T) {
	c := &cluster{addons: map[string]bool{}}
	for _, arch := range []string{"arm64", "amd64"} {
		for _, name := range spec.AllowedAddons {
			if _, own := addons.Get(name); own {
				continue // mecd's own (internal/addons): applied with kubectl, never enabled
			}
			if a, ok := findAddon(c, arch, name); !ok || a.repo != "core" {
				t.Errorf("addon %s on %s: not in the core repository of 1.35", name, arch)
			}
		}
	}
}

// installWith installs MicroK8s on each instance with launch configuration
// lc ("" for none: MicroK8s' own default configuration applies).
func (e *env) installWith(t *testing.T, lc string, insts ...Instance) {
	t.Helper()
	script := installScript
	if lc != "" {
		script = fmt.Sprintf("mkdir -p \"${MECD_HOST_ROOT:-}/var/snap/microk8s/common\"\ncat > \"${MECD_HOST_ROOT:-}/var/snap/microk8s/common/.microk8s.yaml\" <<'EOF'\n%sEOF\n%s", lc, installScript)
	}
	for _, i := range insts {
		e.mustSh(t, i.ID, script)
	}
}

// The kubelet arguments the DNS addon needs come from MicroK8s' default
// launch configuration, or from one that sets them, or from enabling dns:
// on the nodes that are members by then, and on a node that joins later
// (it takes the cluster's arguments). A dns enable cut short misses them
// (TestEnableCutShortByTheAPIServer).
func TestKubeletArgumentsOfDNS(t *testing.T) {
	const noArgs = "---\nversion: 0.1.0\nextraSANs:\n  - 10.0.0.1\n"
	const withArgs = noArgs + "extraKubeletArgs:\n  --cluster-domain: cluster.local\n  --cluster-dns: 10.152.183.10\n"
	tests := []struct {
		name   string
		lc     string
		before string // on node 0 before node 1 joins
		after  string // on node 0 after it joined
		// wantDNS: --cluster-dns on node 0 and node 1; wantAddon: dns enabled.
		wantDNS, wantAddon bool
	}{
		{"MicroK8sDefaultConfiguration", "", "", "", true, true},
		{"ConfigurationWithoutThem", noArgs, "", "", false, false},
		{"ConfigurationWithThem", withArgs, "", "", true, false},
		{"EnabledBeforeTheJoin", noArgs, "microk8s enable dns", "", true, true},
		{"EnabledAfterTheJoin", noArgs, "", "microk8s enable dns", true, true},
		// cert-manager's enable script enables dns first.
		{"EnabledByCertManager", noArgs, "", "microk8s enable cert-manager", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			nodes := e.addInstances(2)
			e.installWith(t, tc.lc, nodes...)
			if tc.before != "" {
				e.mustSh(t, nodes[0].ID, tc.before)
			}
			e.mustSh(t, nodes[1].ID, "microk8s join "+e.joinURL(t, nodes[0], "600")+" >/dev/null")
			if tc.after != "" {
				e.mustSh(t, nodes[0].ID, tc.after)
			}
			for _, n := range nodes {
				h := e.host(t, n.ID)
				if got := h.KubeletArgs["--cluster-dns"] == "10.152.183.10"; got != tc.wantDNS {
					t.Errorf("%s: --cluster-dns set %v, want %v (%v)", n.ID, got, tc.wantDNS, h.KubeletArgs)
				}
				if got := slices.Contains(h.Addons, "dns"); got != tc.wantAddon {
					t.Errorf("%s: dns enabled %v, want %v", n.ID, got, tc.wantAddon)
				}
			}
		})
	}
}

// An enable the API server's restart cuts short (a voter joined meanwhile):
// the addon's manifests were applied, so MicroK8s calls it enabled, but its
// script stopped before the kubelet arguments; enabling it again is "already
// enabled" at once, and changes no argument either.
func TestEnableCutShortByTheAPIServer(t *testing.T) {
	f := fidelity.New(1)
	f.Force(fidelity.APIServerBlink, 1)
	lat := latency.New(0.001, latency.Typical, 1)
	lat.Fix(latency.Addons, 1500)         // 1.5 s
	lat.Fix(latency.APIServerBlink, 2500) // 2.5 s
	e := newEnv(t, envOptions{lat: lat, fidelity: f})
	nodes := e.addInstances(2)
	e.installWith(t, "---\nversion: 0.1.0\n", nodes...)
	url := e.joinURL(t, nodes[0], "600")

	enable := e.send(t, ids(nodes[:1]), "microk8s enable dns", nil)
	time.Sleep(300 * time.Millisecond)
	e.mustSh(t, nodes[1].ID, "microk8s join "+url+" >/dev/null") // the API server restarts for 2.5 s
	r := e.wait(t, enable, nodes[0].ID)
	if r.code != 1 || !strings.Contains(r.stderr, "connection to the server 127.0.0.1:16443 was refused") {
		t.Fatalf("enable across the restart: %+v", r)
	}
	// While the API server is down, enable cannot even read the addons.
	if r := e.sh(t, nodes[0].ID, "microk8s enable dns"); r.code != 1 || !strings.Contains(r.stderr, "Traceback") {
		t.Fatalf("enable while the API server is down: %+v", r)
	}
	time.Sleep(2500 * time.Millisecond)
	start := time.Now()
	r = e.mustSh(t, nodes[0].ID, "microk8s enable dns")
	if !strings.Contains(r.stdout, "Addon core/dns is already enabled") || time.Since(start) > time.Second {
		t.Fatalf("enable again (%v): %+v", time.Since(start), r)
	}
	for _, n := range nodes {
		if h := e.host(t, n.ID); h.KubeletArgs["--cluster-dns"] != "" || !slices.Contains(h.Addons, "dns") {
			t.Errorf("%s: addons %v, kubelet %v", n.ID, h.Addons, h.KubeletArgs)
		}
	}
}

// TestScaleDownCommands: what a scale down runs on node 0 (shrink.sh), as
// MicroK8s answers it: a running worker is drained and removed without
// --force (it runs no dqlite); a running control-plane voter is refused
// without --force (remove_node.py) and removed from dqlite with it.
func TestScaleDownCommands(t *testing.T) {
	e := newEnv(t, envOptions{})
	nodes := e.addInstances(4)
	e.install(t, nodes...)
	url := e.joinURL(t, nodes[0], "600")
	e.mustSh(t, nodes[1].ID, "microk8s join "+url)
	e.mustSh(t, nodes[2].ID, "microk8s join "+url)
	e.mustSh(t, nodes[3].ID, "microk8s join "+url+" --worker")
	worker, voter := hostnameFor(nodes[3].PrivateIP, ""), hostnameFor(nodes[2].PrivateIP, "")

	r := e.mustSh(t, nodes[0].ID, "microk8s kubectl drain "+worker+" --ignore-daemonsets --delete-emptydir-data --force --timeout=120s")
	if !strings.Contains(r.stdout, "node/"+worker+" drained") {
		t.Fatalf("drain: %+v", r)
	}
	if r := e.sh(t, nodes[0].ID, "microk8s kubectl cordon no-such-node"); r.code != 1 || !strings.Contains(r.stderr+r.stdout, "not found") {
		t.Fatalf("cordon of an unknown node: %+v", r)
	}
	e.mustSh(t, nodes[0].ID, "microk8s remove-node "+nodes[3].PrivateIP)
	if r := e.sh(t, nodes[0].ID, "microk8s remove-node "+nodes[2].PrivateIP); r.code != 1 || !strings.Contains(r.stdout, "registered with dqlite") {
		t.Fatalf("remove a voter without --force: %+v", r)
	}
	e.mustSh(t, nodes[0].ID, "microk8s remove-node "+voter+" --force")
	h := e.host(t, nodes[0].ID)
	if len(h.Members) != 2 || contains(h.DqliteKnown, nodes[2].PrivateIP) {
		t.Fatalf("after the removals: %+v", h)
	}
	voters := 0
	for _, m := range h.Members {
		if m.DqliteRole == "voter" {
			voters++
		}
	}
	// 2 dqlite nodes are "too small" (go-dqlite RolesChanges.Adjust): one voter.
	if voters != 1 {
		t.Fatalf("%d voters after a voter left a 3-voter cluster, want 1: %+v", voters, h.Members)
	}
	if !e.host(t, nodes[2].ID).PartialJoin {
		t.Fatal("a voter forced out while running should need `microk8s leave` before it joins again")
	}
}
