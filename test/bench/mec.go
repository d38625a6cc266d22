package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/test/localrt"
	"github.com/mecd/mecd/test/nodesim/ec2sim"
	"github.com/mecd/mecd/test/nodesim/latency"
	"github.com/mecd/mecd/test/nodesim/ssmsim"
)

// mecRun is one MEC created through the API, followed to READY, deleted and
// followed to DELETED, with everything the front and the simulator saw.
type mecRun struct {
	Scale float64
	Mode  latency.Mode
	Nodes int
	ID    string

	PostAt, DeleteAt time.Time
	Ready            *mec.MEC // the record at READY
	Deleted          *mec.MEC // the record at DELETED
	Instances        []ec2sim.Instance
	Cmds             map[string][]ssmsim.Invocation // by node-command step
	Prov, Tear       usage
	Leaks            []string
	Retried          []string                  // steps of a READY MEC that failed once and were retried
	Model            map[latency.Phase]float64 // scaled seconds, as drawn in this mode
	Err              error
}

// runMEC provisions one MEC of n nodes in mode and tears it down.
func (e *env) runMEC(ctx context.Context, mode latency.Mode, n int, name string) *mecRun {
	r := &mecRun{Scale: e.scale, Mode: mode, Nodes: n, Model: map[latency.Phase]float64{}}
	r.Err = e.doRunMEC(ctx, r, name)
	return r
}

func (e *env) doRunMEC(ctx context.Context, r *mecRun, name string) error {
	lat := e.rt.Sim.Latency
	lat.SetMode(r.Mode)
	defer lat.SetMode(latency.Typical)
	for _, p := range latency.Phases {
		// Typical, low and high draw fixed values: reading them draws nothing.
		r.Model[p] = lat.Seconds(p) * e.scale
	}
	s0 := e.snapshot()
	r.PostAt = time.Now()
	res := e.api(ctx, "POST", "/mecs", fmt.Sprintf(`{"name":%q,"nodeCount":%d}`, name, r.Nodes))
	if err := res.check(202); err != nil {
		return fmt.Errorf("POST /mecs: %w", err)
	}
	var created mec.MEC
	if err := json.Unmarshal(res.Body, &created); err != nil {
		return fmt.Errorf("POST /mecs answer: %w", err)
	}
	r.ID = created.ID
	m, err := e.waitRecord(ctx, r.ID, 290*time.Second, 20*time.Millisecond, mec.Ready, mec.Failed)
	if err != nil {
		return err
	}
	if m.Status != mec.Ready {
		return fmt.Errorf("MEC %s FAILED at %s: %s", m.ID, m.FailedStep, clip(m.FailureCause, 300))
	}
	r.Ready = m
	r.Retried = failedAttempts(m)
	if _, err := e.waitExecution(ctx, m.ExecutionArn, time.Minute); err != nil {
		return err
	}
	settle() // the last command-events invocation posts its result after resuming the execution
	s1 := e.snapshot()
	r.Prov = s0.until(s1)

	r.DeleteAt = time.Now()
	if err := e.api(ctx, "DELETE", "/mecs/"+r.ID, "").check(202); err != nil {
		return fmt.Errorf("DELETE /mecs/%s: %w", r.ID, err)
	}
	d, err := e.waitRecord(ctx, r.ID, 290*time.Second, 20*time.Millisecond, mec.Deleted)
	if err != nil {
		return err
	}
	r.Deleted = d
	if d.TeardownExecutionArn != "" {
		if _, err := e.waitExecution(ctx, d.TeardownExecutionArn, time.Minute); err != nil {
			return err
		}
	}
	settle()
	r.Tear = s1.until(e.snapshot())

	for _, in := range e.rt.Sim.EC2Sim.Instances() {
		if in.Tags[mec.TagClusterID] == r.ID {
			r.Instances = append(r.Instances, in)
		}
	}
	sort.Slice(r.Instances, func(i, j int) bool { return r.Instances[i].LaunchIndex < r.Instances[j].LaunchIndex })
	r.Cmds = commandsOf(e.rt.Sim.SSMSim.Invocations(), r.ID)
	if r.Leaks, err = e.rt.LeakAudit(ctx, r.ID); err != nil {
		return err
	}
	return nil
}

// failedAttempts lists a READY MEC's steps that failed before a retry succeeded.
func failedAttempts(m *mec.MEC) []string {
	var out []string
	for _, st := range m.Steps {
		if st.Outcome == mec.OutcomeFailed {
			out = append(out, fmt.Sprintf("%s attempt %d: %s", st.Name, st.Attempt, clip(strings.ReplaceAll(st.Detail, "\n", " | "), 600)))
		}
	}
	return out
}

func settle() { time.Sleep(150 * time.Millisecond) }

// commandsOf groups a cluster's command invocations by step (the product
// comments each command "mecd <cluster id> <step>").
func commandsOf(all []ssmsim.Invocation, id string) map[string][]ssmsim.Invocation {
	out := map[string][]ssmsim.Invocation{}
	prefix := "mecd " + id + " "
	for _, inv := range all {
		if strings.HasPrefix(inv.Comment, prefix) {
			step := strings.TrimPrefix(inv.Comment, prefix)
			out[step] = append(out[step], inv)
		}
	}
	return out
}

