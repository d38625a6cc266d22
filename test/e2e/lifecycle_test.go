package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/store"
	"github.com/mecd/mecd/test/localrt"
	"github.com/mecd/mecd/test/nodesim/fault"
)

// call sends a request to the API through kumo's API Gateway over HTTP.
func call(t *testing.T, rt *localrt.Runtime, method, path, body string, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, b, err := rt.APICall(ctx, method, path, body, hdr)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func decodeMEC(t *testing.T, b []byte) *mec.MEC {
	t.Helper()
	var m mec.MEC
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a record: %s", b)
	}
	return &m
}

// waitStatus polls GET /mecs/{id} until the MEC reaches want (bounded).
func waitStatus(t *testing.T, rt *localrt.Runtime, id string, want mec.Status, within time.Duration) *mec.MEC {
	t.Helper()
	deadline := time.Now().Add(within)
	var last *mec.MEC
	for time.Now().Before(deadline) {
		code, _, b := call(t, rt, "GET", "/mecs/"+id, "", nil)
		if code != http.StatusOK {
			t.Fatalf("GET /mecs/%s: %d %s", id, code, b)
		}
		last = decodeMEC(t, b)
		if last.Status == want {
			return last
		}
		if want == mec.Ready && last.Status == mec.Failed {
			t.Fatalf("MEC %s FAILED at %s: %s", id, last.FailedStep, last.FailureCause)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("MEC %s is %s after %v, want %s (steps %v)", id, last.Status, within, want, stepNames(last))
	return nil
}

func create(t *testing.T, rt *localrt.Runtime, body string, hdr map[string]string) (int, http.Header, *mec.MEC, []byte) {
	t.Helper()
	code, h, b := call(t, rt, "POST", "/mecs", body, hdr)
	if code != http.StatusAccepted {
		return code, h, nil, b
	}
	return code, h, decodeMEC(t, b), b
}

// deleteClean DELETEs a MEC, waits for DELETED and audits what is left.
func deleteClean(t *testing.T, rt *localrt.Runtime, id string) {
	t.Helper()
	if code, _, b := call(t, rt, "DELETE", "/mecs/"+id, "", nil); code != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", code, b)
	}
	waitStatus(t, rt, id, mec.Deleted, 90*time.Second)
	leakFree(t, rt, id)
}

// accepted POSTs a spec and fails the test unless the API accepted it.
func accepted(t *testing.T, rt *localrt.Runtime, body string) *mec.MEC {
	t.Helper()
	code, _, m, b := create(t, rt, body, nil)
	if code != http.StatusAccepted {
		t.Fatalf("POST: %d %s", code, b)
	}
	return m
}

func TestLifecycleThroughTheAPI(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	name := localrt.UniqueName("api")
	code, h, m, b := create(t, rt, fmt.Sprintf(`{"name":%q,"ttl":"2h"}`, name), nil)
	if code != http.StatusAccepted || m.Status != mec.Creating {
		t.Fatalf("POST /mecs: %d %s", code, b)
	}
	if h.Get("Location") != "/mecs/"+m.ID {
		t.Fatalf("Location %q", h.Get("Location"))
	}
	ready := waitStatus(t, rt, m.ID, mec.Ready, 90*time.Second)
	// The SigV4 signer API Gateway reported is the MEC's owner.
	if m.Owner != localrt.LocalCaller || ready.Owner != localrt.LocalCaller {
		t.Errorf("owner %q (POST) and %q (GET), want the caller %s", m.Owner, ready.Owner, localrt.LocalCaller)
	}
	for _, st := range []string{mec.StepResolve, mec.StepSecurityGroup, mec.StepLaunch, mec.StepNodesOnline,
		mec.StepInstall, mec.StepJoin, mec.StepAddons, mec.StepVerify, mec.StepKubeconfig, mec.StepReady} {
		if s := ready.Step(st); s == nil || s.Outcome != mec.OutcomeSucceeded || s.EndedAt == nil {
			t.Errorf("GET shows no completed step %s: %v", st, stepNames(ready))
		}
	}

	code, h, b = call(t, rt, "GET", "/mecs/"+m.ID+"/kubeconfig", "", nil)
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "application/yaml") {
		t.Fatalf("kubeconfig: %d %s", code, h.Get("Content-Type"))
	}
	if servers, err := kubeconfigServers(b); err != nil || len(servers) != 1 || servers[0] != ready.Endpoint {
		t.Fatalf("kubeconfig is not YAML pointing at %s: %v %v", ready.Endpoint, servers, err)
	}

	code, _, b = call(t, rt, "GET", "/mecs?status=READY&limit=100", "", nil)
	if code != http.StatusOK || !bytes.Contains(b, []byte(m.ID)) {
		t.Fatalf("list READY: %d, does not contain %s", code, m.ID)
	}

	code, _, b = call(t, rt, "DELETE", "/mecs/"+m.ID, "", nil)
	if code != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", code, b)
	}
	gone := waitStatus(t, rt, m.ID, mec.Deleted, 60*time.Second)
	if gone.DeletedAt == nil {
		t.Error("DELETED record has no deletedAt")
	}
	leakFree(t, rt, m.ID)
	code, _, _ = call(t, rt, "GET", "/mecs/"+m.ID+"/kubeconfig", "", nil)
	if code != http.StatusConflict {
		t.Errorf("kubeconfig of a DELETED MEC: %d, want 409", code)
	}
}

