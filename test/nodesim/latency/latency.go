// Package latency is the node simulator's latency model: how long each phase of
// an EC2 host's life and of the node work takes, drawn per phase and scaled so a
// local run finishes well inside kumo's 5-minute execution cap.
package latency

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Phase names one timed step of a simulated host.
type Phase string

// The phases the simulator times. Values are seconds on AWS before scaling.
const (
	RunInstancesCall Phase = "runInstancesCall" // the RunInstances API call itself
	Boot             Phase = "boot"             // pending -> running
	AgentOnline      Phase = "agentOnline"      // running -> SSM agent Online
	Dispatch         Phase = "dispatch"         // Run Command: Pending -> InProgress
	SnapInstall      Phase = "snapInstall"      // snap install microk8s + wait-ready
	Join             Phase = "join"             // microk8s join, per node
	Addons           Phase = "addons"           // microk8s enable, per call
	Terminate        Phase = "terminate"        // shutting-down -> terminated
	ImagePull        Phase = "imagePull"        // a pod's image pulled and unpacked, the pod Ready

	// How long the fidelity behaviours last (test/nodesim/fidelity).
	Visibility         Phase = "visibility"         // a new instance id not yet visible to Describe
	ProfilePropagation Phase = "profilePropagation" // a new instance profile not yet usable by RunInstances
	Seeding            Phase = "seeding"            // running -> snapd seeded (seed.loaded)
	AgentRestart       Phase = "agentRestart"       // the SSM agent snap refreshed: ConnectionLost
	APIServerBlink     Phase = "apiServerBlink"     // the API server unreachable after dqlite re-forms
)

// Phases lists every phase in a stable order.
var Phases = []Phase{RunInstancesCall, Boot, AgentOnline, Dispatch, SnapInstall, Join, Addons, Terminate, ImagePull,
	Visibility, ProfilePropagation, Seeding, AgentRestart, APIServerBlink}

// Range is a phase's duration on AWS in seconds: low, typical and high.
type Range struct {
	Low, Typical, High float64
}

// Defaults are public measurements (DESIGN section 8), low / typical / high.
var Defaults = map[Phase]Range{
	RunInstancesCall: {1.5, 3, 5},
	Boot:             {5, 10, 18},
	AgentOnline:      {20, 45, 370},
	Dispatch:         {1, 2, 10},
	SnapInstall:      {45, 90, 300},
	Join:             {5, 20, 60},
	Addons:           {10, 30, 120},
	Terminate:        {20, 40, 90},
	// Pulling and unpacking a 50-150 MB image from Docker Hub to an EC2
	// instance, then the container's start: an estimate (no registry
	// publishes a figure); the high end is a slow mirror or a large image.
	ImagePull: {5, 20, 90},
	// "a couple of seconds", backing off "up to a few minutes" (EC2 API
	// Reference, eventual consistency); seconds in practice.
	Visibility: {0.5, 2, 8},
	// IAM propagation: "several seconds"; 10 s or more is common for a new
	// instance profile at RunInstances.
	ProfilePropagation: {4, 10, 20},
	// snapd seeds the image's snaps (lxd, core, amazon-ssm-agent...) after
	// boot; the agent's own Online time includes it.
	Seeding: {5, 15, 40},
	// An agent snap refresh: download, stop, swap, start.
	AgentRestart: {5, 15, 45},
	// join.py stops the API server for at least 10 s before it rejoins.
	APIServerBlink: {3, 10, 25},
}

// Mode chooses how a duration is drawn from a Range.
type Mode string

// Draw modes.
const (
	Typical Mode = "typical" // always the typical value (the default: repeatable)
	Random  Mode = "random"  // uniform within [Low, High]
	Low     Mode = "low"     // always Low
	High    Mode = "high"    // always High (the tail)
)

// Model draws scaled durations. The zero value is not usable; use New.
type Model struct {
	mu     sync.Mutex
	scale  float64
	mode   Mode
	ranges map[Phase]Range
	fixed  map[Phase]float64
	rng    *rand.Rand
}

// New returns the default model at the given time scale (0.01 turns 60 s into 0.6 s).
func New(scale float64, mode Mode, seed uint64) *Model {
	r := make(map[Phase]Range, len(Defaults))
	for p, v := range Defaults {
		r[p] = v
	}
	return &Model{scale: scale, mode: mode, ranges: r, fixed: map[Phase]float64{}, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// SetRange replaces a phase's range (seconds on AWS, before scaling).
func (m *Model) SetRange(p Phase, r Range) error {
	if r.Low < 0 || r.Low > r.Typical || r.Typical > r.High {
		return fmt.Errorf("latency %s: want 0 <= low <= typical <= high, got %v", p, r)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ranges[p] = r
	return nil
}

// Fix makes a phase always take the given seconds (before scaling), whatever the mode.
func (m *Model) Fix(p Phase, seconds float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fixed[p] = seconds
}

// Unfix removes a Fix.
func (m *Model) Unfix(p Phase) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.fixed, p)
}

// SetMode changes how durations are drawn.
func (m *Model) SetMode(mode Mode) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mode = mode
}

// SetScale changes the time scale.
func (m *Model) SetScale(scale float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.scale = scale
}

// Scale is the current time scale.
func (m *Model) Scale() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.scale
}

// Seconds is the unscaled duration the model would draw for p (AWS seconds).
func (m *Model) Seconds(p Phase) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.fixed[p]; ok {
		return s
	}
	r := m.ranges[p]
	switch m.mode {
	case Random:
		return r.Low + m.rng.Float64()*(r.High-r.Low)
	case Low:
		return r.Low
	case High:
		return r.High
	default:
		return r.Typical
	}
}

// Delay is a scaled duration for p.
func (m *Model) Delay(p Phase) time.Duration {
	s := m.Seconds(p)
	return time.Duration(s * m.Scale() * float64(time.Second))
}

// Sleep waits for a scaled duration of p, or until ctx ends.
func (m *Model) Sleep(ctx context.Context, p Phase) {
	d := m.Delay(p)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