// segment is one stretch of the time to READY (or DELETED).
type segment struct {
	Name    string
	Kind    string // "orchestration", "node" (simulated node work), "AWS" (simulated AWS API latency)
	Seconds float64
}

// The node-command steps in order, with the simulated phase each script
// sleeps (a reset sleeps none).
var cmdSteps = []struct {
	step  string
	sleep latency.Phase
}{
	{mec.StepInstall, ""}, // waits for the install at boot
	{mec.StepJoin, latency.Join},
	{mec.StepReset, ""},
	{mec.StepFinalize, latency.Addons},
}

// command is one SendCommand of the run, with its invocations' span.
type command struct {
	step                 string
	sent, started, ended time.Time
}

// commands lists the run's commands in the order they were sent (a join
// that failed shows as join, reset, join).
func (r *mecRun) commands() []command {
	byID := map[string]*command{}
	var out []*command
	for step, invs := range r.Cmds {
		for _, v := range invs {
			c := byID[v.CommandID]
			if c == nil {
				c = &command{step: step, sent: v.RequestedAt, started: v.StartedAt, ended: v.EndedAt}
				byID[v.CommandID] = c
				out = append(out, c)
			}
			c.started = minTime(c.started, v.StartedAt)
			c.ended = maxTime(c.ended, v.EndedAt)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].sent.Before(out[j].sent) })
	res := make([]command, len(out))
	for i, c := range out {
		res[i] = *c
	}
	return res
}

// timeline splits the time to READY into stretches that follow one another,
// from the record's step times, the instances' launch and running times and
// the command invocations' times. The sum is the time to READY.
func (r *mecRun) timeline() ([]segment, error) {
	if r.Ready == nil || len(r.Instances) == 0 {
		return nil, fmt.Errorf("no completed run")
	}
	launch := r.Ready.Step(mec.StepLaunch)
	online := r.Ready.Step(mec.StepNodesOnline)
	if launch == nil || online == nil || online.EndedAt == nil {
		return nil, fmt.Errorf("record lacks launch/nodesOnline steps")
	}
	var launched, allOnline time.Time
	agent := dur(r.Model[latency.AgentOnline])
	for _, in := range r.Instances {
		if launched.IsZero() || in.LaunchedAt.Before(launched) {
			launched = in.LaunchedAt
		}
		if t := in.RunningAt.Add(agent); t.After(allOnline) {
			allOnline = t
		}
	}
	var segs []segment
	add := func(name, kind string, from, to time.Time) {
		segs = append(segs, segment{name, kind, to.Sub(from).Seconds()})
	}
	add("POST -> RunInstances call (API, prepare, security group, node role)", "orchestration", r.PostAt, launch.StartedAt)
	add("RunInstances call", "AWS", launch.StartedAt, launched)
	add("boot + SSM agent online (slowest node)", "node", launched, allOnline)
	add("all online -> seen by check-nodes (Wait loop)", "orchestration", allOnline, *online.EndedAt)
	prev, prevName := *online.EndedAt, "seen online"
	attempts := map[string]int{}
	for _, c := range r.commands() {
		attempts[c.step]++
		label := c.step
		if attempts[c.step] > 1 {
			label = fmt.Sprintf("%s (attempt %d)", c.step, attempts[c.step])
		}
		add(prevName+" -> "+label+" sent (resume, Lambda, SendCommand)", "orchestration", prev, c.sent)
		add(label+": dispatch", "AWS", c.sent, c.started)
		add(label+": script (slowest node)", "node", c.started, c.ended)
		prev, prevName = c.ended, label+" done"
	}
	add(prevName+" -> READY (event, resume, record)", "orchestration", prev, *r.Ready.ReadyAt)
	return segs, nil
}

// teardownTimeline splits the time to DELETED the same way. The terminate
// call's time is the instances' TerminatedAt less the modelled latency.
func (r *mecRun) teardownTimeline() ([]segment, error) {
	if r.Deleted == nil || r.Deleted.DeletedAt == nil || len(r.Instances) == 0 {
		return nil, fmt.Errorf("no completed teardown")
	}
	var first, last time.Time
	for _, in := range r.Instances {
		if in.TerminatedAt.IsZero() {
			return nil, fmt.Errorf("instance %s not terminated", in.ID)
		}
		if first.IsZero() || in.TerminatedAt.Before(first) {
			first = in.TerminatedAt
		}
		last = maxTime(last, in.TerminatedAt)
	}
	called := first.Add(-dur(r.Model[latency.Terminate]))
	return []segment{
		{"DELETE -> TerminateInstances (API, record DELETING, cleanup)", "orchestration", called.Sub(r.DeleteAt).Seconds()},
		{"shutting-down -> terminated", "AWS", last.Sub(called).Seconds()},
		{"terminated -> DELETED (Wait loop, group and parameters, record)", "orchestration", r.Deleted.DeletedAt.Sub(last).Seconds()},
	}, nil
}

