package ssmsim

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/mecd/mecd/internal/node"
	"github.com/mecd/mecd/test/nodesim/fidelity"
	"github.com/mecd/mecd/test/nodesim/latency"
)

// installScript renders mecd's install script for a single node.
func renderInstall(t *testing.T) string {
	t.Helper()
	s, err := node.Render(node.Install, map[string]string{"CHANNEL": "1.35/stable", "EXTRA_SANS": "10.0.0.1", "NODE0": "i-x",
		"TOKEN_PARAM": "", "TOKEN_TTL": "600", "READY_TIMEOUT": "30", "RETRY_SECONDS": "0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// snapd seeds at first boot before it takes a change, and the SSM agent,
// itself a seeded snap, cannot be Online before: the first command finds
// snapd seeded, so `snap wait system seed.loaded` returns at once.
func TestAgentIsOnlineOnlyOnceSnapdSeeded(t *testing.T) {
	f := fidelity.New(1)
	f.Force(fidelity.SnapSeeding, 1)
	lat := latency.New(0.01, latency.Typical, 1)
	lat.Fix(latency.AgentOnline, 0)
	lat.Fix(latency.Seeding, 100) // 1 s
	e := newEnv(t, envOptions{lat: lat, fidelity: f})
	start := time.Now()
	inst := e.addInstance(func(i *Instance) { i.RunningAt = start })
	var online time.Duration
	for online == 0 && time.Since(start) < 5*time.Second {
		out, err := e.ssm.DescribeInstanceInformation(t.Context(), &ssm.DescribeInstanceInformationInput{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ii := range out.InstanceInformationList {
			if aws.ToString(ii.InstanceId) == inst.ID && ii.PingStatus == ssmtypes.PingStatusOnline {
				online = time.Since(start)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if online < 900*time.Millisecond {
		t.Fatalf("the agent was Online %v after boot, before snapd seeded (1 s)", online)
	}
	r := e.sh(t, inst.ID, "snap wait system seed.loaded && snap install microk8s --classic >/dev/null && echo installed")
	if !strings.Contains(r.stdout, "installed") {
		t.Fatalf("%+v", r)
	}
}

// A second `snap install microk8s` while one is in progress meets snapd's
// change conflict (exit 10): mecd's install script waits it out.
func TestInstallScriptWaitsForABusySnapd(t *testing.T) {
	lat := latency.New(0.001, latency.Typical, 1)
	// 1.5 s: long enough that the script, slow on a loaded machine, meets
	// it, and within the script's 30 retries of 0.1 s.
	lat.Fix(latency.SnapInstall, 1500)
	e := newEnv(t, envOptions{lat: lat})
	inst := e.addInstance()
	script := "snap install microk8s --classic --channel=1.35/stable >/dev/null &\nsleep 0.05\n" + renderInstall(t)
	r := e.sh(t, inst.ID, script)
	if r.code != 0 || !strings.Contains(r.stdout, "snapd is busy") || !strings.Contains(r.stdout, "::mecd-step install") {
		t.Fatalf("install script with a change in progress: %+v", r)
	}
}
