package ssmsim

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mecd/mecd/internal/addons"
	"github.com/mecd/mecd/internal/node"
)

// withDisks attaches a partitioned root volume and a data volume.
func withDisks(i *Instance) {
	i.Disks = []Disk{{VolumeID: "vol-0aaaaaaaaaaaaaaa1", Root: true}, {VolumeID: "vol-0bbbbbbbbbbbbbbb2"}}
}

// The storage tools answer as the real ones: the volumes by id (the root
// one with its partition), blkid's exit 2 for a blank device, mkfs and
// mount refusing what they refuse, systemd units and kernel modules.
func TestStorageTools(t *testing.T) {
	e := newEnv(t, envOptions{})
	inst := e.addInstance(withDisks)
	data := "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0bbbbbbbbbbbbbbb2"
	for _, tc := range []struct {
		script string
		code   int32
		out    string // in stdout or stderr
	}{
		{"ls /dev/disk/by-id/", 0, "nvme-Amazon_Elastic_Block_Store_vol0aaaaaaaaaaaaaaa1-part1"},
		{"blkid -p " + data, 2, ""},
		{"mount " + data + " /var/lib/mecd/disks/data0", 32, "mount point does not exist"},
		{"mkdir -p /var/lib/mecd/disks/data0 && mount " + data + " /var/lib/mecd/disks/data0", 32, "wrong fs type"},
		{"mkfs.ext4 -q -m 0 -L mecd-data0 " + data, 0, ""},
		{"blkid -s TYPE -o value " + data, 0, "ext4"},
		{"mountpoint -q /var/lib/mecd/disks/data0", 32, ""},
		{"mount " + data + " /var/lib/mecd/disks/data0 && mountpoint -q /var/lib/mecd/disks/data0", 0, ""},
		{"mount " + data + " /var/lib/mecd/disks/data0", 32, "already mounted"},
		{"mkfs.ext4 -q " + data, 1, "is mounted; will not make a filesystem here!"},
		{"systemctl is-active iscsid.service", 3, "inactive"},
		{"systemctl is-active --quiet multipathd.service", 0, ""},
		{"systemctl enable --now iscsid.service && systemctl is-active iscsid", 0, "active"},
		{"systemctl enable --now nosuch.service", 1, "Unit file nosuch.service does not exist"},
		{"modprobe iscsi_tcp", 0, ""},
		{"modprobe nosuch", 1, "FATAL: Module nosuch not found"},
		{"apt-get install -y -q open-iscsi", 100, "Unable to locate package open-iscsi"},
		{"apt-get update -q && apt-get install -y nosuch", 100, "Unable to locate package nosuch"},
		{"apt-get install -y -q open-iscsi", 0, "Setting up open-iscsi"},
	} {
		r := e.sh(t, inst.ID, tc.script)
		if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.out) {
			t.Errorf("%s: exit %d %q %q, want exit %d with %q", tc.script, r.code, r.stdout, r.stderr, tc.code, tc.out)
		}
	}
	if h := e.host(t, inst.ID); h.Mounts["/var/lib/mecd/disks/data0"] != "/dev/nvme1n1" {
		t.Errorf("mounts %v", h.Mounts)
	}
}

