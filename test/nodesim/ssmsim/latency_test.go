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
	r := e.mustSh(t, inst.ID, installScript)
	var took time.Duration
	for _, inv := range e.sim.Invocations() {
		if inv.CommandID == r.commandID {
			took = inv.EndedAt.Sub(inv.StartedAt)
		}
	}
	if took < 600*time.Millisecond || took > 1200*time.Millisecond {
		t.Fatalf("scaled 60 s install took %v, want about 0.6 s", took)
	}
	t.Logf("scaled 60 s install took %v", took)

	// Join and addons follow the same model.
	lat.Fix(latency.Addons, 30)
	start := time.Now()
	e.mustSh(t, inst.ID, "microk8s enable dns")
	if d := time.Since(start); d < 300*time.Millisecond || d > 1200*time.Millisecond {
		t.Fatalf("scaled 30 s enable took %v", d)
	}
}
