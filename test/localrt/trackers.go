package localrt

import (
	"encoding/json"
	"maps"
	"sync"
	"time"
)

// CallCounter counts API calls per service and action (benchmarks read it).
type CallCounter struct {
	mu sync.Mutex
	n  map[string]int
}

// NewCallCounter returns an empty counter.
func NewCallCounter() *CallCounter { return &CallCounter{n: map[string]int{}} }

// Add counts one call.
func (c *CallCounter) Add(service, action string) {
	c.mu.Lock()
	c.n[service+":"+action]++
	c.mu.Unlock()
}

// Snapshot returns a copy of the counts ("service:Action" -> n).
func (c *CallCounter) Snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// PollTracker counts Lambda processes currently waiting for an invocation.
type PollTracker struct {
	mu      sync.Mutex
	waiting map[string]int
	changed chan struct{}
}

// NewPollTracker returns an empty tracker.
func NewPollTracker() *PollTracker {
	return &PollTracker{waiting: map[string]int{}, changed: make(chan struct{})}
}

func (p *PollTracker) begin(fn string) { p.bump(fn, 1) }

func (p *PollTracker) end(fn string) { p.bump(fn, -1) }

func (p *PollTracker) bump(fn string, d int) {
	p.mu.Lock()
	p.waiting[fn] += d
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// Waiting is the number of processes of fn polling right now.
func (p *PollTracker) Waiting(fn string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiting[fn]
}

// WaitFor blocks until at least n processes of fn are polling, or timeout.
func (p *PollTracker) WaitFor(fn string, n int, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		ok, ch := p.waiting[fn] >= n, p.changed
		p.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

// InvokeTracker times every Lambda invocation at the Runtime API, from the
// event reaching a process to the process posting its result: the duration
// AWS bills. It sees synchronous invokes (Step Functions, API Gateway) and
// EventBridge's asynchronous ones alike (benchmarks read it).
type InvokeTracker struct {
	mu      sync.Mutex
	started map[string]time.Time // by request id
	stats   map[string]*InvokeStats
}

// InvokeStats are one function's finished invocations.
type InvokeStats struct {
	Count, Errors int
	Durations     []time.Duration // in the order they finished
}

// NewInvokeTracker returns an empty tracker.
func NewInvokeTracker() *InvokeTracker {
	return &InvokeTracker{started: map[string]time.Time{}, stats: map[string]*InvokeStats{}}
}

func (t *InvokeTracker) start(requestID string) {
	t.mu.Lock()
	t.started[requestID] = time.Now()
	t.mu.Unlock()
}

func (t *InvokeTracker) finish(fn, requestID string, failed bool) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.stats[fn]
	if st == nil {
		st = &InvokeStats{}
		t.stats[fn] = st
	}
	st.Count++
	if failed {
		st.Errors++
	}
	if at, ok := t.started[requestID]; ok {
		st.Durations = append(st.Durations, now.Sub(at))
		delete(t.started, requestID)
	}
}

// Snapshot returns a copy of the stats by function name.
func (t *InvokeTracker) Snapshot() map[string]InvokeStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]InvokeStats, len(t.stats))
	for fn, st := range t.stats {
		out[fn] = InvokeStats{Count: st.Count, Errors: st.Errors, Durations: append([]time.Duration(nil), st.Durations...)}
	}
	return out
}

// SecretLedger keeps every SecureString value written through the front
// (join tokens from the functions, kubeconfigs from the nodes), so a test
// can hunt for them everywhere else.
type SecretLedger struct {
	mu     sync.Mutex
	values map[string]string // value -> parameter name
}

// NewSecretLedger returns an empty ledger.
func NewSecretLedger() *SecretLedger { return &SecretLedger{values: map[string]string{}} }

func (l *SecretLedger) note(body []byte) {
	var in struct{ Name, Value, Type string }
	if json.Unmarshal(body, &in) != nil || in.Type != "SecureString" || in.Value == "" {
		return
	}
	l.mu.Lock()
	l.values[in.Value] = in.Name
	l.mu.Unlock()
}

// Values maps every SecureString value written to its parameter name.
func (l *SecretLedger) Values() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.values)
}
