package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/test/localrt"
	"github.com/mecd/mecd/test/nodesim/fault"
)

// A 3-node MEC with EdgeX (mecd's own addon) and a data volume per node is
// READY, its record saying each addon's state: MicroK8s' enabled, EdgeX
// ready once its rollouts (its services' own pings as readiness probes) and
// its bootstrap job said so. A scale to 4 re-applies it and it is ready
// again. The teardown leaves nothing, the volumes included.
func TestEdgeXOnAThreeNodeMEC(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	name := localrt.UniqueName("edgex")
	m := accepted(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":3,"addons":["dns","hostpath-storage","edgex"],"dataVolumes":{"count":1}}`, name))
	m = waitStatus(t, rt, m.ID, mec.Ready, 3*time.Minute)
	want := map[string]string{"dns": "enabled", "hostpath-storage": "enabled", "edgex": "ready"}
	if len(m.Addons) != len(want) {
		t.Fatalf("addon states %+v, want %v", m.Addons, want)
	}
	for i, a := range m.Addons {
		if a.Name != m.Spec.Addons[i] || a.State != want[a.Name] {
			t.Errorf("addon state %d: %+v, want %s %s (the spec's order)", i, a, m.Spec.Addons[i], want[m.Spec.Addons[i]])
		}
	}
	// A scale re-applies it (unchanged) and waits for it again.
	code, m, b := scaleTo(t, rt, m.ID, `{"nodeCount":4}`)
	if code != 202 {
		t.Fatalf("PATCH: %d %s", code, b)
	}
	if i := slices.IndexFunc(m.Addons, func(a mec.AddonState) bool { return a.Name == "edgex" }); i < 0 || m.Addons[i].State != "ready" || len(m.LiveNodes()) != 4 {
		t.Errorf("after a scale to 4: %d nodes, addon states %+v", len(m.LiveNodes()), m.Addons)
	}
	deleteClean(t, rt, m.ID)
}

// An EdgeX image the registry will not serve leaves its deployment in
// ImagePullBackOff: the provisioning fails naming what is not ready and
// the pod's state, and the rollback leaves nothing.
func TestEdgeXImagePullFailureIsNamed(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	name := localrt.UniqueName("edgex-pull")
	rt.Sim.Faults.FailImage(fault.Host{TagKey: mec.TagName, TagValue: name, Index: fault.AnyIndex},
		"docker.io/edgexfoundry/core-data:4.0.1", "toomanyrequests: You have reached your unauthenticated pull rate limit")
	m := accepted(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":1,"addons":["dns","hostpath-storage","edgex"]}`, name))
	m = waitFor(t, rt, m.ID, 3*time.Minute, func(m *mec.MEC) bool { return m.Status == mec.Failed })
	for _, w := range []string{"addon edgex is not ready", "deployment/edgex-core-data", "edgex-core-data-", "ImagePullBackOff"} {
		if !strings.Contains(m.FailureCause, w) {
			t.Errorf("failure cause %q lacks %q", m.FailureCause, w)
		}
	}
	for _, w := range []string{"deployment/edgex-core-keeper", "job/"} {
		if strings.Contains(m.FailureCause, w) {
			t.Errorf("failure cause %q names %s, which was ready", m.FailureCause, w)
		}
	}
	leakFree(t, rt, m.ID)
}

// A type the spec's memory table does not know (m1 is not among its
// families) is checked against EC2's own figure before the API accepts.
func TestFitCheckWithEC2sMemoryFigure(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	name := localrt.UniqueName("m1")
	code, _, b := call(t, rt, "POST", "/mecs", `{"name":"`+name+`","nodeCount":1,"instanceType":"m1.small","addons":["dns","observability"]}`, nil)
	if code != 400 || !strings.Contains(string(b), "will not fit m1.small's 1740 MiB") || !strings.Contains(string(b), "an instanceType with at least") {
		t.Fatalf("POST m1.small with observability: %d %s", code, b)
	}
}

// The seed's workloads together: a 3-node MEC with EdgeX on replicated
// storage (Longhorn on one data volume per node) and observability is
// READY, every addon's state on the record. Each node's data volume is
// formatted and mounted where Longhorn's disk is, Longhorn's class is the
// only default (observability's hostpath-storage is not), and EdgeX's
// PostgreSQL claim is on it. Fewer than 3 nodes are refused, at create and
// at scale, naming nodeCount; a node a scale adds gets its disk too; the
// teardown deletes the volumes.
func TestReplicatedStorageUnderEdgeX(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	name := localrt.UniqueName("longhorn")
	code, _, b := call(t, rt, "POST", "/mecs", fmt.Sprintf(`{"name":%q,"nodeCount":1,"instanceType":"t4g.large","addons":["dns","replicated-storage"],"dataVolumes":{"count":1}}`, name), nil)
	if code != 400 || !strings.Contains(string(b), "nodeCount") || !strings.Contains(string(b), "must be at least 3 with replicated-storage") {
		t.Fatalf("POST replicated-storage on 1 node: %d %s", code, b)
	}
	m := accepted(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":3,"instanceType":"t4g.large","addons":["dns","edgex","replicated-storage","observability"],"dataVolumes":{"count":1,"sizeGiB":50}}`, name))
	m = waitStatus(t, rt, m.ID, mec.Ready, 4*time.Minute)
	want := map[string]string{"dns": "enabled", "observability": "enabled", "replicated-storage": "ready", "edgex": "ready"}
	got := map[string]string{}
	for _, a := range m.Addons {
		got[a.Name] = a.State
	}
	if !maps.Equal(got, want) {
		t.Errorf("addon states %+v, want %v", m.Addons, want)
	}
	for _, n := range m.LiveNodes() {
		h, ok := rt.Sim.SSMSim.Host(n.InstanceID)
		if !ok || h.Mounts["/var/lib/mecd/disks/data0"] == "" {
			t.Errorf("node %d: mounts %v, want its data volume on /var/lib/mecd/disks/data0", n.Index, h.Mounts)
		}
	}
	h, _ := rt.Sim.SSMSim.Host(m.Nodes[0].InstanceID)
	if h.DefaultClass != "longhorn" || h.ClaimClasses["edgex/edgex-postgres"] != "longhorn" {
		t.Errorf("default class %q, claims %v: want EdgeX's PostgreSQL on longhorn", h.DefaultClass, h.ClaimClasses)
	}
	code, _, b = scaleTo(t, rt, m.ID, `{"nodeCount":2,"haControlPlane":false}`)
	if code != 400 || !strings.Contains(string(b), "must be at least 3 with replicated-storage") {
		t.Errorf("PATCH to 2 nodes: %d %s, want 400 naming nodeCount", code, b)
	}
	// A node a scale adds gets its disk mounted before it joins, and
	// Longhorn (its manager and CSI plugin on every node) is ready again.
	code, m, b = scaleTo(t, rt, m.ID, `{"nodeCount":4}`)
	if code != 202 {
		t.Fatalf("PATCH to 4: %d %s", code, b)
	}
	for _, n := range m.LiveNodes() {
		if h, _ := rt.Sim.SSMSim.Host(n.InstanceID); h.Mounts["/var/lib/mecd/disks/data0"] == "" {
			t.Errorf("after the scale, node %d: mounts %v", n.Index, h.Mounts)
		}
	}
	if i := slices.IndexFunc(m.Addons, func(a mec.AddonState) bool { return a.Name == "replicated-storage" }); i < 0 || m.Addons[i].State != "ready" {
		t.Errorf("after the scale: addon states %+v", m.Addons)
	}
	deleteClean(t, rt, m.ID)
}

// Replicated storage outlives a node: node 0 of a 3-node MEC with EdgeX
// on Longhorn is lost behind mecd's back; the repair's new node gets its
// data volume mounted and labelled as a Longhorn disk node before Longhorn
// and EdgeX are found ready again, so Longhorn has 3 nodes to rebuild the
// lost replicas on (it keeps one per node: replica-soft-anti-affinity is
// false by default). EdgeX's database claim stays on Longhorn.
func TestReplicatedStorageOutlivesANode(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	m := accepted(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":3,"instanceType":"t4g.large","addons":["dns","edgex","replicated-storage"],"dataVolumes":{"count":1}}`, localrt.UniqueName("longhorn-heal")))
	m = waitStatus(t, rt, m.ID, mec.Ready, 3*time.Minute)
	diskNodes := func(m *mec.MEC) (got, want []string) {
		for _, n := range m.LiveNodes() {
			want = append(want, n.InstanceID)
		}
		h, _ := rt.Sim.SSMSim.Host(m.Node0().InstanceID)
		got = slices.Clone(h.LonghornDiskNodes)
		slices.Sort(got)
		slices.Sort(want)
		return got, want
	}
	if got, want := diskNodes(m); !slices.Equal(got, want) {
		t.Fatalf("Longhorn disk nodes %v, want every node %v", got, want)
	}
	lost := m.Nodes[0]
	terminateBehindMecdsBack(t, rt, lost.InstanceID)
	sweepUntil(t, rt, m.ID, mec.Repairing)
	got := waitSettled(t, rt, m.ID, 2*time.Minute)
	if op := got.Operation(); got.Status != mec.Ready || op == nil || op.Kind != mec.OperationRepair || op.Outcome != mec.OutcomeSucceeded {
		t.Fatalf("after the loss of node 0: %s (%s), operation %+v", got.Status, got.DegradedCause, got.Operation())
	}
	if dn, want := diskNodes(got); len(want) != 3 || slices.Contains(want, lost.InstanceID) || !slices.Equal(dn, want) {
		t.Errorf("after the repair: Longhorn disk nodes %v, want the 3 live nodes %v", dn, want)
	}
	for _, a := range got.Addons {
		if a.Name != "dns" && a.State != "ready" {
			t.Errorf("after the repair: addon %s %s, want ready", a.Name, a.State)
		}
	}
	if h, _ := rt.Sim.SSMSim.Host(got.Node0().InstanceID); h.ClaimClasses["edgex/edgex-postgres"] != "longhorn" {
		t.Errorf("after the repair: claims %v, want EdgeX's PostgreSQL on longhorn", h.ClaimClasses)
	}
	deleteClean(t, rt, m.ID)
}
