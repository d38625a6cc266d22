package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/test/nodesim/latency"
)

// Day-2 operations run statemachine/scale.asl.json. Its success path has two
// loops: the online check (k invocations of check-nodes) and the wait for
// the removed nodes' instances to end (c invocations of cleanup), and a
// choice on the operation's kind: a repair removes its lost nodes before
// the replacements join.
const (
	opsCheckLoop   = "Are the nodes online?"
	opsReleaseLoop = "Are the removed nodes gone?"
	opsLostLoop    = "Are the lost nodes gone?"
	opsKindChoice  = "Is it a repair?"
	opsUndoChoice  = "Undo only?"
)

// walkDecide follows the success path; at each Choice, decide says whether
// to take its first choice (visit counts that Choice's visits from 1).
func (d *aslDef) walkDecide(decide func(name string, visit int) bool) ([]string, error) {
	var path []string
	visits := map[string]int{}
	name := d.StartAt
	for range 10000 {
		st, ok := d.States[name]
		if !ok {
			return nil, fmt.Errorf("ASL: no state %q", name)
		}
		path = append(path, name)
		switch st.Type {
		case "Succeed":
			return path, nil
		case "Fail":
			return nil, fmt.Errorf("success path reached Fail state %q", name)
		case "Choice":
			cur := name
			visits[cur]++
			name = st.Default
			if decide(cur, visits[cur]) {
				name = st.Choices[0].Next
			}
		default:
			if st.End {
				return path, nil
			}
			name = st.Next
		}
	}
	return nil, fmt.Errorf("ASL walk did not end")
}

// opsPath is the scale workflow's success path for kind ("scale" or
// "repair") with k online checks and c looks for the removed instances.
func opsPath(d *aslDef, kind string, k, c int) ([]string, error) {
	for _, s := range []string{opsCheckLoop, opsReleaseLoop, opsLostLoop, opsKindChoice, opsUndoChoice} {
		if _, ok := d.States[s]; !ok {
			return nil, fmt.Errorf("scale ASL has no state %q (the benchmark's transition count follows it)", s)
		}
	}
	return d.walkDecide(func(name string, visit int) bool {
		switch name {
		case opsUndoChoice:
			return false
		case opsKindChoice:
			return kind == mec.OperationRepair
		case opsCheckLoop:
			return visit >= k
		case opsReleaseLoop, opsLostLoop:
			return visit >= c
		}
		return true
	})
}

// opRun is one day-2 operation on a MEC, measured as a provisioning is.
type opRun struct {
	What        string
	Kind        string
	Mode        latency.Mode
	Scale       float64
	Seconds     float64 // asked (PATCH, or the sweep that found the loss) -> READY
	Use         usage
	Checks      int
	Releases    int
	Transitions int
	Path        []string
	Err         error
}

// runOps makes a 3-node MEC, scales it up by one node, then loses that node
// (terminated behind mecd's back) and lets a sweep repair it, then deletes it.
func (e *env) runOps(ctx context.Context, d *aslDef, name string) []*opRun {
	up := &opRun{What: "scale up by 1 (3 -> 4 nodes)", Kind: mec.OperationScale, Mode: latency.Typical, Scale: e.scale}
	rep := &opRun{What: "repair of 1 lost worker (4 nodes)", Kind: mec.OperationRepair, Mode: latency.Typical, Scale: e.scale}
	fail := func(err error) []*opRun {
		up.Err = err
		return []*opRun{up}
	}
	res := e.api(ctx, "POST", "/mecs", fmt.Sprintf(`{"name":%q,"nodeCount":3}`, name))
	if err := res.check(202); err != nil {
		return fail(fmt.Errorf("POST /mecs: %w", err))
	}
	var m mec.MEC
	if err := json.Unmarshal(res.Body, &m); err != nil {
		return fail(err)
	}
	defer func() {
		if e.api(ctx, "DELETE", "/mecs/"+m.ID, "").check(202) == nil {
			_, _ = e.waitRecord(ctx, m.ID, 290*time.Second, 50*time.Millisecond, mec.Deleted)
		}
	}()
	ready, err := e.waitRecord(ctx, m.ID, 290*time.Second, 20*time.Millisecond, mec.Ready, mec.Failed)
	if err != nil || ready.Status != mec.Ready {
		return fail(fmt.Errorf("MEC %s not READY: %v", m.ID, err))
	}
	if _, err := e.waitExecution(ctx, ready.ExecutionArn, time.Minute); err != nil {
		return fail(err)
	}
	settle()

	measure := func(r *opRun, start func() error, base int) error {
		s0 := e.snapshot()
		began := time.Now()
		if err := start(); err != nil {
			return err
		}
		got, err := e.waitRecord(ctx, m.ID, 290*time.Second, 20*time.Millisecond, mec.Ready, mec.Degraded)
		for err == nil && (len(got.Operations) <= base || got.Operation().Outcome == mec.OutcomeRunning) {
			time.Sleep(20 * time.Millisecond)
			got, err = e.store.Get(ctx, m.ID)
		}
		if err != nil {
			return err
		}
		op := got.Operation()
		if got.Status != mec.Ready || op.Outcome != mec.OutcomeSucceeded {
			return fmt.Errorf("%s: %s, operation %s: %s", r.What, got.Status, op.Outcome, clip(op.Detail, 300))
		}
		r.Seconds = time.Since(began).Seconds()
		if _, err := e.waitExecution(ctx, op.ExecutionArn, time.Minute); err != nil {
			return err
		}
		settle()
		r.Use = s0.until(e.snapshot())
		r.Checks, r.Releases = r.Use.Fns["check-nodes"].Count, r.Use.Fns["cleanup"].Count
		if r.Path, err = opsPath(d, r.Kind, r.Checks, r.Releases); err != nil {
			return err
		}
		// Any task invocation beyond the path's (a retry) is one more.
		r.Transitions = len(r.Path) + max(0, r.Use.Fns["node-command"].Count-2) + max(0, r.Use.Fns["launch-nodes"].Count-1) +
			max(0, r.Use.Fns["record-status"].Count-1)
		return nil
	}
	if err := measure(up, func() error {
		return e.api(ctx, "PATCH", "/mecs/"+m.ID, `{"nodeCount":4}`).check(202)
	}, 0); err != nil {
		up.Err = err
		return []*opRun{up}
	}
	// The sweeper leaves a MEC alone for 6 poll intervals after a change
	// (what AWS says may lag it): the loss comes after that, so one sweep
	// finds it, as the schedule's would.
	time.Sleep(time.Duration(6*10*e.scale*float64(time.Second)) + 500*time.Millisecond)
	if err := measure(rep, func() error {
		cur, err := e.store.Get(ctx, m.ID)
		if err != nil {
			return err
		}
		var worker string
		for _, n := range cur.MemberNodes() {
			if n.Role == "worker" {
				worker = n.InstanceID
			}
		}
		if _, err := e.rt.Clients("").EC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{worker}}); err != nil {
			return err
		}
		// The sweep schedule finds it (never fires locally: invoked here).
		for range 50 {
			var out json.RawMessage
			if err := e.rt.InvokeScheduled(ctx, "sweeper", &out); err != nil {
				return err
			}
			if got, err := e.store.Get(ctx, m.ID); err == nil && got.Status != mec.Ready {
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		return fmt.Errorf("no sweep started the repair")
	}, 1); err != nil {
		rep.Err = err
	}
	return []*opRun{up, rep}
}
