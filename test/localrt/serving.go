package localrt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Each Lambda process reaches the Runtime API at /_runtime/<function>~<slot>/,
// so the front knows which process holds which invocation (kumo hands one at
// a time to each poller). That is how a process can be killed while it
// serves an invocation, and how its invocation ends the way Lambda ends it.

// slotSep separates a function name from its process slot in the runtime path
// (a function name has no "~").
const slotSep = "~"

// splitSlot reads "<function>~<slot>" ("" slot for a plain function name).
func splitSlot(seg string) (fn, slot string) {
	fn, slot, _ = strings.Cut(seg, slotSep)
	return fn, slot
}

// ServingTracker knows which process slot holds which invocation.
type ServingTracker struct {
	mu   sync.Mutex
	byFn map[string]map[string]string // function -> slot -> request id
	// armed: the next invocation of the function is reported here (once).
	armed map[string]chan served
}

// served is an invocation a process took, by slot.
type served struct{ slot, requestID string }

// NewServingTracker returns an empty tracker.
func NewServingTracker() *ServingTracker {
	return &ServingTracker{byFn: map[string]map[string]string{}, armed: map[string]chan served{}}
}

func (s *ServingTracker) begin(fn, slot, requestID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byFn[fn] == nil {
		s.byFn[fn] = map[string]string{}
	}
	s.byFn[fn][slot] = requestID
	if ch, ok := s.armed[fn]; ok {
		delete(s.armed, fn)
		ch <- served{slot, requestID}
	}
}

// arm returns a channel that gets fn's next invocation as a process takes it.
func (s *ServingTracker) arm(fn string) chan served {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan served, 1)
	s.armed[fn] = ch
	return ch
}

// holds reports whether slot of fn still serves requestID.
func (s *ServingTracker) holds(fn, slot, requestID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byFn[fn][slot] == requestID
}

func (s *ServingTracker) disarm(fn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.armed, fn)
}

func (s *ServingTracker) end(fn, slot, requestID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byFn[fn][slot] == requestID {
		delete(s.byFn[fn], slot)
	}
}

// take returns and forgets the invocation slot holds ("" if none).
func (s *ServingTracker) take(fn, slot string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.byFn[fn][slot]
	delete(s.byFn[fn], slot)
	return id
}

// processExited ends the invocation a dead process held as Lambda does
// when a runtime exits mid-invocation: an Unhandled function error of type
// Runtime.ExitError ("Runtime exited with error: signal: killed"), at once
// rather than at the function's timeout.
// https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html (invocation error)
func (f *Front) processExited(fn string, slot int, exitErr error) {
	id := f.Serving.take(fn, strconv.Itoa(slot))
	if id == "" {
		return
	}
	msg := fmt.Sprintf("RequestId: %s Error: Runtime exited with error: %v", id, exitErr)
	body, _ := json.Marshal(map[string]any{"errorMessage": msg, "errorType": "Runtime.ExitError"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := f.kumo.JoinPath("_runtime", fn, "2018-06-01/runtime/invocation", id, "error")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Lambda-Runtime-Function-Error-Type", "Runtime.ExitError")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.log.Warn("report a dead process's invocation", "function", fn, "requestId", id, "err", err)
		return
	}
	resp.Body.Close()
	f.Invokes.finish(fn, id, true)
	f.log.Info("invocation ended by its process's death", "function", fn, "requestId", id, "err", exitErr)
}

// KillServing waits (within ctx) for the next invocation of the function
// fn (a backend name) to reach a process, lets the handler start, then
// SIGKILLs that process by its pid and returns the invocation's request
// id. The supervisor restarts the process.
func (rt *Runtime) KillServing(ctx context.Context, fn string) (string, error) {
	name := FunctionName(fn)
	for {
		ch := rt.Front.Serving.arm(name)
		var got served
		select {
		case got = <-ch:
		case <-ctx.Done():
			rt.Front.Serving.disarm(name)
			return "", fmt.Errorf("no %s invocation reached a process: %w", fn, ctx.Err())
		}
		// The event is on its way to the process; its handler starts
		// within a millisecond and makes AWS calls for several.
		time.Sleep(time.Millisecond)
		n, _ := strconv.Atoi(got.slot)
		pid, ok := rt.Sup.SlotPID(name, n)
		if !ok || !rt.Front.Serving.holds(name, got.slot, got.requestID) {
			continue // it already answered: wait for the next one
		}
		if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
			return "", fmt.Errorf("kill %s process %d: %w", fn, pid, err)
		}
		return got.requestID, nil
	}
}
