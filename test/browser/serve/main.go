// Command serve runs the dashboard on the local runtime for `make
// dashboard`: kumo in-process, the node simulator, the real Lambdas, a few
// MECs in different states (READY in two regions, FAILED by an injected
// fault, one kept CREATING by a node that never comes online), and the
// dashboard on 127.0.0.1. Ctrl-C stops all of it.
//
//	go run ./test/browser/serve [-port 8080] [-scale 0.05]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/mecd/mecd/test/browser"
	"github.com/mecd/mecd/test/localrt"
)

func main() { localrt.RunCommand("dashboard", run) }

func run(ctx context.Context) error {
	port := flag.Int("port", 8080, "dashboard port on 127.0.0.1 (0: any free port)")
	scale := flag.Float64("scale", 0.05, "latency time scale: 0.05 makes a provisioning take ~10 s, so its steps can be watched")
	seed := flag.Bool("seed", true, "create MECs in different states")
	flag.Parse()
	// kumo's in-process services log through the default logger.
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// Fail early rather than after the runtime's build when the port is taken.
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(*port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("port %d: %w (pick another: make dashboard DASHBOARD_PORT=8081)", *port, err)
	}
	_ = ln.Close()

	fmt.Println("Starting the local runtime (kumo, node simulator, Lambdas)…")
	t0 := time.Now()
	// Waiting is for test binaries; a person is better told at once.
	rt, err := localrt.Start(ctx, localrt.Options{Scale: *scale, Logger: slog.New(slog.DiscardHandler), LockWait: 3 * time.Second})
	if err != nil {
		return fmt.Errorf("%w (is a test run or make demo using 127.0.0.1:4566? try again when it is done)", err)
	}
	defer func() {
		rt.Close()
		fmt.Println("Local runtime stopped; nothing left running.")
	}()
	fmt.Printf("Local runtime up in %v; API %s\n", time.Since(t0).Round(time.Millisecond), rt.APIEndpoint())
	c, err := browser.Client(rt)
	if err != nil {
		return err
	}
	url, stopServer, err := browser.Serve(c, addr, log)
	if err != nil {
		return err
	}
	defer stopServer()
	if *seed {
		fmt.Println("Seeding MECs: two READY, one FAILED (injected snap install error), one kept CREATING…")
		s, err := browser.Seed(ctx, rt, c, "demo")
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		if s != nil {
			go browser.KeepCreating(ctx, rt, c, "demo", log)
		}
	}
	fmt.Printf("\nDashboard: %s\n", url)
	fmt.Printf("mecctl works on it too: mecctl list --endpoint %s\n", rt.APIEndpoint())
	fmt.Println("  (with any AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY set: the local API checks no signature)")
	fmt.Println("Ctrl-C stops everything.")
	<-ctx.Done()
	fmt.Println("\nStopping…")
	return nil
}
