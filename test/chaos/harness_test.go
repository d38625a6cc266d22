package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/mecd/mecd/internal/backend"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/steps"
	"github.com/mecd/mecd/internal/sweep"
	"github.com/mecd/mecd/test/localrt"
)

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

func ended(m *mec.MEC) bool   { return m.Status == mec.Ready || m.Status == mec.Failed }
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
