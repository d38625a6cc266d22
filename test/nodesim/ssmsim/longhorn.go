package ssmsim

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// What Longhorn's own components do in a cluster, as far as a node script
// sees it through kubectl (longhorn-manager v1.12.1 sources cited). Only
// objects of Longhorn's release manifest (namespace longhorn-system) are
// modelled; everything else is a plain workload.
const (
	lhNamespace  = "longhorn-system"
	lhManager    = "longhorn-manager"
	lhDeployer   = "longhorn-driver-deployer"
	lhClass      = "longhorn"
	hostpathName = "microk8s-hostpath"
	// Kubernetes' default-class annotation (storage.k8s.io docs).
	defaultClassAnnotation = "storageclass.kubernetes.io/is-default-class"
	// Longhorn's node label and annotation for default disks (types/types.go).
	lhDiskLabel      = "node.longhorn.io/create-default-disk"
	lhDiskAnnotation = "node.longhorn.io/default-disks-config"
)

// lhMadeByDeployer are what `longhorn-manager deploy-driver` creates once
// it runs (csi/deployment.go): the CSI plugin on every node and the
// sidecar Deployments, each image from the deployer's *_IMAGE variables.
var lhMadeByDeployer = []struct {
	kind, name string
	images     []string // the deployer's environment variables
}{
	{"DaemonSet", "longhorn-csi-plugin", []string{"CSI_NODE_DRIVER_REGISTRAR_IMAGE", "CSI_LIVENESS_PROBE_IMAGE"}},
	{"Deployment", "csi-attacher", []string{"CSI_ATTACHER_IMAGE"}},
	{"Deployment", "csi-provisioner", []string{"CSI_PROVISIONER_IMAGE"}},
	{"Deployment", "csi-resizer", []string{"CSI_RESIZER_IMAGE"}},
	{"Deployment", "csi-snapshotter", []string{"CSI_SNAPSHOTTER_IMAGE"}},
}

// advanceLonghornLocked does what Longhorn's controllers would have done by
// now: once longhorn-manager runs on every node, its StorageClass from the
// longhorn-storageclass ConfigMap (the manager creates and owns it:
// controller/setting_controller.go); once the driver deployer runs, the CSI
// objects. Caller holds s.mu.
func (s *Sim) advanceLonghornLocked(h *host) {
	c := h.cluster
	if c == nil || c.objects == nil {
		return
	}
	if mgr := c.objects[objectKey("DaemonSet", lhNamespace, lhManager)]; mgr != nil && c.objects[objectKey("StorageClass", "", lhClass)] == nil {
		if ready, _ := s.workloadReadyLocked(c, mgr); ready {
			if cm := c.objects[objectKey("ConfigMap", lhNamespace, "longhorn-storageclass")]; cm != nil {
				sc := &object{kind: "StorageClass", group: "storage.k8s.io", name: lhClass, applied: time.Now()}
				sc.annotations = classAnnotations(cm.doc)
				c.objects[objectKey("StorageClass", "", lhClass)] = sc
			}
		}
	}
	dep := c.objects[objectKey("Deployment", lhNamespace, lhDeployer)]
	if dep == nil || c.objects[objectKey("DaemonSet", lhNamespace, "longhorn-csi-plugin")] != nil {
		return
	}
	if ready, _ := s.workloadReadyLocked(c, dep); !ready {
		return
	}
	for _, m := range lhMadeByDeployer {
		o := &object{kind: m.kind, group: "apps", namespace: lhNamespace, name: m.name, applied: time.Now()}
		for _, v := range m.images {
			o.images = append(o.images, dep.env[v])
		}
		if m.kind == "DaemonSet" {
			o.images = append(o.images, dep.images...) // the plugin runs the manager image
		}
		s.scheduleLocked(h, o)
		c.objects[objectKey(o.kind, o.namespace, o.name)] = o
	}
}

