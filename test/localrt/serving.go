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
}

// NewServingTracker returns an empty tracker.
func NewServingTracker() *ServingTracker {
	return &ServingTracker{byFn: map[string]map[string]string{}}
}

func (s *ServingTracker) begin(fn, slot, requestID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byFn[fn] == nil {
		s.byFn[fn] = map[string]string{}
	}
	s.byFn[fn][slot] = requestID
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

// busy returns a slot of fn serving an invocation, and its request id.
func (s *ServingTracker) busy(fn string) (slot, requestID string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sl, id := range s.byFn[fn] {
		return sl, id, true
	}
	return "", "", false
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

// KillServing waits (within ctx) until a process of the function fn (a
// backend name) is serving an invocation, SIGKILLs it by its pid, and
// returns the invocation's request id. The supervisor restarts it.
func (rt *Runtime) KillServing(ctx context.Context, fn string) (string, error) {
	name := FunctionName(fn)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		if slot, id, ok := rt.Front.Serving.busy(name); ok {
			n, _ := strconv.Atoi(slot)
			if pid, ok := rt.Sup.SlotPID(name, n); ok {
				if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
					return "", fmt.Errorf("kill %s process %d: %w", fn, pid, err)
				}
				return id, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no %s process served an invocation: %w", fn, ctx.Err())
		case <-tick.C:
		}
	}
}
