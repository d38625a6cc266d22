// Package iameval evaluates IAM requests with AWS's policy evaluation logic
// as implemented by @cloud-copilot/iam-simulate (pinned in package.json, run
// by eval.mjs as a child process): identity policies, permissions
// boundaries, explicit denies, condition operators and their IfExists and
// absent-key rules. Nothing here decides an outcome; it only carries
// requests to the evaluator and answers back.
package iameval

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// Decisions, as IAM's evaluation logic names them.
const (
	Allowed          = "Allowed"
	ExplicitlyDenied = "ExplicitlyDenied"
	ImplicitlyDenied = "ImplicitlyDenied"
)

// Policy is one named policy document.
type Policy struct {
	Name     string          `json:"name"`
	Document json.RawMessage `json:"policy"`
}

// Request is one authorization request: who, what, on which resource, and
// the request context's condition keys (absent keys are simply not listed).
type Request struct {
	Principal string
	Action    string
	Resource  string
	Account   string
	Context   map[string][]string
	// ResourcePolicy is the resource's own policy, if it has one (a KMS
	// key's key policy, without which no IAM policy grants anything on it).
	ResourcePolicy json.RawMessage
}

// Principal is whose policies decide a request.
type Principal struct {
	Identity []Policy
	Boundary []Policy
}

// Answer is the evaluator's decision.
type Answer struct {
	Decision string
	// Ignored are context keys the action does not take (AWS would not
	// send them), which the evaluator left out.
	Ignored []string
}

// Evaluator is one running evaluator process.
type Evaluator struct {
	mu   sync.Mutex
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	next int
}

// Dir is where eval.mjs and its node_modules live.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Start runs the evaluator. It needs node and `npm ci` in Dir (make test
// runs it; make iameval-deps alone).
func Start() (*Evaluator, error) {
	dir := Dir()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@cloud-copilot", "iam-simulate")); err != nil {
		return nil, fmt.Errorf("iameval: %s/node_modules lacks @cloud-copilot/iam-simulate: run make iameval-deps (npm ci there)", dir)
	}
	cmd := exec.Command("node", "eval.mjs")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("iameval: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("iameval: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("iameval: start node: %w", err)
	}
	return &Evaluator{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<16)}, nil
}

// Close stops the evaluator (by its pid, after closing its input).
func (e *Evaluator) Close() {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.in.Close()
	done := make(chan struct{})
	go func() { _ = e.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(e.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Evaluate decides r for p.
func (e *Evaluator) Evaluate(ctx context.Context, p Principal, r Request) (Answer, error) {
	ctxVars := map[string]any{}
	for k, v := range r.Context {
		if len(v) == 1 {
			ctxVars[k] = v[0]
		} else {
			ctxVars[k] = v
		}
	}
	sim := map[string]any{
		"request": map[string]any{
			"principal": r.Principal, "action": r.Action,
			"resource":         map[string]any{"resource": r.Resource, "accountId": r.Account},
			"contextVariables": ctxVars,
		},
		"identityPolicies":        nonNil(p.Identity),
		"serviceControlPolicies":  []any{},
		"resourceControlPolicies": []any{},
	}
	if len(p.Boundary) > 0 {
		sim["permissionBoundaryPolicies"] = p.Boundary
	}
	if r.ResourcePolicy != nil {
		sim["resourcePolicy"] = r.ResourcePolicy
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.next++
	line, err := json.Marshal(map[string]any{"id": e.next, "simulation": sim})
	if err != nil {
		return Answer{}, fmt.Errorf("iameval: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Answer{}, err
	}
	if _, err := e.in.Write(append(line, '\n')); err != nil {
		return Answer{}, fmt.Errorf("iameval: write: %w", err)
	}
	raw, err := e.out.ReadBytes('\n')
	if err != nil {
		return Answer{}, fmt.Errorf("iameval: read: %w", err)
	}
	var res struct {
		ID      int      `json:"id"`
		Result  string   `json:"result"`
		Ignored []string `json:"ignored"`
		Error   string   `json:"error"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return Answer{}, fmt.Errorf("iameval: answer %q: %w", raw, err)
	}
	switch {
	case res.ID != e.next:
		return Answer{}, fmt.Errorf("iameval: answer %d to request %d", res.ID, e.next)
	case res.Error != "":
		return Answer{}, errors.New("iameval: " + res.Error)
	}
	return Answer{Decision: res.Result, Ignored: res.Ignored}, nil
}

func nonNil(p []Policy) []Policy {
	if p == nil {
		return []Policy{}
	}
	return p
}
