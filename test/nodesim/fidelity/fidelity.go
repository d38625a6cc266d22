// Package fidelity holds the documented behaviours that make a real AWS,
// Ubuntu and MicroK8s run harder than a happy path: each is on by default at
// a realistic rate, and a test that proves mecd survives one forces it to
// always (or, to isolate another, never). How long each lasts is a
// latency.Phase, drawn and scaled like every other duration.
//
// Every behaviour cites its source; none exists to let mecd pass.
package fidelity

import (
	"math/rand/v2"
	"sync"
)

// Behaviour names one documented behaviour.
type Behaviour string

// The behaviours the simulator models.
const (
	// InstanceVisibility: a new instance's id answers
	// InvalidInstanceID.NotFound to DescribeInstances, and is missing from
	// filtered results, for a while after RunInstances returned it (EC2 API
	// Reference, "Eventual consistency in the Amazon EC2 API":
	// "InvalidInstanceID.NotFound ... This doesn't mean the instance does not
	// exist"). How long: latency.Visibility.
	InstanceVisibility Behaviour = "ec2-instance-visibility"
	// ProfilePropagation: RunInstances refuses an instance profile created
	// moments before with InvalidParameterValue "Value (<arn>) for parameter
	// iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN"
	// (IAM User Guide, "Changes that I make are not always immediately
	// visible"; EC2 User Guide, IAM roles: "it may take several seconds for
	// the permissions to propagate"). How long: latency.ProfilePropagation.
	ProfilePropagation Behaviour = "iam-profile-propagation"
	// SnapSeeding: at first boot snapd seeds the image's snaps before it
	// accepts changes; until then `snap install` fails with "error: too early
	// for operation, device not yet seeded or device model not acknowledged"
	// (exit 10; snapd overlord/snapstate/devicectx.go), and `snap wait system
	// seed.loaded` blocks (data/systemd/snapd.seeded.service.in). The SSM
	// agent, itself a seeded snap, cannot be Online before. How long:
	// latency.Seeding.
	SnapSeeding Behaviour = "snapd-seeding"
	// AgentRefresh: snapd auto-refreshes the amazon-ssm-agent snap soon
	// after seeding unless refreshes are held (`snap refresh --hold`); the
	// agent restarts and is ConnectionLost meanwhile. Its service stops with
	// KillMode=process (the snap's stop-mode: sigterm), so a running
	// document worker survives and its command completes; commands sent
	// meanwhile wait for the agent (amazon-ssm-agent
	// agent/framework/processor/executer/outofproc/master.go). How long:
	// latency.AgentRestart.
	AgentRefresh Behaviour = "ssm-agent-refresh"
	// APIServerBlink: once a join makes dqlite re-form (a new voter), the
	// API server on the control plane is unreachable for a while: `microk8s
	// kubectl` fails with "The connection to the server 127.0.0.1:16443 was
	// refused - did you specify the right host or port?" and `microk8s
	// enable` fails (MicroK8s scripts/wrappers/join.py restarts the API
	// server; canonical/microk8s issues #1916, #1401, #4478). How long:
	// latency.APIServerBlink.
	APIServerBlink Behaviour = "microk8s-apiserver-blink"
	// CredentialsNearExpiry: the instance role credentials IMDS hands out
	// may expire five minutes later: AWS makes new ones available "at least
	// five minutes before the expiration of the old credentials" and
	// promises nothing longer (EC2 User Guide, "Retrieve security
	// credentials from instance metadata"). A script that reads them once
	// and runs half an hour fails with ExpiredTokenException.
	CredentialsNearExpiry Behaviour = "imds-credentials-near-expiry"
)

// Behaviours lists every behaviour.
var Behaviours = []Behaviour{InstanceVisibility, ProfilePropagation, SnapSeeding, AgentRefresh, APIServerBlink, CredentialsNearExpiry}

// Defaults are the realistic rates: the chance a behaviour shows on one
// occasion (a launch, a new profile, a first boot, a join).
var Defaults = map[Behaviour]float64{
	InstanceVisibility: 0.3,
	ProfilePropagation: 0.8, // "often": most launches right after CreateInstanceProfile
	SnapSeeding:        1,   // every first boot seeds
	AgentRefresh:       0.1,
	APIServerBlink:     0.5,
	// Credentials last about 6 h and are replaced in their last 5 minutes:
	// a read falls in that window about 5 times in 360.
	CredentialsNearExpiry: 5.0 / 360,
}

// Set draws whether each behaviour shows. It is safe for concurrent use.
type Set struct {
	mu    sync.Mutex
	rates map[Behaviour]float64
	rng   *rand.Rand
}

// New returns the default rates with a seeded draw.
func New(seed uint64) *Set {
	r := make(map[Behaviour]float64, len(Defaults))
	for b, v := range Defaults {
		r[b] = v
	}
	return &Set{rates: r, rng: rand.New(rand.NewPCG(seed, seed^0x2545f4914f6cdd1d))}
}

// Force sets a behaviour's rate: 1 always, 0 never.
func (s *Set) Force(b Behaviour, rate float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rates[b] = rate
}

// Reset restores the default rates.
func (s *Set) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for b, v := range Defaults {
		s.rates[b] = v
	}
}

// Happens draws whether b shows this time. A nil Set never shows anything.
func (s *Set) Happens(b Behaviour) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rates[b]
	return r >= 1 || (r > 0 && s.rng.Float64() < r)
}
