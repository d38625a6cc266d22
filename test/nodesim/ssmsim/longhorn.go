package ssmsim

import (
	"encoding/json"
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

// longhornDiskNodesLocked lists the instances on which Longhorn has a
// usable disk: labelled create-default-disk=config, with a
// default-disks-config whose every path is a mounted filesystem on that
// node (the manager creates those disks:
// controller/kubernetes_node_controller.go syncDefaultDisks; a path that
// is not there is a disk that is not Ready). Members in join order.
func (s *Sim) longhornDiskNodesLocked(c *cluster) []string {
	var ids []string
	for _, m := range c.members {
		th := s.hosts[m.instanceID]
		if m.left || th == nil || m.labels[lhDiskLabel] != "config" {
			continue
		}
		var disks []struct {
			Path string `json:"path"`
		}
		if json.Unmarshal([]byte(m.annotations[lhDiskAnnotation]), &disks) != nil || len(disks) == 0 {
			continue
		}
		ok := true
		for _, d := range disks {
			ok = ok && th.mountedLocked(d.Path)
		}
		if ok {
			ids = append(ids, m.instanceID)
		}
	}
	return ids
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
