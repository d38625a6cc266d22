package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mecd/mecd/internal/api"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/store"
)

// scaleRun is N MECs created at once through the API, then deleted at once.
type scaleRun struct {
	N, Nodes    int
	Processes   int // Lambda processes per function (the local Lambda concurrency)
	Scale       float64
	Ready       int
	Failed      []string // id: step: cause
	APIErrors   []string
	PostLatency []time.Duration
	// Wall times: first POST sent to the last MEC READY; first DELETE sent to the last DELETED.
	Wall, DeleteWall time.Duration
	ToReady          []time.Duration // per MEC, POST sent to readyAt
	Deleted          int
	Leaks            []string // the audit's findings for this batch's clusters
	OtherLeaks       []string // findings for clusters of earlier measurements
	Prov, Tear       usage
	KumoHWM          int64 // kumo's peak RSS (kB) at the end
	// Steps are the READY MECs' step durations from their records (seconds),
	// plus "start -> prepare": record created by the API to prepare running.
	Steps   map[string][]float64
	Retried []string // failed-then-retried steps of READY MECs
	Err     error
}

// runScale creates n MECs of nodes nodes concurrently, waits for all, then
// deletes all concurrently and runs the leak audit over every cluster.
func (e *env) runScale(ctx context.Context, n, nodes int, tag string, limit time.Duration) *scaleRun {
	r := &scaleRun{N: n, Nodes: nodes, Scale: e.scale, Processes: e.processes, Steps: map[string][]float64{}}
	r.Err = e.doRunScale(ctx, r, tag, limit)
	r.KumoHWM, _ = procStatusKB(e.kumoPID, "VmHWM")
	return r
}

