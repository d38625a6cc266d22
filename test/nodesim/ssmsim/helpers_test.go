package ssmsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"

	"github.com/mecd/mecd/test/nodesim/fault"
	"github.com/mecd/mecd/test/nodesim/fidelity"
	"github.com/mecd/mecd/test/nodesim/latency"
)

const testRegion = "us-east-1"

// fakeInstances is the composition layer's stand-in in these tests.
type fakeInstances struct {
	mu sync.Mutex
	m  map[string]Instance
}

func (f *fakeInstances) Instance(id string) (Instance, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.m[id]
	return i, ok
}

func (f *fakeInstances) InstanceIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id := range f.m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (f *fakeInstances) put(i Instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[i.ID] = i
}

func (f *fakeInstances) setState(id, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.m[id]
	i.State = state
	f.m[id] = i
}

// event is one PutEvent call, with the detail as JSON would carry it.
type event struct {
	region, source, detailType string
	resources                  []string
	detail                     map[string]any
	// invocationStatus is what the Sim reported for the event's invocation at
	// the moment the event was put (to prove state-before-event).
	invocationStatus string
}

type recordingSink struct {
	mu     sync.Mutex
	events []event
	sim    func() *Sim
}

func (r *recordingSink) PutEvent(_ context.Context, region, source, detailType string, resources []string, detail any) error {
	b, err := json.Marshal(detail)
	if err != nil {
		return err
	}
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		return err
	}
	ev := event{region: region, source: source, detailType: detailType, resources: resources, detail: d}
	if s := r.sim(); s != nil {
		for _, inv := range s.Invocations() {
			if inv.CommandID == d["command-id"] && inv.InstanceID == d["instance-id"] {
				ev.invocationStatus = inv.Status
			}
		}
	}
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	return nil
}

func (r *recordingSink) forCommand(id string) []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []event
	for _, e := range r.events {
		if e.detail["command-id"] == id {
			out = append(out, e)
		}
	}
	return out
}

type env struct {
	sim    *Sim
	srv    *httptest.Server
	ssm    *ssm.Client
	insts  *fakeInstances
	sink   *recordingSink
	lat    *latency.Model
	faults *fault.Injector
	next   int
}

type envOptions struct {
	lat      *latency.Model
	fidelity *fidelity.Set
	fallback http.Handler // what the test front does with every other request (kumo), 404 by default
}

// newEnv starts a Sim behind a tiny test front on an httptest server:
// /_sim/ to ControlHandler, the Run Command actions to ServeHTTP, the rest to fallback.
func newEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	e := &env{insts: &fakeInstances{m: map[string]Instance{}}, lat: opts.lat, faults: fault.New(7)}
	if e.lat == nil {
		e.lat = latency.New(0.001, latency.Typical, 1)
	}
	var simMu sync.Mutex
	var sim *Sim
	getSim := func() *Sim { simMu.Lock(); defer simMu.Unlock(); return sim }
	e.sink = &recordingSink{sim: getSim}
	fallback := opts.fallback
	if fallback == nil {
		fallback = http.NotFoundHandler()
	}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch s := getSim(); {
		case s != nil && strings.HasPrefix(r.URL.Path, "/_sim/"):
			s.ControlHandler().ServeHTTP(w, r)
		case s != nil && Handles(r):
			s.ServeHTTP(w, r)
		default:
			fallback.ServeHTTP(w, r)
		}
	}))
	s, err := New(Config{Instances: e.insts, Events: e.sink, Latency: e.lat, Faults: e.faults, Fidelity: opts.fidelity,
		Dir: t.TempDir(), Endpoint: e.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	simMu.Lock()
	sim = s
	simMu.Unlock()
	e.sim = s
	t.Cleanup(func() { s.Close(); e.srv.Close() })
	e.ssm = ssm.New(ssm.Options{
		Region:       testRegion,
		BaseEndpoint: aws.String(e.srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	})
	return e
}

// addInstance registers a running instance whose agent is already online
// (RunningAt an hour ago) with a private IP of the default VPC.
func (e *env) addInstance(mod ...func(*Instance)) Instance {
	e.next++
	i := Instance{
		ID: fmt.Sprintf("i-0a1b2c3d4e5f%05d", e.next), Region: testRegion, State: "running",
		PrivateIP: fmt.Sprintf("172.31.%d.%d", 10+e.next/200, 10+e.next%200), LaunchIndex: e.next - 1,
		IamInstanceProfileArn: "arn:aws:iam::123456789012:instance-profile/mecd-node-test",
		Tags:                  map[string]string{"mecd:cluster-id": "c-test"}, RunningAt: time.Now().Add(-time.Hour),
	}
	for _, m := range mod {
		m(&i)
	}
	e.insts.put(i)
	return i
}

func (e *env) addInstances(n int, mod ...func(*Instance)) []Instance {
	var out []Instance
	for range n {
		out = append(out, e.addInstance(mod...))
	}
	return out
}

type runResult struct {
	commandID string
	status    string
	details   string
	code      int32
	stdout    string
	stderr    string
}

// send runs a script on the instances with SendCommand; extra parameters may override.
func (e *env) send(t *testing.T, ids []string, script string, params map[string][]string) string {
	t.Helper()
	p := map[string][]string{"commands": {script}}
	for k, v := range params {
		p[k] = v
	}
	out, err := e.ssm.SendCommand(context.Background(), &ssm.SendCommandInput{
		DocumentName: aws.String("AWS-RunShellScript"), InstanceIds: ids, Parameters: p,
	})
	if err != nil {
		t.Fatalf("SendCommand: %v", err)
	}
	return aws.ToString(out.Command.CommandId)
}

// wait polls GetCommandInvocation until the invocation is terminal.
func (e *env) wait(t *testing.T, commandID, id string) runResult {
	t.Helper()
	deadline := time.Now().Add(9 * time.Second)
	for {
		out, err := e.ssm.GetCommandInvocation(context.Background(), &ssm.GetCommandInvocationInput{CommandId: aws.String(commandID), InstanceId: aws.String(id)})
		if err != nil {
			t.Fatalf("GetCommandInvocation: %v", err)
		}
		switch out.Status {
		case "Pending", "InProgress", "Delayed":
		default:
			return runResult{commandID: commandID, status: string(out.Status), details: aws.ToString(out.StatusDetails), code: out.ResponseCode,
				stdout: aws.ToString(out.StandardOutputContent), stderr: aws.ToString(out.StandardErrorContent)}
		}
		if time.Now().After(deadline) {
			t.Fatalf("command %s on %s still %s", commandID, id, out.Status)
		}
		time.Sleep(15 * time.Millisecond)
	}
}

// sh runs a script on one host and waits for it.
func (e *env) sh(t *testing.T, id, script string) runResult {
	t.Helper()
	return e.wait(t, e.send(t, []string{id}, script, nil), id)
}

// mustSh runs a script that must succeed.
func (e *env) mustSh(t *testing.T, id, script string) runResult {
	t.Helper()
	r := e.sh(t, id, script)
	if r.status != "Success" {
		t.Fatalf("script on %s: %s (%d)\nscript:\n%s\nstdout:\n%s\nstderr:\n%s", id, r.status, r.code, script, r.stdout, r.stderr)
	}
	return r
}

func (e *env) host(t *testing.T, id string) HostState {
	t.Helper()
	h, ok := e.sim.Host(id)
	if !ok {
		t.Fatalf("no host %s", id)
	}
	return h
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func ids(insts []Instance) []string {
	var out []string
	for _, i := range insts {
		out = append(out, i.ID)
	}
	return out
}

const installScript = "snap install microk8s --classic --channel=1.35/stable"
