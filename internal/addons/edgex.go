package addons

// edgex is EdgeX Foundry 4.0 (manifests/edgex.yaml). It needs cluster DNS
// (its services find each other by Service name) and a default StorageClass
// for PostgreSQL's claim. Ready: every Deployment rolled out, which waits
// for each pod's readinessProbe (for the EdgeX services their own ping, GET
// /api/v3/ping, unauthenticated: go-mod-bootstrap
// bootstrap/controller/commonapi.go), and the common configuration pushed
// (the bootstrapper Job complete).
var edgex = Addon{
	Name:      "edgex",
	Namespace: "edgex",
	Needs:     []string{"dns", "hostpath-storage|replicated-storage"},
	Why:       "its services find each other by DNS name, and PostgreSQL's volume claim needs a default StorageClass",
	Rollouts: []string{"deployment/edgex-postgres", "deployment/edgex-mqtt-broker", "deployment/edgex-core-keeper",
		"deployment/edgex-core-metadata", "deployment/edgex-core-data", "deployment/edgex-core-command"},
	Jobs: []string{"job/edgex-core-common-config-bootstrapper-4-0-1"},
	// Image pulls (about 50-100 MB each) and EdgeX's own start, whose
	// services wait up to 60 s for the common configuration, then restart.
	Timeout: 600,
	file:    "edgex.yaml",
}
