package ssmsim

import (
	"regexp"
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
// pod does not start until a node has a Longhorn disk: labelled, annotated
// with a path that is mounted.
func TestLonghornOnMicroK8s(t *testing.T) {
	e := newEnv(t, envOptions{})
	inst := e.addInstance(withDisks)
	e.install(t, inst)
	e.mustSh(t, inst.ID, "microk8s enable dns hostpath-storage")
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
	if r := e.sh(t, inst.ID, "microk8s kubectl label nodes --all node.longhorn.io/create-default-disk=true && microk8s kubectl label nodes --all node.longhorn.io/create-default-disk=config"); r.code != 1 ||
		!strings.Contains(r.stderr, "already has a value (true), and --overwrite is false") {
		t.Errorf("label without --overwrite: %+v", r)
	}
	e.mustSh(t, inst.ID, "microk8s kubectl label nodes --all --overwrite node.longhorn.io/create-default-disk=config")
	if r := e.sh(t, inst.ID, "microk8s kubectl -n shop rollout status deployment/db --timeout=5s"); r.code != 0 {
		t.Errorf("db on a Longhorn disk: %+v", r)
	}
	if h := e.host(t, inst.ID); h.ClaimClasses["shop/db"] != "longhorn" {
		t.Errorf("claims %v", h.ClaimClasses)
	}
	if r := e.mustSh(t, inst.ID, "microk8s kubectl annotate storageclass microk8s-hostpath --overwrite storageclass.kubernetes.io/is-default-class=false"); !strings.Contains(r.stdout, "storageclass.storage.k8s.io/microk8s-hostpath annotated") {
		t.Errorf("annotate: %+v", r)
	}
}
