// Command mecd-local runs mecd on the local runtime: kumo as a process, the
// front on 127.0.0.1:4566, the node simulator and the real Lambda binaries.
//
//	mecd-local demo [-kumo bin/kumo] [-scale 0.02] [-nodes 3]
//
// The demo drives the product as a user would, through the API on kumo's API
// Gateway over HTTP: create a MEC, follow its steps to READY, list, fetch the
// kubeconfig, delete it and follow it to DELETED; then it stops every process
// it started.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/test/localrt"
)

func main() { localrt.RunCommand("mecd-local", run) }

func run(ctx context.Context) error {
	if len(os.Args) < 2 || os.Args[1] != "demo" {
		return errors.New("usage: mecd-local demo [-kumo PATH] [-scale 0.02] [-nodes 3] [-name NAME]")
	}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	kumoBin := fs.String("kumo", "bin/kumo", "kumo binary (make builds it from the pinned module)")
	scale := fs.Float64("scale", 0.02, "latency time scale: 0.02 turns AWS's ~3.5 minutes into ~4 seconds")
	nodes := fs.Int("nodes", 3, "nodes in the demo MEC")
	name := fs.String("name", "edge-demo", "the demo MEC's name")
	if err := fs.Parse(os.Args[2:]); err != nil {
		return err
	}

	kumo, err := localrt.StartKumoProcess(ctx, *kumoBin)
	if err != nil {
		return err
	}
	defer kumo.Stop()
	kumoURL := kumo.URL
	fmt.Printf("mecd demo: kumo %s started (pid %d)\n", kumoURL, kumo.PID)

	t0 := time.Now()
	rt, err := localrt.Start(ctx, localrt.Options{
		KumoURL: kumoURL, Scale: *scale, Processes: 3,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	defer func() {
		rt.Close()
		fmt.Println("mecd demo: local runtime stopped; nothing left running")
	}()
	fmt.Printf("mecd demo: local runtime up in %v (front %s, %d functions)\n", time.Since(t0).Round(time.Millisecond), rt.Endpoint, len(rt.Deployed.FunctionNames))

	api := &apiClient{rt: rt}
	spec := fmt.Sprintf(`{"name":%q,"nodeCount":%d,"addons":["dns","hostpath-storage"],"ttl":"8h"}`, *name, *nodes)
	fmt.Printf("\n1. POST %s/mecs %s\n", rt.APIURL(), spec)
	start := time.Now()
	var m mec.MEC
	code, hdr, err := api.do(ctx, "POST", "/mecs", spec, map[string]string{"Idempotency-Key": "demo-" + *name}, &m)
	if err != nil {
		return err
	}
	if code != http.StatusAccepted {
		return fmt.Errorf("POST /mecs answered %d", code)
	}
	fmt.Printf("   %d Accepted, Location: %s, status %s\n", code, hdr.Get("Location"), m.Status)

	fmt.Printf("\n2. GET /mecs/%s until READY, one line per completed step\n", m.ID)
	ready, err := api.follow(ctx, m.ID, mec.Ready, start)
	if err != nil {
		return err
	}
	if ready.Status != mec.Ready {
		return fmt.Errorf("MEC %s ended %s at step %s: %s", ready.ID, ready.Status, ready.FailedStep, ready.FailureCause)
	}
	fmt.Printf("   READY in %v: endpoint %s, nodes:\n", time.Since(start).Round(time.Millisecond), ready.Endpoint)
	for _, n := range ready.Nodes {
		fmt.Printf("     node %d %s %-13s %s\n", n.Index, n.InstanceID, n.Role, n.PrivateIP)
	}

	fmt.Printf("\n3. GET /mecs\n")
	var list struct {
		Items []mec.MEC `json:"items"`
	}
	if _, _, err := api.do(ctx, "GET", "/mecs?limit=10", "", nil, &list); err != nil {
		return err
	}
	for _, it := range list.Items {
		fmt.Printf("   %s  %-12s %-9s %-10s %d nodes  expires %s\n", it.ID, it.Name, it.Status, it.Region, len(it.Nodes), fmtTime(it.ExpiresAt))
	}

	fmt.Printf("\n4. GET /mecs/%s/kubeconfig\n", m.ID)
	kc, err := api.raw(ctx, "GET", "/mecs/"+m.ID+"/kubeconfig")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(kc, "\n") {
		if strings.Contains(line, "server:") || strings.Contains(line, "current-context") {
			fmt.Printf("   %s\n", strings.TrimSpace(line))
		}
	}
	fmt.Printf("   (%d bytes of YAML; certificates not shown)\n", len(kc))

	fmt.Printf("\n5. DELETE /mecs/%s, then GET until DELETED\n", m.ID)
	delStart := time.Now()
	code, _, err = api.do(ctx, "DELETE", "/mecs/"+m.ID, "", nil, nil)
	if err != nil {
		return err
	}
	fmt.Printf("   %d Accepted\n", code)
	gone, err := api.follow(ctx, m.ID, mec.Deleted, delStart)
	if err != nil {
		return err
	}
	leaks, err := rt.LeakAudit(ctx, m.ID)
	if err != nil {
		return err
	}
	fmt.Printf("   %s in %v; resources left in AWS: %d\n", gone.Status, time.Since(delStart).Round(time.Millisecond), len(leaks))
	if len(leaks) > 0 {
		return fmt.Errorf("leaked: %v", leaks)
	}
	fmt.Println("\nNext: `make dashboard` opens the dashboard on this local runtime with a few MECs; `mecctl --help` drives the same API from a shell.")
	return nil
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Format(time.RFC3339)
}

// apiClient calls the API through kumo's API Gateway over HTTP.
type apiClient struct{ rt *localrt.Runtime }

func (a *apiClient) do(ctx context.Context, method, path, body string, hdr map[string]string, out any) (int, http.Header, error) {
	resp, b, err := a.rt.APICall(ctx, method, path, body, hdr)
	if err != nil {
		return 0, nil, err
	}
	if resp.StatusCode >= 400 {
		return resp.StatusCode, resp.Header, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, resp.Header, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, resp.Header, nil
}

func (a *apiClient) raw(ctx context.Context, method, path string) (string, error) {
	resp, b, err := a.rt.APIRequest(ctx, method, path, nil, nil)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return string(b), nil
}

// follow prints each step as the record shows it completed, until the MEC
// reaches want (or FAILED).
func (a *apiClient) follow(ctx context.Context, id string, want mec.Status, start time.Time) (*mec.MEC, error) {
	printed := map[string]bool{}
	for i := 0; i < 6000; i++ {
		var m mec.MEC
		if _, _, err := a.do(ctx, "GET", "/mecs/"+id, "", nil, &m); err != nil {
			return nil, err
		}
		for _, st := range m.Steps {
			key := fmt.Sprintf("%s#%d#%s", st.Name, st.Attempt, st.Outcome)
			if st.Outcome == mec.OutcomeRunning || printed[key] || (st.EndedAt != nil && st.EndedAt.Before(start)) {
				continue
			}
			printed[key] = true
			fmt.Printf("   [%6.2fs] %-14s %-9s %6.2fs  %s\n", time.Since(start).Seconds(), st.Name, st.Outcome, st.Seconds, short(st.Detail))
		}
		if m.Status == want || m.Status == mec.Failed {
			return &m, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return nil, fmt.Errorf("MEC %s not %s after 150s", id, want)
}

func short(s string) string {
	if len(s) > 70 {
		return s[:67] + "..."
	}
	return s
}