func TestIdempotencyAndNames(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	name := localrt.UniqueName("idem")
	body := fmt.Sprintf(`{"name":%q,"nodeCount":1}`, name)
	key := map[string]string{"Idempotency-Key": "key-" + name}

	ids := make([]string, 10)
	codes := make([]int, 10)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			code, _, m, _ := create(t, rt, body, key)
			codes[i] = code
			if m != nil {
				ids[i] = m.ID
			}
		}(i)
	}
	wg.Wait()
	for i := range ids {
		if codes[i] != http.StatusAccepted || ids[i] != ids[0] {
			t.Fatalf("request %d: %d id %q, want 202 and %q", i, codes[i], ids[i], ids[0])
		}
	}
	id := ids[0]
	if code, _, _, b := create(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":2}`, name), key); code != http.StatusUnprocessableEntity {
		t.Fatalf("same key, other body: %d %s, want 422", code, b)
	}
	if code, _, _, b := create(t, rt, body, map[string]string{"Idempotency-Key": "other-" + name}); code != http.StatusConflict {
		t.Fatalf("same name while live: %d %s, want 409", code, b)
	}
	// One provisioning ran for the ten requests.
	execs, err := rt.Clients("").SFN.ListExecutions(context.Background(), &sfn.ListExecutionsInput{StateMachineArn: aws.String(rt.Deployed.StateMachineArns["provision"])})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range execs.Executions {
		if aws.ToString(e.Name) == id {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d provision executions named %s, want 1", n, id)
	}
	waitStatus(t, rt, id, mec.Ready, 90*time.Second)
	if code, _, b := call(t, rt, "DELETE", "/mecs/"+id, "", nil); code != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", code, b)
	}
	waitStatus(t, rt, id, mec.Deleted, 60*time.Second)
	code, _, again, b := create(t, rt, body, map[string]string{"Idempotency-Key": "third-" + name})
	if code != http.StatusAccepted || again.ID == id {
		t.Fatalf("the name is not free again once DELETED: %d %s", code, b)
	}
	waitStatus(t, rt, again.ID, mec.Ready, 90*time.Second)
	deleteClean(t, rt, again.ID)
}

