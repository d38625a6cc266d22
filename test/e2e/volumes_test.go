package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/test/localrt"
)

// dataVolumes gives every node, a node added by a scale included, its
// extra gp3 volumes, encrypted and deleted with the instance; the teardown
// leaves none (the leak audit lists every volume tagged for the MEC).
func TestDataVolumesLiveAndDieWithTheirNodes(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	name := localrt.UniqueName("disks")
	m := accepted(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":1,"dataVolumes":{"count":2,"sizeGiB":20}}`, name))
	waitStatus(t, rt, m.ID, mec.Ready, 2*time.Minute)
	code, m, b := scaleTo(t, rt, m.ID, `{"nodeCount":2}`)
	if code != 202 {
		t.Fatalf("PATCH: %d %s", code, b)
	}
	if len(m.LiveNodes()) != 2 {
		t.Fatalf("%d nodes after the scale, want 2", len(m.LiveNodes()))
	}
	for _, n := range m.LiveNodes() {
		in, ok := rt.Sim.EC2Sim.Instance(n.InstanceID)
		if !ok || len(in.Volumes) != 3 {
			t.Fatalf("node %d (%s): volumes %+v, want the root and 2 data volumes", n.Index, n.InstanceID, in.Volumes)
		}
		for i, v := range in.Volumes[1:] {
			want := []string{"/dev/sdf", "/dev/sdg"}[i]
			if v.DeviceName != want || v.SizeGiB != 20 || v.VolumeType != "gp3" || !v.Encrypted || !v.DeleteOnTermination ||
				v.Tags[mec.TagClusterID] != m.ID {
				t.Errorf("node %d data volume %d: %+v, want %s, 20 GiB gp3, encrypted, deleted on termination, tagged", n.Index, i, v, want)
			}
		}
	}
	deleteClean(t, rt, m.ID)
}
