package ssmsim

import (
	"testing"
	"time"

	"github.com/mecd/mecd/test/nodesim/latency"
)

// A 60 s snap install takes about 0.6 s at scale 0.01.
func TestSnapInstallLatencyScaled(t *testing.T) {
	lat := latency.New(0.01, latency.Typical, 1)
	lat.Fix(latency.SnapInstall, 60)
	e := newEnv(t, envOptions{lat: lat})
	inst := e.addInstance()
	duration := func(commandID string) time.Duration {
		for _, inv := range e.sim.Invocations() {
			if inv.CommandID == commandID {
				return inv.EndedAt.Sub(inv.StartedAt)
			}
		}
		return 0
	}
	// What running a stand-in costs without any latency (bash, the re-executed binary).
	overhead := duration(e.mustSh(t, inst.ID, "snap wait system seed.loaded").commandID)
	took := duration(e.mustSh(t, inst.ID, installScript).commandID) - overhead
	if took < 550*time.Millisecond || took > 900*time.Millisecond {
		t.Fatalf("scaled 60 s install took %v (+%v to run the stand-in), want about 0.6 s", took, overhead)
	}
	t.Logf("scaled 60 s install took %v (+%v to run the stand-in)", took, overhead)

	// Join and addons follow the same model.
	lat.Fix(latency.Addons, 30)
	if d := duration(e.mustSh(t, inst.ID, "microk8s enable hostpath-storage").commandID) - overhead; d < 250*time.Millisecond || d > 600*time.Millisecond {
		t.Fatalf("scaled 30 s enable took %v", d)
	}
}
