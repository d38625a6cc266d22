package api

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/spec"
	"github.com/mecd/mecd/internal/store"
)

func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	resp := e.do(t, post(`{"name":"edge-1","nodeCount":1,"addons":["dns","ingress"],"ttl":"8h","tags":{"team":"edge"}}`))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("create: %d %s", resp.StatusCode, resp.Body)
	}
	m := mecOf(t, resp)
	if !mec.ValidID(m.ID) || m.Status != mec.Creating || m.Name != "edge-1" || m.Region != "us-east-1" {
		t.Fatalf("created %+v", m)
	}
	if got := header(resp, "Location"); got != "/mecs/"+m.ID {
		t.Fatalf("Location %q", got)
	}
	if m.ExecutionArn == "" || !strings.HasSuffix(m.ExecutionArn, ":"+m.ID) || m.ExpiresAt == nil || m.Step(mec.StepRecord) == nil {
		t.Fatalf("execution %q expiresAt %v steps %+v", m.ExecutionArn, m.ExpiresAt, m.Steps)
	}
	if n := e.executions(t, e.provArn); n != 1 {
		t.Fatalf("%d provisioning executions, want 1", n)
	}

	// Read it back, in every shape API Gateway (AWS or kumo) sends events.
	for style := range styleCount {
		r := get("/mecs/" + m.ID)
		r.style = style
		resp = e.do(t, r)
		if resp.StatusCode != http.StatusOK || mecOf(t, resp).ID != m.ID {
			t.Fatalf("get (style %d): %d %s", style, resp.StatusCode, resp.Body)
		}
	}
	resp = e.do(t, req{method: "GET", path: "/mecs", query: "limit=5", style: styleStaged})
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Body, m.ID) {
		t.Fatalf("list: %d %s", resp.StatusCode, resp.Body)
	}

	// Delete twice: both 202, one teardown.
	starts := e.sfn.starts.Load()
	var arns []string
	for i := range 2 {
		resp = e.do(t, del("/mecs/"+m.ID))
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("delete %d: %d %s", i, resp.StatusCode, resp.Body)
		}
		arns = append(arns, mecOf(t, resp).TeardownExecutionArn)
	}
	if arns[0] == "" || arns[0] != arns[1] || e.executions(t, e.tearArn) != 1 || e.sfn.starts.Load() != starts+2 {
		t.Fatalf("teardown arns %v, %d executions", arns, e.executions(t, e.tearArn))
	}
	if got, _ := e.h.Store.Get(context.Background(), m.ID); got.TeardownExecutionArn != arns[0] {
		t.Fatalf("record teardown arn %q", got.TeardownExecutionArn)
	}

	// The name is held while the MEC lives...
	resp = e.do(t, post(`{"name":"edge-1"}`))
	if er := errOf(t, resp); resp.StatusCode != http.StatusConflict || er.Code != CodeNameTaken || !strings.Contains(er.Message, m.ID) {
		t.Fatalf("same name while live: %d %s", resp.StatusCode, resp.Body)
	}
	// ...and free once it is DELETED; deleting a DELETED MEC starts nothing.
	if _, err := e.h.Store.Update(context.Background(), m.ID, func(r *mec.MEC) error { r.Status = mec.Deleted; return nil }); err != nil {
		t.Fatal(err)
	}
	starts = e.sfn.starts.Load()
	resp = e.do(t, del("/mecs/"+m.ID))
	if resp.StatusCode != http.StatusAccepted || mecOf(t, resp).Status != mec.Deleted || e.sfn.starts.Load() != starts {
		t.Fatalf("delete DELETED: %d %s (%d starts)", resp.StatusCode, resp.Body, e.sfn.starts.Load()-starts)
	}
	resp = e.do(t, post(`{"name":"edge-1"}`))
	if resp.StatusCode != http.StatusAccepted || mecOf(t, resp).ID == m.ID {
		t.Fatalf("create after DELETED: %d %s", resp.StatusCode, resp.Body)
	}
	// Unknown ids.
	for _, r := range []req{get("/mecs/" + mec.NewID(time.Now())), del("/mecs/" + mec.NewID(time.Now())),
		get("/mecs/" + mec.NewID(time.Now()) + "/kubeconfig")} {
		if resp := e.do(t, r); resp.StatusCode != http.StatusNotFound || errOf(t, resp).Code != CodeNotFound {
			t.Fatalf("%s %s: %d %s", r.method, r.path, resp.StatusCode, resp.Body)
		}
	}
}