func (e *env) doRunScale(ctx context.Context, r *scaleRun, tag string, limit time.Duration) error {
	s0 := e.snapshot()
	ids := make([]string, r.N)
	posted := make([]time.Time, r.N)
	lat := make([]time.Duration, r.N)
	errs := make([]string, r.N)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range r.N {
		wg.Add(1)
		go func() {
			defer wg.Done()
			posted[i] = time.Now()
			res := e.api(ctx, "POST", "/mecs", fmt.Sprintf(`{"name":"%s-%d","nodeCount":%d}`, tag, i, r.Nodes))
			lat[i] = res.Latency
			if err := res.check(202); err != nil {
				errs[i] = "POST: " + err.Error()
				return
			}
			var m mec.MEC
			if err := json.Unmarshal(res.Body, &m); err != nil {
				errs[i] = "POST answer: " + err.Error()
				return
			}
			ids[i] = m.ID
		}()
	}
	wg.Wait()
	r.PostLatency = lat
	for _, s := range errs {
		if s != "" {
			r.APIErrors = append(r.APIErrors, s)
		}
	}

	// Follow every MEC on the table directly (not counted), at a pace that
	// leaves the CPU to the product.
	final := map[string]*mec.MEC{}
	deadline := time.Now().Add(limit)
	for len(final) < countNonEmpty(ids) && time.Now().Before(deadline) {
		for _, id := range ids {
			if id == "" || final[id] != nil {
				continue
			}
			m, err := e.store.Get(ctx, id)
			if err != nil {
				return fmt.Errorf("read %s: %w", id, err)
			}
			if m.Status == mec.Ready || m.Status == mec.Failed {
				final[id] = m
			}
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	var last time.Time
	for i, id := range ids {
		m := final[id]
		switch {
		case id == "":
		case m == nil:
			r.Failed = append(r.Failed, id+": not READY after "+limit.String())
		case m.Status == mec.Ready:
			r.Ready++
			for _, f := range failedAttempts(m) {
				r.Retried = append(r.Retried, id+": "+f)
			}
			seen := map[string]bool{}
			for _, st := range m.Steps {
				if st.EndedAt != nil && !seen[st.Name] {
					seen[st.Name] = true
					r.Steps[st.Name] = append(r.Steps[st.Name], st.Seconds)
				}
			}
			if st := m.Step(mec.StepResolve); st != nil {
				r.Steps[startToPrepare] = append(r.Steps[startToPrepare], st.StartedAt.Sub(m.CreatedAt).Seconds())
			}
			r.ToReady = append(r.ToReady, m.ReadyAt.Sub(posted[i]))
			last = maxTime(last, *m.ReadyAt)
		default:
			r.Failed = append(r.Failed, fmt.Sprintf("%s: %s: %s", id, m.FailedStep, clip(m.FailureCause, 200)))
		}
	}
	if !last.IsZero() {
		r.Wall = last.Sub(start)
	}
	// Let the last executions end before counting.
	for _, m := range final {
		if m.ExecutionArn != "" {
			if _, err := e.waitExecution(ctx, m.ExecutionArn, time.Minute); err != nil {
				return err
			}
		}
	}
	settle()
	s1 := e.snapshot()
	r.Prov = s0.until(s1)

	delStart := time.Now()
	var delErrs sync.Map
	for _, id := range ids {
		if id == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.api(ctx, "DELETE", "/mecs/"+id, "").check(202); err != nil {
				delErrs.Store(id, "DELETE: "+err.Error())
			}
		}()
	}
	wg.Wait()
	delErrs.Range(func(_, v any) bool { r.APIErrors = append(r.APIErrors, v.(string)); return true })
	var lastDel time.Time
	var teardowns []string
	done := map[string]bool{}
	deadline = time.Now().Add(limit)
	for len(done) < countNonEmpty(ids) && time.Now().Before(deadline) {
		for _, id := range ids {
			if id == "" || done[id] {
				continue
			}
			m, err := e.store.Get(ctx, id)
			if err != nil {
				return fmt.Errorf("read %s: %w", id, err)
			}
			if m.Status == mec.Deleted {
				done[id] = true
				lastDel = maxTime(lastDel, *m.DeletedAt)
				if m.TeardownExecutionArn != "" {
					teardowns = append(teardowns, m.TeardownExecutionArn)
				}
			}
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	r.Deleted = len(done)
	if !lastDel.IsZero() {
		r.DeleteWall = lastDel.Sub(delStart)
	}
	// Teardown executions end right after DELETED is recorded.
	for _, arn := range teardowns {
		if _, err := e.waitExecution(ctx, arn, time.Minute); err != nil {
			return err
		}
	}
	settle()
	r.Tear = s1.until(e.snapshot())
	leaks, err := e.rt.LeakAudit(ctx, "")
	for _, l := range leaks {
		if slices.ContainsFunc(ids, func(id string) bool { return id != "" && strings.Contains(l, id) }) {
			r.Leaks = append(r.Leaks, l)
		} else {
			r.OtherLeaks = append(r.OtherLeaks, l)
		}
	}
	return err
}

const startToPrepare = "start -> prepare"

func countNonEmpty(ss []string) int {
	n := 0
	for _, s := range ss {
		if s != "" {
			n++
		}
	}
	return n
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// listRun is the list latency with many records in the table.
type listRun struct {
	Records    int
	InsertTime time.Duration
	FirstPage  []time.Duration // GET /mecs?limit=100
	Paging     []time.Duration // every page of a full listing (nextToken)
	PagedItems int
	Status     []time.Duration // GET /mecs?status=READY&limit=100
	Region     []time.Duration // GET /mecs?region=eu-central-1&limit=100 (a quarter of the records)
	Direct     []time.Duration // store.Store.List (limit 100) on kumo directly: the DynamoDB emulation alone
	Handler    map[string][]time.Duration
	Errors     []string
	Err        error
}

var listRegions = []string{"us-east-1", "us-west-2", "eu-central-1", "ap-northeast-1"}

// runList inserts n READY records shaped like tmpl straight through
// store.Store.Create (DynamoDB on kumo, not the API: seconds instead of
// minutes), then times list requests through the API.
func (e *env) runList(ctx context.Context, tmpl *mec.MEC, n, samples int) *listRun {
	r := &listRun{Records: n, Handler: map[string][]time.Duration{}}
	r.Err = e.doRunList(ctx, r, tmpl, samples)
	return r
}

func (e *env) doRunList(ctx context.Context, r *listRun, tmpl *mec.MEC, samples int) error {
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= r.Records || ctx.Err() != nil {
					return
				}
				m := *tmpl
				m.ID = mec.NewID(time.Now())
				m.Name = fmt.Sprintf("list-%05d", i)
				m.Spec.Name = m.Name
				m.Region = listRegions[i%len(listRegions)]
				m.Spec.Region = m.Region
				m.Status = mec.Ready
				if err := e.store.Create(ctx, &m, nil); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("insert record %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	r.InsertTime = time.Since(t0)
	if firstErr != nil {
		return firstErr
	}

	get := func(path string) (*api.ListResponse, time.Duration, error) {
		res := e.api(ctx, "GET", path, "")
		if err := res.check(200); err != nil {
			return nil, res.Latency, fmt.Errorf("GET %s: %w", path, err)
		}
		var lr api.ListResponse
		if err := json.Unmarshal(res.Body, &lr); err != nil {
			return nil, res.Latency, fmt.Errorf("GET %s: %w", path, err)
		}
		return &lr, res.Latency, nil
	}
	timed := func(label, path string, out *[]time.Duration) error {
		s0 := e.snapshot()
		for range samples {
			lr, d, err := get(path)
			if err != nil {
				return err
			}
			if len(lr.Items) == 0 {
				return fmt.Errorf("GET %s: no items", path)
			}
			*out = append(*out, d)
		}
		r.Handler[label] = s0.until(e.snapshot()).Fns["api"].Durations
		return nil
	}
	if err := timed("first page", "/mecs?limit=100", &r.FirstPage); err != nil {
		return err
	}
	for range samples {
		t := time.Now()
		if _, _, err := e.store.List(ctx, store.ListQuery{Limit: 100}); err != nil {
			return fmt.Errorf("list on kumo: %w", err)
		}
		r.Direct = append(r.Direct, time.Since(t))
	}
	// One full listing, page by page (bounded: the table holds n records and
	// whatever earlier measurements left, all DELETED or READY).
	s0 := e.snapshot()
	tok := ""
	for range r.Records/100 + 50 {
		path := "/mecs?limit=100"
		if tok != "" {
			path += "&nextToken=" + url.QueryEscape(tok)
		}
		lr, d, err := get(path)
		if err != nil {
			return err
		}
		r.Paging = append(r.Paging, d)
		r.PagedItems += len(lr.Items)
		if tok = lr.NextToken; tok == "" {
			break
		}
	}
	r.Handler["paging"] = s0.until(e.snapshot()).Fns["api"].Durations
	if tok != "" {
		return errors.New("full listing did not end within its page bound")
	}
	if err := timed("status filter", "/mecs?status=READY&limit=100", &r.Status); err != nil {
		return err
	}
	return timed("region filter", "/mecs?region=eu-central-1&limit=100", &r.Region)
}
