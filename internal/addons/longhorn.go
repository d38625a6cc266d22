package addons

// replicatedStorage is Longhorn (manifests/longhorn.yaml, written from its
// release manifest by upstream/longhorn.py) on the MEC's data volumes: each
// volume keeps 3 replicas on 3 nodes, so its data outlives a lost node, and
// its StorageClass, longhorn, is the default. Node preparation (open-iscsi,
// iscsi_tcp, the data volumes formatted and mounted, each node labelled
// with its disks) is in the node scripts (lib.sh prepare_storage,
// label_storage_nodes).
//
// Ready: longhorn-manager on every node (its readiness probe is its own
// /v1/healthz; it starts only where iscsid runs: app/daemon.go
// environmentCheck), the UI, the driver deployer, and what the deployer
// makes (longhorn-manager csi/deployment.go): the CSI plugin on every node
// and the provisioner and attacher, without which no claim binds. Then
// Longhorn's own view: every Kubernetes node has its Longhorn node with all
// its data volumes as disks, each Ready and Schedulable (storage.sh
// longhorn_disks_pending). Longhorn takes a node's disks from its
// annotation silently or not at all (a refused annotation is a warning in
// the manager's log), so the pods alone can be ready on a cluster where no
// replica can be placed.
var replicatedStorage = Addon{
	Name:      "replicated-storage",
	Namespace: "longhorn-system",
	// The driver deployer and the UI reach the manager as
	// http://longhorn-backend:9500.
	Needs:       []string{"dns"},
	Why:         "Longhorn's components reach its manager by Service name",
	MinNodes:    3,
	DataVolumes: true,
	NeedsWhy:    "Longhorn keeps 3 replicas of each volume on 3 nodes, on the data volumes",
	Rollouts:    []string{"daemonset/longhorn-manager", "deployment/longhorn-ui", "deployment/longhorn-driver-deployer"},
	Made:        []string{"daemonset/longhorn-csi-plugin", "deployment/csi-provisioner", "deployment/csi-attacher"},
	Check:       "longhorn_disks_pending",
	// Image pulls (the manager's is about 100 MB, on every node) and the
	// deployer's wait for the manager, then the CSI images.
	Timeout:  600,
	Upstream: true,
	file:     "longhorn.yaml",
}
