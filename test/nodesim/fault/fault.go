// Package fault holds the node simulator's fault injection knobs. Faults are
// keyed by cluster id (the mecd:cluster-id tag) so tests sharing one runtime do
// not disturb each other.
package fault

import (
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// AnyIndex selects every host of a cluster.
const AnyIndex = -1

// Host selects simulated hosts: the instances carrying tag TagKey=TagValue
// (every instance when TagKey is empty) with the given AMI launch index
// (AnyIndex for all).
type Host struct {
	TagKey, TagValue string
	Index            int
}

func (h Host) matches(tags map[string]string, index int) bool {
	if h.TagKey != "" && tags[h.TagKey] != h.TagValue {
		return false
	}
	return h.Index == AnyIndex || h.Index == index
}

// Command makes a stand-in command fail on a host, as the real tool would.
type Command struct {
	Host Host
	// Prefix matches the stand-in's argv joined by spaces, e.g. "microk8s join" or "snap install".
	Prefix string
	// Times is how many calls fail before the command works again; <= 0 means always.
	Times    int
	ExitCode int
	// Stderr is the failure's message: on stderr, except for microk8s
	// join, which prints its failures on stdout (join.py).
	Stderr string
}

// API makes an AWS API action answer with an error at a rate.
type API struct {
	Service string  // "ec2", "ssm", "dynamodb", "states", "events" (the SigV4 signing name)
	Action  string  // "RunInstances", "GetParameter", ... ("" matches every action of Service)
	Rate    float64 // 0..1
	Code    string  // e.g. "RequestLimitExceeded", "ThrottlingException", "InternalError"
	Times   int     // <= 0: no limit
	// Host, when set, limits the fault to calls a matching host makes with
	// its instance-profile credentials (a node script's Parameter Store
	// calls); nil matches every caller.
	Host *Host
}

// Caller is a simulated host making an AWS call with its instance
// credentials (nil: any other caller, e.g. a Lambda).
type Caller struct {
	Tags  map[string]string
	Index int
}

// Injector is a concurrency-safe set of faults.
type Injector struct {
	mu          sync.Mutex
	neverOnline []Host
	agentDown   map[string]time.Time // instance id -> when its agent stopped
	commands    []*Command
	apis        []*API
	images      []imageFault
	rng         *rand.Rand
}

// New returns an empty injector with a seeded random source (for API rates).
func New(seed uint64) *Injector {
	return &Injector{rng: rand.New(rand.NewPCG(seed, seed+1))}
}

// NeverOnline makes the selected hosts' SSM agent never report Online.
func (f *Injector) NeverOnline(h Host) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.neverOnline = append(f.neverOnline, h)
}

// IsNeverOnline reports whether a host was made to never come online.
func (f *Injector) IsNeverOnline(tags map[string]string, index int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.neverOnline {
		if h.matches(tags, index) {
			return true
		}
	}
	return false
}

// StopAgent makes the SSM agent of a running instance stop, as a crashed
// or killed amazon-ssm-agent does: the instance and its MicroK8s keep
// running, SSM reports the agent ConnectionLost and delivers no command.
func (f *Injector) StopAgent(instanceID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.agentDown == nil {
		f.agentDown = map[string]time.Time{}
	}
	f.agentDown[instanceID] = time.Now()
}

// AgentStopped reports whether and when StopAgent stopped the instance's agent.
func (f *Injector) AgentStopped(instanceID string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, ok := f.agentDown[instanceID]
	return at, ok
}

// imageFault is a registry's refusal of one image to some hosts.
type imageFault struct {
	host        Host
	ref, answer string
}

// FailImage makes pulls of ref on the selected hosts fail with the
// registry's answer (for example "manifest unknown" for a tag that does not
// exist, or Docker Hub's "toomanyrequests" rate limit): the kubelet reports
// ErrImagePull, then ImagePullBackOff, and the pod never starts.
func (f *Injector) FailImage(h Host, ref, answer string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images = append(f.images, imageFault{host: h, ref: ref, answer: answer})
}

// ImageFault reports whether pulls of ref fail on a host, and the
// registry's answer.
func (f *Injector) ImageFault(tags map[string]string, index int, ref string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, i := range f.images {
		if i.ref == ref && i.host.matches(tags, index) {
			return i.answer, true
		}
	}
	return "", false
}

// FailCommand registers a command failure.
func (f *Injector) FailCommand(c Command) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cc := c
	if cc.ExitCode == 0 {
		cc.ExitCode = 1
	}
	f.commands = append(f.commands, &cc)
}

// CommandFault returns the failure to apply to argv on a host, consuming one of
// its Times. ok is false when the command should run normally.
func (f *Injector) CommandFault(tags map[string]string, index int, argv []string) (c Command, ok bool) {
	line := strings.Join(argv, " ")
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, fc := range f.commands {
		if !fc.Host.matches(tags, index) || !strings.HasPrefix(line, fc.Prefix) {
			continue
		}
		out := *fc
		if fc.Times > 0 {
			fc.Times--
			if fc.Times == 0 {
				f.commands = append(f.commands[:i], f.commands[i+1:]...)
			}
		}
		return out, true
	}
	return Command{}, false
}

// FailAPI registers an API fault.
func (f *Injector) FailAPI(a API) {
	f.mu.Lock()
	defer f.mu.Unlock()
	aa := a
	f.apis = append(f.apis, &aa)
}

// APIFault draws whether a call by caller (nil: not a host) fails.
func (f *Injector) APIFault(service, action string, caller *Caller) (code string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, a := range f.apis {
		if !strings.EqualFold(a.Service, service) || (a.Action != "" && a.Action != action) {
			continue
		}
		if a.Host != nil && (caller == nil || !a.Host.matches(caller.Tags, caller.Index)) {
			continue
		}
		if f.rng.Float64() >= a.Rate {
			continue
		}
		if a.Times > 0 {
			a.Times--
			if a.Times == 0 {
				f.apis = append(f.apis[:i], f.apis[i+1:]...)
			}
		}
		return a.Code, true
	}
	return "", false
}

// ClearAPIs removes every API fault.
func (f *Injector) ClearAPIs() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.apis = nil
}

// ClearHosts removes every host fault selecting TagKey=TagValue.
func (f *Injector) ClearHosts(tagKey, tagValue string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	keepH := f.neverOnline[:0]
	for _, h := range f.neverOnline {
		if h.TagKey != tagKey || h.TagValue != tagValue {
			keepH = append(keepH, h)
		}
	}
	f.neverOnline = keepH
	keepC := f.commands[:0]
	for _, c := range f.commands {
		if c.Host.TagKey != tagKey || c.Host.TagValue != tagValue {
			keepC = append(keepC, c)
		}
	}
	f.commands = keepC
}

// Reset removes every fault.
func (f *Injector) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.neverOnline, f.commands, f.apis = nil, nil, nil
}
