package ssmsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mecd/mecd/test/nodesim/fault"
	"github.com/mecd/mecd/test/nodesim/fidelity"
	"github.com/mecd/mecd/test/nodesim/latency"
)

// Instance is what the simulator needs to know about an EC2 instance. The
// composition layer adapts ec2sim to it, so this package does not depend on ec2sim.
type Instance struct {
	ID, Region, State, PrivateIP, PublicIP, IamInstanceProfileArn string
	// AvailabilityZone is optional: empty means "<Region>a".
	AvailabilityZone string
	// Architecture is optional (arm64 or x86_64 as EC2 says; empty: arm64), for kubectl's node info.
	Architecture string
	LaunchIndex  int
	Tags         map[string]string
	// RunningAt is when the instance entered "running"; the agent-online delay counts from it.
	RunningAt time.Time
	// UserData is the launch's user data as EC2 keeps it (base64).
	UserData string
	// Disks are the EBS volumes attached at launch, the root one marked.
	Disks []Disk
}

// Instances looks instances up by id.
type Instances interface {
	Instance(id string) (Instance, bool)
}

// InstanceLister is optionally implemented by an Instances: when it is,
// DescribeInstanceInformation without an InstanceIds filter lists every
// instance; otherwise only those the simulator has already seen.
type InstanceLister interface {
	InstanceIDs() []string
}

// EventSink receives the events SSM puts on the default event bus.
type EventSink interface {
	PutEvent(ctx context.Context, region, source, detailType string, resources []string, detail any) error
}

// Config wires a Sim.
type Config struct {
	Instances Instances
	Events    EventSink       // nil: no events
	Latency   *latency.Model  // nil: no delays at all
	Faults    *fault.Injector // nil: no faults
	Fidelity  *fidelity.Set   // nil: none of the documented hard behaviours
	// Dir is the root of the host directories (<Dir>/<instance-id>/).
	Dir string
	// Endpoint is the front's base URL (loopback only), e.g. http://127.0.0.1:4566.
	// Commands get it as AWS_ENDPOINT_URL_SSM; the IMDS stand-in and the stand-in
	// control API are reached below Endpoint+"/_sim/".
	Endpoint string
	// AccountID goes into instance ARNs of events; default 000000000000 (kumo's).
	AccountID string
	Logger    *slog.Logger
}

// Sim is the SSM Run Command simulator, its hosts and stand-ins.
type Sim struct {
	cfg      Config
	lat      *latency.Model
	faults   *fault.Injector
	log      *slog.Logger
	exe      string // this binary: the snap/microk8s stand-ins re-execute it
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	closed   bool
	hosts    map[string]*host
	agent    map[string]agentInfo // per instance: drawn online delay, first time seen running
	commands map[string]*command
	docs     map[string]*document // by region/name
	order    []*command           // SendCommand order
	imds     imdsState
}

type agentInfo struct {
	delay     time.Duration
	firstSeen time.Time
	// seed: snapd seeds this long after boot (fidelity.SnapSeeding); the
	// agent, a seeded snap, cannot run before.
	seed time.Duration
	// restart: the agent snap refreshes once, this long, soon after it came
	// online (fidelity.AgentRefresh), unless refreshes were held by then.
	restart time.Duration
}

// drawAgent draws once per instance how its first boot goes.
func (s *Sim) drawAgent() agentInfo {
	a := agentInfo{delay: s.lat.Delay(latency.AgentOnline)}
	if s.cfg.Fidelity.Happens(fidelity.SnapSeeding) {
		a.seed = s.lat.Delay(latency.Seeding)
	}
	if s.cfg.Fidelity.Happens(fidelity.AgentRefresh) {
		a.restart = s.lat.Delay(latency.AgentRestart)
	}
	return a
}

// bootTimes are an instance's first-boot milestones (zero before it runs).
type bootTimes struct{ seeded, online, restartFrom, restartTo time.Time }

// bootLocked computes them for inst from its agent's draw.
func (s *Sim) bootLocked(inst Instance) bootTimes {
	a, ok := s.agent[inst.ID]
	if !ok {
		a = s.drawAgent()
	}
	if a.firstSeen.IsZero() && inst.State == "running" {
		a.firstSeen = time.Now()
	}
	s.agent[inst.ID] = a
	start := inst.RunningAt
	if start.IsZero() {
		start = a.firstSeen
	}
	if start.IsZero() {
		return bootTimes{}
	}
	b := bootTimes{seeded: start.Add(a.seed), online: start.Add(max(a.delay, a.seed))}
	if a.restart > 0 {
		// The first auto-refresh comes right after the agent is up: the
		// worst moment, as the first command arrives.
		b.restartFrom = b.online.Add(s.lat.Delay(latency.Dispatch))
		b.restartTo = b.restartFrom.Add(a.restart)
		if h := s.hosts[inst.ID]; h != nil && !h.refreshHeldAt.IsZero() && h.refreshHeldAt.Before(b.restartFrom) {
			b.restartFrom, b.restartTo = time.Time{}, time.Time{}
		}
	}
	return b
}

