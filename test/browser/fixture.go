// Package browser runs the dashboard on the local runtime for people
// (`make dashboard`, through ./serve) and for a real browser
// (dashboard.test.mjs, driven by the Go test in this package): a signing
// client for the runtime's API, the dashboard server, and MECs seeded in
// different states.
package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/mecd/mecd/internal/client"
	"github.com/mecd/mecd/internal/dashboard"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/test/localrt"
	"github.com/mecd/mecd/test/nodesim/fault"
)

// Client is an API client for the runtime's API, signing with the
// runtime's credentials as mecctl does with a user's.
func Client(rt *localrt.Runtime) (*client.Client, error) {
	u, err := client.ParseEndpoint(rt.APIEndpoint())
	if err != nil {
		return nil, err
	}
	return &client.Client{
		Endpoint:    u,
		Region:      rt.Region,
		Credentials: credentials.NewStaticCredentialsProvider(localrt.AccessKey, localrt.SecretKey, ""),
		HTTP:        client.NewHTTPClient(),
		UserAgent:   "mecd-dashboard-local",
		Retries:     2,
	}, nil
}

// Serve runs the dashboard on addr (a 127.0.0.1 address; port 0 picks
// one) until stop is called, and returns its URL.
func Serve(c *client.Client, addr string, log *slog.Logger) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("dashboard: %w", err)
	}
	srv := &http.Server{Handler: dashboard.New(c, log).Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	return "http://" + ln.Addr().String() + "/", stop, nil
}

// Seeded names the MECs Seed made.
type Seeded struct {
	Ready  []string // READY, in two regions
	Failed string   // FAILED at install: snap install fails on node 0
	Slow   string   // CREATING: a node's SSM agent never comes online
}

// Seed creates MECs in different states through the API, with faults
// injected for the FAILED and the slow one, and returns once the READY
// and FAILED ones got there. The slow one stays CREATING until the
// runtime's node-online timeout (15 min scaled) fails it; KeepCreating
// replaces it then.
func Seed(ctx context.Context, rt *localrt.Runtime, c *client.Client, prefix string) (*Seeded, error) {
	s := &Seeded{
		Ready:  []string{prefix + "-factory", prefix + "-store-eu"},
		Failed: prefix + "-broken",
		Slow:   prefix + "-slow-1",
	}
	rt.Sim.Faults.FailCommand(fault.Command{Host: fault.Host{TagKey: mec.TagName, TagValue: s.Failed, Index: 0},
		Prefix: "snap install", ExitCode: 1, Stderr: "error: cannot install \"microk8s\": Get https://api.snapcraft.io/v2/snaps/refresh: dial tcp: i/o timeout (injected)"})
	create := func(name, spec string) (string, error) {
		m, err := c.Create(ctx, fmt.Appendf(nil, spec, name), "seed-"+name)
		if err != nil {
			return "", fmt.Errorf("seed %s: %w", name, err)
		}
		return m.ID, nil
	}
	// The multi-node MEC first, alone: the node simulator finds a join's
	// leader by private IP across regions, and every region's default VPC
	// hands out the same first addresses, so it must join before another
	// region has a node at its leader's address.
	id, err := create(s.Ready[0], `{"name":%q,"nodeCount":3,"addons":["dns","hostpath-storage"],"ttl":"8h","tags":{"site":"factory"}}`)
	if err != nil {
		return nil, err
	}
	if _, err := WaitStatus(ctx, c, id, mec.Ready); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	want := map[string]mec.Status{}
	if id, err = create(s.Ready[1], `{"name":%q,"region":"eu-central-1","nodeCount":1,"addons":["dns","ingress"]}`); err != nil {
		return nil, err
	}
	want[id] = mec.Ready
	if id, err = create(s.Failed, `{"name":%q,"region":"us-west-2","nodeCount":1,"ttl":"2h"}`); err != nil {
		return nil, err
	}
	want[id] = mec.Failed
	if _, err := createSlow(ctx, rt, c, s.Slow); err != nil {
		return nil, err
	}
	for id, st := range want {
		if _, err := WaitStatus(ctx, c, id, st); err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
	}
	return s, nil
}

func createSlow(ctx context.Context, rt *localrt.Runtime, c *client.Client, name string) (*mec.MEC, error) {
	// In us-east-1, where addresses are unique: in another region each
	// replacement would take the next address of a range us-east-1's MECs
	// use too (see Seed).
	rt.Sim.Faults.NeverOnline(fault.Host{TagKey: mec.TagName, TagValue: name, Index: 2})
	m, err := c.Create(ctx, fmt.Appendf(nil, `{"name":%q,"nodeCount":3,"ttl":"24h"}`, name), "seed-"+name)
	if err != nil {
		return nil, fmt.Errorf("seed %s: %w", name, err)
	}
	return m, nil
}

// KeepCreating keeps one MEC CREATING until ctx ends: when the slow one
// fails (its node never came online), it is deleted and another started.
func KeepCreating(ctx context.Context, rt *localrt.Runtime, c *client.Client, prefix string, log *slog.Logger) {
	name := prefix + "-slow-1"
	for n := 2; ; n++ {
		m, err := c.Resolve(ctx, name)
		for err == nil && m.Status == mec.Creating {
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
			m, err = c.Get(ctx, m.ID)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Warn("keep a MEC creating", "name", name, "error", err)
		} else {
			rt.Sim.Faults.ClearHosts(mec.TagName, name)
			if _, err := c.Delete(ctx, m.ID); err != nil {
				log.Warn("delete the slow MEC", "name", name, "error", err)
			}
		}
		name = fmt.Sprintf("%s-slow-%d", prefix, n)
		if _, err := createSlow(ctx, rt, c, name); err != nil {
			log.Warn("keep a MEC creating", "name", name, "error", err)
			return
		}
	}
}

// WaitStatus polls a MEC until it has status want (FAILED ends a wait for
// READY early, as an error).
func WaitStatus(ctx context.Context, c *client.Client, id string, want mec.Status) (*mec.MEC, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		m, err := c.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if m.Status == want {
			return m, nil
		}
		if want == mec.Ready && m.Status == mec.Failed {
			b, _ := json.Marshal(m.Steps)
			return m, fmt.Errorf("%s (%s) FAILED at %s: %s; steps %s", m.Name, id, m.FailedStep, m.FailureCause, b)
		}
		select {
		case <-ctx.Done():
			return m, errors.Join(fmt.Errorf("%s (%s) is %s, not %s", m.Name, id, m.Status, want), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