func TestIdempotentCreate(t *testing.T) {
	e := newEnv(t)
	body := `{"name":"edge-idem","nodeCount":2,"addons":["ingress","dns"]}`
	key := "8a1d5c3e-6f2b-4f7e-9d0a-2b3c4d5e6f70"
	const n = 10
	resps := make([]*mec.MEC, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp := e.do(t, post(body, "Idempotency-Key", key))
			if resp.StatusCode != http.StatusAccepted {
				t.Errorf("request %d: %d %s", i, resp.StatusCode, resp.Body)
				return
			}
			resps[i] = mecOf(t, resp)
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for i, m := range resps {
		if m.ID != resps[0].ID {
			t.Fatalf("request %d got %s, request 0 got %s", i, m.ID, resps[0].ID)
		}
	}
	if mecs := e.count(t, "mec"); mecs != 1 {
		t.Fatalf("%d MEC records, want 1", mecs)
	}
	if n := e.executions(t, e.provArn); n != 1 || e.sfn.starts.Load() != 1 {
		t.Fatalf("%d provisioning executions from %d starts, want 1 from 1", n, e.sfn.starts.Load())
	}

	// The same body again, reformatted and reordered: the same MEC.
	resp := e.do(t, post(`{ "addons": ["dns", "ingress"], "nodeCount": 2, "name": "edge-idem" }`, "idempotency-key", key))
	if resp.StatusCode != http.StatusAccepted || mecOf(t, resp).ID != resps[0].ID || header(resp, "Location") != "/mecs/"+resps[0].ID {
		t.Fatalf("replay: %d %s", resp.StatusCode, resp.Body)
	}
	// The same key with another body: 422, nothing made.
	items := e.count(t, "")
	resp = e.do(t, post(`{"name":"edge-idem","nodeCount":3}`, "Idempotency-Key", key))
	if er := errOf(t, resp); resp.StatusCode != http.StatusUnprocessableEntity || er.Code != CodeIdempotencyKeyReused {
		t.Fatalf("reused key: %d %s", resp.StatusCode, resp.Body)
	}
	resp = e.do(t, post(`{"name":"edge-other"}`, "Idempotency-Key", key))
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("reused key, other name: %d %s", resp.StatusCode, resp.Body)
	}
	// Another key, same name: the name is taken.
	resp = e.do(t, post(body, "Idempotency-Key", "another-key"))
	if er := errOf(t, resp); resp.StatusCode != http.StatusConflict || !strings.Contains(er.Message, resps[0].ID) {
		t.Fatalf("other key, same name: %d %s", resp.StatusCode, resp.Body)
	}
	if got := e.count(t, ""); got != items {
		t.Fatalf("items %d -> %d after refused requests", items, got)
	}
	// An expired key is claimed over.
	e.clock.advance(idempotencyTTL + time.Minute)
	resp = e.do(t, post(`{"name":"edge-later"}`, "Idempotency-Key", key))
	if resp.StatusCode != http.StatusAccepted || mecOf(t, resp).ID == resps[0].ID {
		t.Fatalf("expired key: %d %s", resp.StatusCode, resp.Body)
	}
}

// A request that died between its transaction and starting the workflow
// leaves a CREATING record without an execution: its repeat starts it.
func TestReplayResumesAnInterruptedCreate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	key := "interrupted-1"
	sp, err := spec.Parse([]byte(`{"name":"edge-resume"}`), e.h.defaults())
	if err != nil {
		t.Fatal(err)
	}
	now := e.h.now()
	m := &mec.MEC{ID: mec.NewID(now), Name: sp.Name, Status: mec.Creating, Region: sp.Region, Spec: sp}
	if err := e.st.Create(ctx, m, &store.Idempotency{Key: key, SpecHash: sp.Hash(), ClusterID: m.ID, ExpiresAt: now.Add(idempotencyTTL)}); err != nil {
		t.Fatal(err)
	}
	// Too early to take the original request for dead: answered as is.
	resp := e.do(t, post(`{"name":"edge-resume"}`, "Idempotency-Key", key))
	if got := mecOf(t, resp); resp.StatusCode != http.StatusAccepted || got.ID != m.ID || got.ExecutionArn != "" || e.sfn.starts.Load() != 0 {
		t.Fatalf("early replay: %d %s", resp.StatusCode, resp.Body)
	}
	e.clock.advance(resumeAfter + time.Second)
	resp = e.do(t, post(`{"name":"edge-resume"}`, "Idempotency-Key", key))
	if got := mecOf(t, resp); resp.StatusCode != http.StatusAccepted || got.ID != m.ID || got.ExecutionArn == "" || e.executions(t, e.provArn) != 1 {
		t.Fatalf("late replay: %d %s", resp.StatusCode, resp.Body)
	}
}