// On an image without open-iscsi (Ubuntu's minimal images), mecd's install
// with a data volume installs it (after apt-get update: a new instance has
// no package index), starts iscsid and mounts the volume.
func TestPrepareStorageWithoutOpenISCSI(t *testing.T) {
	e := newEnv(t, envOptions{})
	inst := e.addInstance(withDisks)
	e.mustSh(t, inst.ID, "apt-get remove -y open-iscsi")
	script, err := node.Render(node.Install, map[string]string{"CHANNEL": "1.35/stable", "EXTRA_SANS": "10.0.0.1", "NODE0": inst.ID,
		"TOKEN_PARAM": "", "TOKEN_TTL": "600", "READY_TIMEOUT": "30", "RETRY_SECONDS": "0.1", "STORAGE_DISKS": "1"})
	if err != nil {
		t.Fatal(err)
	}
	if r := e.sh(t, inst.ID, script); r.code != 0 || !strings.Contains(r.stdout, "::mecd-data-disks 1") {
		t.Fatalf("install with a data volume on a minimal image: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := e.sh(t, inst.ID, "systemctl is-active iscsid"); r.code != 0 {
		t.Errorf("iscsid after the install: %+v", r)
	}
	if h := e.host(t, inst.ID); h.Mounts["/var/lib/mecd/disks/data0"] != "/dev/nvme1n1" {
		t.Errorf("mounts %v", h.Mounts)
	}
}

// Longhorn fails as it does on a MicroK8s node that was not prepared:
// longhorn-manager crash-loops where iscsid does not run, the driver
// deployer waits for it, then, without KUBELET_ROOT_DIR, crash-loops (it
// cannot find kubelet's root in kubelite); with both it makes the CSI
// objects, and the manager the default class. A claim on it binds but its
// pod does not start until a node has a Longhorn disk: labelled and
// annotated with a path that is there; the Longhorn node shows it Ready.
func TestLonghornOnMicroK8s(t *testing.T) {
	e := newEnv(t, envOptions{})
	inst := e.addInstance(withDisks)
	e.install(t, inst)
	e.mustSh(t, inst.ID, "microk8s enable dns hostpath-storage")
	if r := e.sh(t, inst.ID, "microk8s kubectl -n longhorn-system get lhn -o json"); r.code != 1 || !strings.Contains(r.stderr, "doesn't have a resource type") {
		t.Errorf("Longhorn nodes before its CRDs: %+v", r)
	}
	lh, _ := addons.Get("replicated-storage")
	write := "f=$(mktemp)\ncat > \"$f\" <<'EOF'\n" + string(lh.Manifest()) + "EOF\n"
	rollout := func(what string) runResult {
		return e.sh(t, inst.ID, "microk8s kubectl -n longhorn-system rollout status "+what+" --timeout=1s")
	}
	pods := func(want string) {
		t.Helper()
		r := e.mustSh(t, inst.ID, "microk8s kubectl get pods -n longhorn-system --no-headers")
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("pods lack %s:\n%s", want, r.stdout)
		}
	}
	e.mustSh(t, inst.ID, write+"sed -i '/name: KUBELET_ROOT_DIR/,+1d' \"$f\"\nmicrok8s kubectl apply -f \"$f\"")
	if r := rollout("daemonset/longhorn-manager"); r.code != 1 || !strings.Contains(r.stdout, `Waiting for daemon set "longhorn-manager" rollout to finish: 0 of 1 updated pods are available`) {
		t.Errorf("manager without iscsid: %+v", r)
	}
	pods(`longhorn-manager-\w+\s+0/1\s+CrashLoopBackOff`)
	pods(`longhorn-driver-deployer-\w+\s+0/1\s+Init:0/1`)

	e.mustSh(t, inst.ID, "systemctl enable --now iscsid.service")
	if r := rollout("daemonset/longhorn-manager"); r.code != 0 || !strings.Contains(r.stdout, `daemon set "longhorn-manager" successfully rolled out`) {
		t.Errorf("manager with iscsid: %+v", r)
	}
	pods(`longhorn-driver-deployer-\w+\s+0/1\s+CrashLoopBackOff`)
	if r := rollout("daemonset/longhorn-csi-plugin"); r.code != 1 || !strings.Contains(r.stderr, "NotFound") {
		t.Errorf("CSI plugin before the deployer ran: %+v", r)
	}

	e.mustSh(t, inst.ID, write+"microk8s kubectl apply -f \"$f\"")
	for _, w := range []string{"deployment/longhorn-driver-deployer", "daemonset/longhorn-csi-plugin", "deployment/csi-provisioner", "deployment/csi-attacher"} {
		if r := rollout(w); r.code != 0 {
			t.Errorf("%s: %+v", w, r)
		}
	}
	if h := e.host(t, inst.ID); h.DefaultClass != "longhorn" {
		t.Errorf("default class %q, want longhorn (the newer default)", h.DefaultClass)
	}

	shop := "g=$(mktemp)\ncat > \"$g\" <<'EOF'\n" + testManifest + "EOF\nmicrok8s kubectl apply -f \"$g\""
	e.mustSh(t, inst.ID, shop)
	if r := e.sh(t, inst.ID, "microk8s kubectl -n shop rollout status deployment/db --timeout=1s"); r.code != 1 {
		t.Errorf("db without a Longhorn disk: %+v", r)
	}
	if r := e.mustSh(t, inst.ID, "microk8s kubectl get pods -n shop --no-headers"); !regexp.MustCompile(`db-\w+\s+0/1\s+ContainerCreating`).MatchString(r.stdout) {
		t.Errorf("pods:\n%s", r.stdout)
	}
	data := "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0bbbbbbbbbbbbbbb2"
	e.mustSh(t, inst.ID, "mkdir -p /var/lib/mecd/disks/data0 && mkfs.ext4 -q "+data+" && mount "+data+" /var/lib/mecd/disks/data0")
	e.mustSh(t, inst.ID, `microk8s kubectl annotate nodes --all --overwrite 'node.longhorn.io/default-disks-config=[{"path":"/var/lib/mecd/disks/data0","allowScheduling":true}]'`)
	if got := lhDisks(t, e, inst.ID); len(got) != 1 || len(got[0]) != 0 {
		t.Errorf("Longhorn nodes before the label: %v, want one without disks", got)
	}
	if r := e.sh(t, inst.ID, "microk8s kubectl label nodes --all node.longhorn.io/create-default-disk=false && microk8s kubectl label nodes --all node.longhorn.io/create-default-disk=config"); r.code != 1 ||
		!strings.Contains(r.stderr, "already has a value (false), and --overwrite is false") {
		t.Errorf("label without --overwrite: %+v", r)
	}
	e.mustSh(t, inst.ID, "microk8s kubectl label nodes --all --overwrite node.longhorn.io/create-default-disk=config")
	if r := e.sh(t, inst.ID, "microk8s kubectl -n shop rollout status deployment/db --timeout=5s"); r.code != 0 {
		t.Errorf("db on a Longhorn disk: %+v", r)
	}
	if h := e.host(t, inst.ID); h.ClaimClasses["shop/db"] != "longhorn" {
		t.Errorf("claims %v", h.ClaimClasses)
	}
	if got := lhDisks(t, e, inst.ID); len(got) != 1 || len(got[0]) != 1 || !strings.HasPrefix(got[0][0], "default-disk-") || !strings.HasSuffix(got[0][0], " Ready=True Schedulable=True") {
		t.Errorf("Longhorn nodes after the label: %v, want one with a default-disk-<id> Ready and Schedulable", got)
	}
	if r := e.mustSh(t, inst.ID, "microk8s kubectl annotate storageclass microk8s-hostpath --overwrite storageclass.kubernetes.io/is-default-class=false"); !strings.Contains(r.stdout, "storageclass.storage.k8s.io/microk8s-hostpath annotated") {
		t.Errorf("annotate: %+v", r)
	}
}