// New validates cfg and returns a Sim. Close it to stop every process it started.
func New(cfg Config) (*Sim, error) {
	if cfg.Instances == nil {
		return nil, errors.New("ssmsim: Config.Instances is required")
	}
	if cfg.Dir == "" {
		return nil, errors.New("ssmsim: Config.Dir is required")
	}
	if err := checkLoopback(cfg.Endpoint); err != nil {
		return nil, err
	}
	if cfg.AccountID == "" {
		cfg.AccountID = "000000000000"
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("ssmsim: find own executable for the stand-ins: %w", err)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("ssmsim: host dir: %w", err)
	}
	cfg.Dir = dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ssmsim: host dir: %w", err)
	}
	lat := cfg.Latency
	if lat == nil {
		lat = latency.New(0, latency.Typical, 1)
	}
	faults := cfg.Faults
	if faults == nil {
		faults = fault.New(1)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Sim{
		cfg: cfg, lat: lat, faults: faults, log: log.With("component", "ssmsim"), exe: exe,
		ctx: ctx, cancel: cancel,
		hosts: map[string]*host{}, agent: map[string]agentInfo{}, commands: map[string]*command{}, docs: map[string]*document{},
		imds: newIMDSState(),
	}, nil
}

// checkLoopback refuses an endpoint that would send a simulated host's traffic
// off this machine: everything stays on 127.0.0.0/8.
func checkLoopback(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("ssmsim: Config.Endpoint must be an http URL on loopback, got %q", endpoint)
	}
	h := u.Hostname()
	if h == "localhost" {
		return nil
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("ssmsim: Config.Endpoint %q is not on loopback", endpoint)
}

// Close kills every running command (its whole process group), stops
// background work and waits for it. Commands cut short end Cancelled, without events.
func (s *Sim) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// goBackground runs f as tracked background work, unless the Sim is closed.
func (s *Sim) goBackground(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// withSim returns a context ended by either parent or Close.
func (s *Sim) withSim(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// sleep waits for a scaled phase duration; false when ctx ended first.
func (s *Sim) sleep(ctx context.Context, p latency.Phase) bool {
	return sleepFor(ctx, s.lat.Delay(p))
}

func sleepFor(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Actions are the SSM actions ServeHTTP answers (X-Amz-Target AmazonSSM.<Action>).
var Actions = []string{"SendCommand", "GetCommandInvocation", "ListCommandInvocations", "DescribeInstanceInformation",
	"CreateDocument", "DescribeDocument", "DeleteDocument"}

// Handles reports whether r is an SSM call ServeHTTP answers, so a front can route it.
func Handles(r *http.Request) bool {
	t := r.Header.Get("X-Amz-Target")
	for _, a := range Actions {
		if t == "AmazonSSM."+a {
			return true
		}
	}
	return false
}

// ServeHTTP answers the Run Command actions in SSM's JSON 1.1 protocol.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	action, ok := strings.CutPrefix(target, "AmazonSSM.")
	if !ok || r.Method != http.MethodPost {
		writeError(w, errUnknownOperation(target))
		return
	}
	if s.ctx.Err() != nil {
		writeError(w, &apiError{status: http.StatusServiceUnavailable, code: "ServiceUnavailable", msg: "the simulator is closed"})
		return
	}
	if code, failed := s.faults.APIFault("ssm", action, nil); failed {
		s.log.InfoContext(r.Context(), "injected API fault", "action", action, "code", code)
		writeError(w, injectedError(code))
		return
	}
	var (
		out any
		err error
	)
	switch action {
	case "SendCommand":
		out, err = s.sendCommand(r)
	case "GetCommandInvocation":
		out, err = s.getCommandInvocation(r)
	case "ListCommandInvocations":
		out, err = s.listCommandInvocations(r)
	case "DescribeInstanceInformation":
		out, err = s.describeInstanceInformation(r)
	case "CreateDocument":
		out, err = s.createDocument(r)
	case "DescribeDocument":
		out, err = s.describeDocument(r)
	case "DeleteDocument":
		out, err = s.deleteDocument(r)
	default:
		err = errUnknownOperation(target)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// instance reads the instance from the composition layer.
func (s *Sim) instance(id string) (Instance, bool) {
	return s.cfg.Instances.Instance(id)
}

func (s *Sim) instanceArn(region, id string) string {
	return fmt.Sprintf("arn:aws:ec2:%s:%s:instance/%s", region, s.cfg.AccountID, id)
}