// classAnnotations reads the StorageClass a longhorn-storageclass
// ConfigMap holds, for its annotations.
func classAnnotations(cmDoc string) map[string]string {
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	var sc struct {
		Metadata struct {
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
	}
	if yaml.Unmarshal([]byte(cmDoc), &cm) != nil || yaml.Unmarshal([]byte(cm.Data["storageclass.yaml"]), &sc) != nil {
		return nil
	}
	return sc.Metadata.Annotations
}

// longhornPodLocked is why a pod of Longhorn's on node m (nil: not a
// DaemonSet's) is not Ready, or "": longhorn-manager exits where it finds
// no iscsid process ("failed to check environment, please make sure you
// have iscsiadm/open-iscsi installed on the host": app/daemon.go
// environmentCheck), and the kubelet restarts it with back-off; the driver
// deployer's init container waits until http://longhorn-backend:9500/v1
// answers (needs the manager and cluster DNS), then, without
// KUBELET_ROOT_DIR, looks for a kubelet or k3s process to read --root-dir
// from and exits when it finds neither, as on MicroK8s, whose kubelet runs
// inside kubelite (app/get_proc_arg.go detectKubeletRootDir).
func (s *Sim) longhornPodLocked(c *cluster, o *object, m *member) string {
	if o.namespace != lhNamespace {
		return ""
	}
	switch o.name {
	case lhManager:
		if th := s.hosts[m.instanceID]; th == nil || !th.storage.active["iscsid.service"] {
			return "CrashLoopBackOff"
		}
	case lhDeployer:
		mgr := c.objects[objectKey("DaemonSet", lhNamespace, lhManager)]
		if mgr == nil || !c.addons["dns"] {
			return "Init:0/1"
		}
		if ready, _ := s.workloadReadyLocked(c, mgr); !ready {
			return "Init:0/1"
		}
		if o.env["KUBELET_ROOT_DIR"] == "" {
			return "CrashLoopBackOff"
		}
	}
	return ""
}

// defaultClassLocked is the StorageClass a claim without one gets: the
// default; with two, the newer (Kubernetes docs, "Change the default
// StorageClass"), which is Longhorn's once it exists. hostpath-storage's
// microk8s-hostpath is a default until annotated otherwise.
func (s *Sim) defaultClassLocked(c *cluster) string {
	if sc := c.objects[objectKey("StorageClass", "", lhClass)]; sc != nil && sc.annotations[defaultClassAnnotation] == "true" {
		return lhClass
	}
	if c.addons["hostpath-storage"] && c.classAnnotations[hostpathName][defaultClassAnnotation] != "false" {
		return hostpathName
	}
	return ""
}

// claimStatusLocked is why a pod's claims keep it from running, or "". A
// claim is given the default class when it is made, or when a default
// appears later (RetroactiveDefaultStorageClass, GA in 1.28); without one
// it stays Pending. Longhorn's claims bind once its provisioner runs, and
// a pod starts once the volume attaches: the CSI plugin and attacher run
// and at least one node has a Longhorn disk (a volume with fewer replicas
// than asked runs degraded: Longhorn docs, "Volume conditions").
func (s *Sim) claimStatusLocked(c *cluster, o *object) string {
	if len(o.claims) == 0 {
		return ""
	}
	if o.claimClass == "" {
		o.claimClass = s.defaultClassLocked(c)
	}
	ready := func(kind, name string) bool {
		w := c.objects[objectKey(kind, lhNamespace, name)]
		if w == nil {
			return false
		}
		r, _ := s.workloadReadyLocked(c, w)
		return r
	}
	switch o.claimClass {
	case hostpathName:
		if c.addons["hostpath-storage"] {
			return ""
		}
	case lhClass:
		if !ready("Deployment", "csi-provisioner") {
			return "Pending"
		}
		if !ready("DaemonSet", "longhorn-csi-plugin") || !ready("Deployment", "csi-attacher") || len(s.longhornDiskNodesLocked(c)) == 0 {
			return "ContainerCreating"
		}
		return ""
	}
	return "Pending"
}

// lhDisk is one disk of a Longhorn node: its name and path as the
// default-disks-config annotation gave them.
type lhDisk struct{ name, path string }

// longhornNodeLocked brings m's Longhorn node up to date and reports
// whether it exists. longhorn-manager creates its node's object when it
// starts, without disks when create-default-disk-labeled-nodes is set
// (app/daemon.go initDaemonNode, datastore CreateDefaultNode); the node
// controller gives a node without disks those of its default-disks-config
// annotation once it is labelled create-default-disk=config
// (controller/kubernetes_node_controller.go syncDefaultDisks), and never
// again once it has some. An annotation CreateDisksFromAnnotation refuses
// (types/types.go: a path that is not there, a path twice, two paths on
// one filesystem, a name twice) gives no disks and only a warning in the
// manager's log. A node out of the cluster has none: the controller deletes
// the Longhorn node of a Kubernetes node that is gone (same file,
// syncKubernetesNode). Caller holds s.mu.
func (s *Sim) longhornNodeLocked(c *cluster, m *member) bool {
	if m.left {
		return false
	}
	th := s.hosts[m.instanceID]
	if !m.lhNode {
		mgr := c.objects[objectKey("DaemonSet", lhNamespace, lhManager)]
		if th == nil || mgr == nil || s.podStatusLocked(c, mgr, m) != "" {
			return false
		}
		m.lhNode = true
	}
	if len(m.lhDisks) > 0 || m.labels[lhDiskLabel] != "config" || m.annotations[lhDiskAnnotation] == "" {
		return true
	}
	var cfg []struct {
		Name string `json:"name"`
		Path string `json:"path"`
	}
	if json.Unmarshal([]byte(m.annotations[lhDiskAnnotation]), &cfg) != nil {
		return true
	}
	var disks []lhDisk
	fsys, names := map[string]bool{}, map[string]bool{}
	for _, d := range cfg {
		fi, err := os.Stat(filepath.Join(th.root, d.Path))
		fs := th.storage.mounts[d.Path]
		if fs == "" {
			fs = "/" // the root volume's
		}
		if d.Path == "" || err != nil || !fi.IsDir() || fsys[fs] {
			return true
		}
		if d.Name == "" {
			// DefaultDiskPrefix and the filesystem's id (types.go).
			d.Name = fmt.Sprintf("default-disk-%x", sha256.Sum256([]byte(th.id+fs)))[:29]
		}
		if names[d.Name] {
			return true
		}
		fsys[fs], names[d.Name] = true, true
		disks = append(disks, lhDisk{name: d.Name, path: d.Path})
	}
	m.lhDisks = disks
	return true
}

// longhornDiskReadyLocked is why disk d of m is not Ready, or "": the
// node controller's disk monitor reads the disk's filesystem and its
// longhorn-disk.cfg (controller/node_controller.go); a path that is gone
// is NoDiskInfo.
func (s *Sim) longhornDiskReadyLocked(m *member, d lhDisk) string {
	th := s.hosts[m.instanceID]
	if th == nil {
		return "NoDiskInfo"
	}
	if fi, err := os.Stat(filepath.Join(th.root, d.path)); err != nil || !fi.IsDir() {
		return "NoDiskInfo"
	}
	return ""
}

// longhornDiskNodesLocked lists the instances on which Longhorn has a
// disk that is Ready, in join order.
func (s *Sim) longhornDiskNodesLocked(c *cluster) []string {
	var ids []string
	for _, m := range c.members {
		if !s.longhornNodeLocked(c, m) {
			continue
		}
		for _, d := range m.lhDisks {
			if s.longhornDiskReadyLocked(m, d) == "" {
				ids = append(ids, m.instanceID)
				break
			}
		}
	}
	return ids
}

// kubectlGetLonghornNodes is `kubectl -n longhorn-system get
// nodes.longhorn.io|lhn -o json` (the CRD's plural and short name): the
// Longhorn node of each member (longhornNodeLocked), its disks with their
// Ready and Schedulable conditions (k8s/pkg/apis/longhorn/v1beta2/node.go:
// spec.disks, status.diskStatus; a disk that is not Ready is not
// Schedulable, reason DiskNotReady). Before Longhorn's CRDs are applied
// the API server has no such resource.
func (s *Sim) kubectlGetLonghornNodes(h *host, ns string, args []string) result {
	if !slices.Contains(args, "json") && !slices.Contains(args, "-ojson") && !slices.Contains(args, "-o=json") && !slices.Contains(args, "--output=json") {
		return fail(1, "error: the node simulator prints nodes.longhorn.io with -o json only\n")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := h.cluster
	if c == nil || c.objects[objectKey("CustomResourceDefinition", "", "nodes.longhorn.io")] == nil {
		return fail(1, "error: the server doesn't have a resource type \"nodes\"\n")
	}
	type cond struct {
		Type    string `json:"type"`
		Status  string `json:"status"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}
	items := []any{}
	if ns != lhNamespace {
		return success(`{"apiVersion":"v1","items":[],"kind":"List","metadata":{"resourceVersion":""}}` + "\n")
	}
	for _, m := range c.members {
		if !s.longhornNodeLocked(c, m) {
			continue
		}
		spec, status := map[string]any{}, map[string]any{}
		for _, d := range m.lhDisks {
			spec[d.name] = map[string]any{"diskType": "filesystem", "path": d.path, "allowScheduling": true, "evictionRequested": false, "storageReserved": 0, "tags": []string{}}
			ready, sched := cond{Type: "Ready", Status: "True"}, cond{Type: "Schedulable", Status: "True"}
			if why := s.longhornDiskReadyLocked(m, d); why != "" {
				ready = cond{Type: "Ready", Status: "False", Reason: why, Message: fmt.Sprintf("Disk %s(%s) on node %s is not ready: failed to get disk config", d.name, d.path, m.hostname)}
				sched = cond{Type: "Schedulable", Status: "False", Reason: "DiskNotReady", Message: "the disk is not ready"}
			}
			status[d.name] = map[string]any{"conditions": []cond{ready, sched}, "diskName": d.name, "diskPath": d.path, "diskType": "filesystem"}
		}
		items = append(items, map[string]any{
			"apiVersion": "longhorn.io/v1beta2", "kind": "Node",
			"metadata": map[string]any{"name": m.hostname, "namespace": lhNamespace},
			"spec":     map[string]any{"name": m.hostname, "allowScheduling": true, "disks": spec, "tags": []string{}},
			"status":   map[string]any{"conditions": []cond{{Type: "Ready", Status: "True"}, {Type: "Schedulable", Status: "True"}}, "diskStatus": status},
		})
	}
	b, _ := json.MarshalIndent(map[string]any{"apiVersion": "v1", "items": items, "kind": "List", "metadata": map[string]any{"resourceVersion": ""}}, "", "    ")
	return success(string(b) + "\n")
}

// annotationsFrom reads metadata.annotations of an applied document.
func annotationsFrom(doc map[string]any) map[string]string {
	meta, _ := doc["metadata"].(map[string]any)
	raw, _ := meta["annotations"].(map[string]any)
	out := map[string]string{}
	for k, v := range raw {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// trimRoot takes a host's root out of a value a script wrote (a mapped
// path in an annotation is the node's own path).
func trimRoot(h *host, v string) string { return strings.ReplaceAll(v, h.root, "") }