func TestDeleteWhileCreating(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	name := localrt.UniqueName("early")
	m := accepted(t, rt, fmt.Sprintf(`{"name":%q}`, name))
	// Wait until the nodes exist, then delete twice.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, _, b := call(t, rt, "GET", "/mecs/"+m.ID, "", nil)
		cur := decodeMEC(t, b)
		if len(cur.Nodes) > 0 && cur.Status == mec.Creating {
			break
		}
		if cur.Status != mec.Creating || time.Now().After(deadline) {
			t.Fatalf("MEC %s is %s with %d nodes before the delete", m.ID, cur.Status, len(cur.Nodes))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; i < 2; i++ {
		if code, _, b := call(t, rt, "DELETE", "/mecs/"+m.ID, "", nil); code != http.StatusAccepted {
			t.Fatalf("DELETE %d: %d %s", i, code, b)
		}
	}
	gone := waitStatus(t, rt, m.ID, mec.Deleted, 60*time.Second)
	if gone.Status != mec.Deleted {
		t.Fatal(gone.Status)
	}
	leakFree(t, rt, m.ID)
	c := rt.Clients("").SFN
	prov, err := c.DescribeExecution(context.Background(), &sfn.DescribeExecutionInput{ExecutionArn: aws.String(gone.ExecutionArn)})
	if err != nil {
		t.Fatal(err)
	}
	if prov.Status == sfntypes.ExecutionStatusRunning || prov.Status == sfntypes.ExecutionStatusSucceeded {
		t.Fatalf("provisioning is %s after the delete", prov.Status)
	}
	execs, err := c.ListExecutions(context.Background(), &sfn.ListExecutionsInput{StateMachineArn: aws.String(rt.Deployed.StateMachineArns["teardown"])})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range execs.Executions {
		if strings.Contains(aws.ToString(e.Name), m.ID) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d teardown executions for %s, want 1", n, m.ID)
	}
}

func TestTeardownIsIdempotent(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	name := localrt.UniqueName("thrice")
	r := provision(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":1}`, name))
	if r.out.Status != "SUCCEEDED" {
		m := findByName(t, rt, name)
		t.Fatalf("provision %s at step %s: %s", r.out.Status, m.FailedStep, m.FailureCause)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		arn, err := rt.StartExecution(ctx, rt.Deployed.StateMachineArns["teardown"], fmt.Sprintf("again-%d-%s", i, r.summary.ClusterID),
			fmt.Sprintf(`{"clusterId":%q}`, r.summary.ClusterID))
		if err != nil {
			t.Fatal(err)
		}
		out, err := rt.WaitExecution(ctx, arn, 60*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if out.Status != sfntypes.ExecutionStatusSucceeded {
			t.Fatalf("teardown run %d: %s %s %s", i, out.Status, aws.ToString(out.Error), aws.ToString(out.Cause))
		}
		m := findByName(t, rt, name)
		if m.Status != mec.Deleted {
			t.Fatalf("after teardown run %d the MEC is %s", i, m.Status)
		}
	}
	leakFree(t, rt, r.summary.ClusterID)
}

func TestSweeperTearsDownExactlyTheExpired(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	ctx := context.Background()
	st := &store.Store{DB: rt.Clients("").DynamoDB, Table: localrt.TableName}
	past := time.Now().Add(-time.Minute).UTC()

	mk := func(prefix, extra string, fail bool) *mec.MEC {
		name := localrt.UniqueName(prefix)
		if fail {
			rt.Sim.Faults.FailCommand(fault.Command{Host: fault.Host{TagKey: mec.TagName, TagValue: name, Index: 0},
				Prefix: "snap install", ExitCode: 1, Stderr: "injected"})
		}
		r := provision(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":1%s}`, name, extra))
		want := "SUCCEEDED"
		if fail {
			want = "FAILED"
		}
		m := findByName(t, rt, name)
		if string(r.out.Status) != want {
			t.Fatalf("%s: %s at step %s: %s", name, r.out.Status, m.FailedStep, m.FailureCause)
		}
		return m
	}
	expiredReady := mk("exp-ready", `,"ttl":"10m"`, false)
	expiredFailed := mk("exp-failed", `,"ttl":"10m"`, true)
	notYet := mk("not-yet", `,"ttl":"10m"`, false)
	never := mk("no-ttl", ``, false)
	for _, m := range []*mec.MEC{expiredReady, expiredFailed} {
		if _, err := st.Update(ctx, m.ID, func(r *mec.MEC) error { r.ExpiresAt = &past; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	sweepNow(t, rt)
	for _, m := range []*mec.MEC{expiredReady, expiredFailed} {
		waitStatus(t, rt, m.ID, mec.Deleted, 60*time.Second)
		leakFree(t, rt, m.ID)
	}
	for _, m := range []*mec.MEC{notYet, never} {
		got, err := st.Get(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != mec.Ready || got.TeardownExecutionArn != "" {
			t.Errorf("%s (%s) was touched: %s %s", m.Name, m.ID, got.Status, got.TeardownExecutionArn)
		}
	}
	// A second sweep finds nothing new to start.
	rep := sweepNow(t, rt)
	for _, id := range rep.Started {
		if id == notYet.ID || id == never.ID {
			t.Errorf("second sweep started %s", id)
		}
	}
}