// A workflow that cannot be started leaves a FAILED record (step "start")
// and a 503; the same request again starts it.
func TestStartFailure(t *testing.T) {
	e := newEnv(t)
	key := "start-fails-1"
	e.sfn.fail.Store(true)
	resp := e.do(t, post(`{"name":"edge-nostart"}`, "Idempotency-Key", key))
	er := errOf(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable || er.Code != CodeUnavailable || header(resp, "Retry-After") == "" {
		t.Fatalf("start failure: %d %s", resp.StatusCode, resp.Body)
	}
	if strings.Contains(resp.Body, "injected") {
		t.Fatalf("the answer leaks the internal error: %s", resp.Body)
	}
	ms, _, err := e.h.Store.List(context.Background(), store.ListQuery{})
	if err != nil || len(ms) != 1 {
		t.Fatalf("records %v %v", ms, err)
	}
	m := ms[0]
	if m.Status != mec.Failed || m.FailedStep != mec.StepStart || m.FailureCause == "" || m.ExecutionArn != "" || e.executions(t, e.provArn) != 0 {
		t.Fatalf("after a failed start: %+v", m)
	}
	e.sfn.fail.Store(false)
	resp = e.do(t, post(`{"name":"edge-nostart"}`, "Idempotency-Key", key))
	got := mecOf(t, resp)
	if resp.StatusCode != http.StatusAccepted || got.ID != m.ID || got.Status != mec.Creating || got.ExecutionArn == "" || got.FailedStep != "" {
		t.Fatalf("retry: %d %s", resp.StatusCode, resp.Body)
	}
	// Teardown start failures are 503s too.
	e.sfn.fail.Store(true)
	if resp := e.do(t, del("/mecs/"+m.ID)); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("delete with Step Functions down: %d %s", resp.StatusCode, resp.Body)
	}
}

func TestKubeconfig(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	resp := e.do(t, post(`{"name":"edge-kube","region":"eu-west-1"}`))
	m := mecOf(t, resp)
	// Not READY: 409 naming the status.
	resp = e.do(t, get("/mecs/"+m.ID+"/kubeconfig"))
	if er := errOf(t, resp); resp.StatusCode != http.StatusConflict || er.Code != CodeNotReady || !strings.Contains(er.Message, "CREATING") {
		t.Fatalf("kubeconfig while CREATING: %d %s", resp.StatusCode, resp.Body)
	}
	secret := "client-key-data: " + strings.Repeat("c2VjcmV0", 40)
	kubeconfig := "apiVersion: v1\nkind: Config\nclusters:\n- name: microk8s-cluster\n  cluster:\n    server: https://10.0.1.10:16443\nusers:\n- name: admin\n  user:\n    " + secret + "\n"
	param := mec.KubeconfigParam(m.ID)
	if _, err := e.ssm.Client.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(param), Value: aws.String(kubeconfig),
		Type: ssmtypes.ParameterTypeSecureString, Tier: ssmtypes.ParameterTierAdvanced}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.h.Store.Update(ctx, m.ID, func(r *mec.MEC) error {
		r.Status, r.KubeconfigParameter, r.Endpoint = mec.Ready, param, "https://10.0.1.10:16443"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	resp = e.do(t, get("/mecs/"+m.ID+"/kubeconfig"))
	if resp.StatusCode != http.StatusOK || header(resp, "Content-Type") != "application/yaml" || resp.Body != kubeconfig {
		t.Fatalf("kubeconfig: %d %v %q", resp.StatusCode, resp.Headers, resp.Body)
	}
	if header(resp, "Cache-Control") != "no-store" {
		t.Fatalf("kubeconfig answer may be cached: %v", resp.Headers)
	}
	if got := e.ssm.regions[len(e.ssm.regions)-1]; got != "eu-west-1" {
		t.Fatalf("parameter read in %s, want the MEC's region eu-west-1", got)
	}
	// The secret appears in that answer only: not in the record, not in the logs.
	resp = e.do(t, get("/mecs/"+m.ID))
	if strings.Contains(resp.Body, "c2VjcmV0") || strings.Contains(e.logs.String(), "c2VjcmV0") {
		t.Fatal("the kubeconfig leaked into a record answer or the logs")
	}
	// Deleting: 409 again.
	if _, err := e.h.Store.Update(ctx, m.ID, func(r *mec.MEC) error { r.Status = mec.Deleting; return nil }); err != nil {
		t.Fatal(err)
	}
	resp = e.do(t, get("/mecs/"+m.ID+"/kubeconfig"))
	if er := errOf(t, resp); resp.StatusCode != http.StatusConflict || !strings.Contains(er.Message, "DELETING") {
		t.Fatalf("kubeconfig while DELETING: %d %s", resp.StatusCode, resp.Body)
	}
}

// Requests that exercise the rest of the declared answers, for the
// document check.
func TestMoreAnswers(t *testing.T) {
	e := newEnv(t)
	resp := e.do(t, req{method: "POST", path: "/mecs", body: `{"name":"edge-b64"}`, b64: true, style: styleResource})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("base64 body: %d %s", resp.StatusCode, resp.Body)
	}
	m := mecOf(t, resp)
	for _, q := range []string{"status=CREATING", "region=us-east-1", "status=READY&region=eu-west-1", "status=&region=&limit=&nextToken="} {
		resp := e.do(t, req{method: "GET", path: "/mecs", query: q})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("list %s: %d %s", q, resp.StatusCode, resp.Body)
		}
		if want := !strings.Contains(q, "READY"); strings.Contains(resp.Body, m.ID) != want {
			t.Fatalf("list %s: %s", q, resp.Body)
		}
	}
	if resp := e.do(t, req{method: "GET", path: "/mecs", query: "limit=1"}); !strings.Contains(resp.Body, `"items":[`) {
		t.Fatalf("list: %s", resp.Body)
	}
}