// lhDisks reads `kubectl get nodes.longhorn.io -o json` on id: per Longhorn
// node, each disk as "NAME Ready=S Schedulable=S", sorted.
func lhDisks(t *testing.T, e *env, id string) [][]string {
	t.Helper()
	r := e.mustSh(t, id, "microk8s kubectl -n longhorn-system get nodes.longhorn.io -o json")
	var list struct {
		Items []struct {
			Status struct {
				DiskStatus map[string]struct {
					Conditions []struct{ Type, Status string }
				} `json:"diskStatus"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("nodes.longhorn.io: %v\n%s", err, r.stdout)
	}
	var out [][]string
	for _, n := range list.Items {
		disks := []string{}
		for name, st := range n.Status.DiskStatus {
			d := name
			for _, c := range st.Conditions {
				d += " " + c.Type + "=" + c.Status
			}
			disks = append(disks, d)
		}
		slices.Sort(disks)
		out = append(out, disks)
	}
	return out
}

// Longhorn refuses a default-disks-config whose two paths are on one
// filesystem (both on the root volume: the data volume not mounted) and
// gives the node no disks, silently; once the annotation names one path on
// the mounted volume, the node, still without disks, takes it.
func TestLonghornRefusesDisksOnOneFilesystem(t *testing.T) {
	e := newEnv(t, envOptions{})
	inst := e.addInstance(withDisks)
	e.install(t, inst)
	lh, _ := addons.Get("replicated-storage")
	e.mustSh(t, inst.ID, "microk8s enable dns && systemctl enable --now iscsid.service\nf=$(mktemp)\ncat > \"$f\" <<'EOF'\n"+string(lh.Manifest())+"EOF\nmicrok8s kubectl apply -f \"$f\" >/dev/null")
	if r := e.sh(t, inst.ID, "microk8s kubectl -n longhorn-system rollout status daemonset/longhorn-manager --timeout=5s"); r.code != 0 {
		t.Fatalf("manager: %+v", r)
	}
	e.mustSh(t, inst.ID, `mkdir -p /var/lib/mecd/disks/data0 /var/lib/mecd/disks/data1
microk8s kubectl annotate nodes --all --overwrite 'node.longhorn.io/default-disks-config=[{"name":"data0","path":"/var/lib/mecd/disks/data0"},{"name":"data1","path":"/var/lib/mecd/disks/data1"}]'
microk8s kubectl label nodes --all --overwrite node.longhorn.io/create-default-disk=config`)
	if got := lhDisks(t, e, inst.ID); len(got) != 1 || len(got[0]) != 0 {
		t.Errorf("two disks on the root filesystem: %v, want a node without disks", got)
	}
	data := "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0bbbbbbbbbbbbbbb2"
	e.mustSh(t, inst.ID, "mkfs.ext4 -q "+data+" && mount "+data+` /var/lib/mecd/disks/data0
microk8s kubectl annotate nodes --all --overwrite 'node.longhorn.io/default-disks-config=[{"name":"data0","path":"/var/lib/mecd/disks/data0"}]'`)
	if got := lhDisks(t, e, inst.ID); len(got) != 1 || !slices.Equal(got[0], []string{"data0 Ready=True Schedulable=True"}) {
		t.Errorf("one disk on the data volume: %v", got)
	}
	if h := e.host(t, inst.ID); !slices.Equal(h.LonghornDiskNodes, []string{inst.ID}) {
		t.Errorf("disk nodes %v", h.LonghornDiskNodes)
	}
}
