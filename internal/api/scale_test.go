package api

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/spec"
)

func patch(id, body string) req { return req{method: "PATCH", path: "/mecs/" + id, body: body} }

// readyMEC creates a MEC through the API and makes it a READY HA cluster of
// n nodes (control plane 0-2, workers after).
func readyMEC(t *testing.T, e *env, name string, n int) *mec.MEC {
	t.Helper()
	m := mecOf(t, e.do(t, post(`{"name":"`+name+`","nodeCount":`+string(rune('0'+n))+`}`)))
	if _, err := e.h.Store.Update(context.Background(), m.ID, func(r *mec.MEC) error {
		r.Status, r.Nodes = mec.Ready, nil
		for i := 0; i < n; i++ {
			role := spec.RoleWorker
			if i < r.Spec.ControlPlaneCount() {
				role = spec.RoleControlPlane
			}
			r.Nodes = append(r.Nodes, mec.Node{Index: i, InstanceID: "i-0" + string(rune('a'+i)), Role: string(role), Joined: i > 0})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestScale(t *testing.T) {
	e := newEnv(t)
	m := readyMEC(t, e, "edge-scale", 3)
	steps := []struct {
		name   string
		body   string
		status int
		code   string
		field  string // a field the refusal names
		starts int    // scale executions after the request
		want   mec.Status
	}{
		{"the same count starts nothing", `{"nodeCount":3}`, http.StatusOK, "", "", 0, mec.Ready},
		{"3 to 2 without haControlPlane false is refused", `{"nodeCount":2}`, http.StatusBadRequest, CodeValidation, "nodeCount", 0, mec.Ready},
		{"haControlPlane true with 2 nodes is refused", `{"nodeCount":2,"haControlPlane":true}`, http.StatusBadRequest, CodeValidation, "haControlPlane", 0, mec.Ready},
		{"another field is refused", `{"nodeCount":5,"addons":["dns"]}`, http.StatusBadRequest, CodeValidation, "addons", 0, mec.Ready},
		{"3 to 5 starts a scale", `{"nodeCount":5}`, http.StatusAccepted, "", "", 1, mec.Scaling},
		{"the same request again answers with it", `{"nodeCount":5}`, http.StatusAccepted, "", "", 1, mec.Scaling},
		{"another count while scaling is a conflict", `{"nodeCount":4}`, http.StatusConflict, CodeBusy, "", 1, mec.Scaling},
	}
	for _, st := range steps {
		resp := e.do(t, patch(m.ID, st.body))
		if resp.StatusCode != st.status {
			t.Fatalf("%s: %d %s", st.name, resp.StatusCode, resp.Body)
		}
		if st.code != "" {
			er := errOf(t, resp)
			if er.Code != st.code || (st.field != "" && er.Fields[st.field] == "") {
				t.Fatalf("%s: %s", st.name, resp.Body)
			}
		}
		if n := e.executions(t, e.scaleArn); n != st.starts {
			t.Fatalf("%s: %d scale executions, want %d", st.name, n, st.starts)
		}
		got, err := e.h.Store.Get(context.Background(), m.ID)
		if err != nil || got.Status != st.want {
			t.Fatalf("%s: status %v %v", st.name, got.Status, err)
		}
	}
	got, _ := e.h.Store.Get(context.Background(), m.ID)
	op := got.Operation()
	if len(got.Operations) != 1 || op.From != 3 || op.To != 5 || len(op.Add) != 2 || op.Add[0] != spec.RoleWorker ||
		!strings.HasSuffix(op.ExecutionArn, ":"+mec.ScaleExecution(m.ID, 1)) || op.Outcome != mec.OutcomeRunning {
		t.Fatalf("operation %+v", op)
	}
	// While it scales, the kubeconfig stays readable: the endpoint and the
	// credentials do not change.
	if _, err := e.ssm.Client.PutParameter(context.Background(), &ssm.PutParameterInput{Name: aws.String(mec.KubeconfigParam(m.ID)),
		Value: aws.String("apiVersion: v1\n"), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
		t.Fatal(err)
	}
	if resp := e.do(t, get("/mecs/"+m.ID+"/kubeconfig")); resp.StatusCode != http.StatusOK {
		t.Fatalf("kubeconfig while SCALING: %d %s", resp.StatusCode, resp.Body)
	}
	// DELETE wins: the teardown starts while the scale runs.
	if resp := e.do(t, del("/mecs/"+m.ID)); resp.StatusCode != http.StatusAccepted || mecOf(t, resp).Status != mec.Deleting {
		t.Fatalf("delete while scaling: %d %s", resp.StatusCode, resp.Body)
	}
	if resp := e.do(t, patch(m.ID, `{"nodeCount":3}`)); resp.StatusCode != http.StatusConflict || errOf(t, resp).Code != CodeBusy {
		t.Fatalf("scale while deleting: %d %s", resp.StatusCode, resp.Body)
	}
}

func TestScaleStartFailureLeavesTheMECReady(t *testing.T) {
	e := newEnv(t)
	m := readyMEC(t, e, "edge-scale-down", 3)
	e.sfn.fail.Store(true)
	if resp := e.do(t, patch(m.ID, `{"nodeCount":4}`)); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("scale with Step Functions down: %d %s", resp.StatusCode, resp.Body)
	}
	got, _ := e.h.Store.Get(context.Background(), m.ID)
	if got.Status != mec.Ready || got.Operation().Outcome != mec.OutcomeFailed {
		t.Fatalf("after a failed start: %s %+v", got.Status, got.Operation())
	}
	e.sfn.fail.Store(false)
	if resp := e.do(t, patch(m.ID, `{"nodeCount":4}`)); resp.StatusCode != http.StatusAccepted || mecOf(t, resp).Operation().Number != 2 {
		t.Fatalf("retry: %d %s", resp.StatusCode, resp.Body)
	}
}