// readySeconds is the time to READY as the client sees it: POST sent to the
// record's readyAt (same host clock).
func (r *mecRun) readySeconds() float64 { return r.Ready.ReadyAt.Sub(r.PostAt).Seconds() }

func (r *mecRun) deletedSeconds() float64 { return r.Deleted.DeletedAt.Sub(r.DeleteAt).Seconds() }

// nodeBound is the critical path's lower bound from the model: boot, then
// the SSM agent's start and the install at first boot side by side, then the
// join (if any node joins) and the addons. The install at first boot is
// snapd's seeding then snap install: snapd takes no change before it seeded
// the image's snaps ("too early for operation, device not yet seeded",
// snapd's overlord; the simulator's snap.go), which is why boot.sh waits for
// seed.loaded. The agent's Online time includes the seeding too (the agent
// is one of those snaps).
func (r *mecRun) nodeBound() float64 {
	b := r.Model[latency.Boot] + max(r.Model[latency.AgentOnline], r.Model[latency.Seeding]+r.Model[latency.SnapInstall]) + r.Model[latency.Addons]
	if r.Nodes > 1 {
		b += r.Model[latency.Join]
	}
	return b
}

// awsBound adds the simulated AWS latencies on the same path: the
// RunInstances call and the one Run Command dispatch (install, join and
// finalize in one command; a join retried after a reset sends three more).
func (r *mecRun) awsBound() float64 {
	return r.nodeBound() + r.Model[latency.RunInstancesCall] + r.Model[latency.Dispatch]
}

// actualBound is the same path from the simulator's own clocks: the
// slowest node's launch to online (agent delay from the model: the
// simulator does not expose it), and each command's send to its slowest
// invocation's end (dispatch + script, the script's own overhead included).
func (r *mecRun) actualBound() float64 {
	var launched, online time.Time
	for _, in := range r.Instances {
		if launched.IsZero() || in.LaunchedAt.Before(launched) {
			launched = in.LaunchedAt
		}
		online = maxTime(online, in.RunningAt.Add(dur(r.Model[latency.AgentOnline])))
	}
	b := r.Model[latency.RunInstancesCall] + online.Sub(launched).Seconds()
	for _, c := range r.commands() {
		b += c.ended.Sub(c.sent).Seconds()
	}
	return b
}

// scriptOverhead is, per command step, each successful invocation's script
// time less the simulated sleep inside it: what bash, the stand-ins, curl to
// IMDS and Parameter Store and python cost on top of the modelled node work.
func (r *mecRun) scriptOverhead() map[string][]float64 {
	out := map[string][]float64{}
	for _, c := range cmdSteps {
		for _, v := range r.Cmds[c.step] {
			if v.Status == "Success" {
				out[c.step] = append(out[c.step], v.EndedAt.Sub(v.StartedAt).Seconds()-r.Model[c.sleep])
			}
		}
	}
	return out
}

// onlineOvershoot is how long after the last node came online the check
// loop saw it, and how many checks it took.
func (r *mecRun) onlineOvershoot() (seconds, waited float64) {
	online := r.Ready.Step(mec.StepNodesOnline)
	var all time.Time
	for _, in := range r.Instances {
		all = maxTime(all, in.RunningAt.Add(dur(r.Model[latency.AgentOnline])))
	}
	return online.EndedAt.Sub(all).Seconds(), all.Sub(online.StartedAt).Seconds()
}

func dur(seconds float64) time.Duration { return time.Duration(seconds * float64(time.Second)) }

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// warmSpares fills the pool of spare node roles before runs are measured,
// as on a stack in use: only a freshly deployed stack's first MEC makes a
// node role of its own and waits for IAM to propagate it. One 1-node MEC
// is created, and deleted as soon as its launch made the pool up.
func (e *env) warmSpares(ctx context.Context, name string) error {
	res := e.api(ctx, "POST", "/mecs", fmt.Sprintf(`{"name":%q,"nodeCount":1}`, name))
	if err := res.check(202); err != nil {
		return fmt.Errorf("warm-up POST /mecs: %w", err)
	}
	var created mec.MEC
	if err := json.Unmarshal(res.Body, &created); err != nil {
		return fmt.Errorf("warm-up POST /mecs answer: %w", err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for free := 0; free < localrt.DefaultSpareNodeRoles; {
		if time.Now().After(deadline) {
			return fmt.Errorf("warm-up: %d spare node roles after 2 minutes", free)
		}
		time.Sleep(50 * time.Millisecond)
		spares, err := e.store.Spares(ctx)
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		free = 0
		for _, sp := range spares {
			if sp.ClusterID == "" && sp.ProfileArn != "" {
				free++
			}
		}
	}
	if err := e.api(ctx, "DELETE", "/mecs/"+created.ID, "").check(202); err != nil {
		return fmt.Errorf("warm-up DELETE /mecs/%s: %w", created.ID, err)
	}
	_, err := e.waitRecord(ctx, created.ID, 290*time.Second, 20*time.Millisecond, mec.Deleted)
	return err
}
