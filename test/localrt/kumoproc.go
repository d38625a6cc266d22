package localrt

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// KumoProcess is kumo running as a separate process (make demo, make bench).
type KumoProcess struct {
	URL string
	PID int
	cmd *exec.Cmd
}

// StartKumoProcess runs the kumo binary on a free loopback port and waits
// until it answers. Stop ends it by its pid.
func StartKumoProcess(ctx context.Context, bin string) (*KumoProcess, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("find a port for kumo: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	cmd := exec.Command(bin, "--host", "127.0.0.1", "--port", strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "KUMO_LOG_LEVEL=error")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start kumo (%s; make builds it from the pinned module): %w", bin, err)
	}
	k := &KumoProcess{URL: fmt.Sprintf("http://127.0.0.1:%d", port), PID: cmd.Process.Pid, cmd: cmd}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(k.URL + "/")
		if err == nil {
			_ = resp.Body.Close()
			return k, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			k.Stop()
			return nil, fmt.Errorf("kumo did not answer on %s: %w", k.URL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills kumo's process group and waits for it.
func (k *KumoProcess) Stop() {
	_ = syscall.Kill(-k.PID, syscall.SIGKILL)
	_ = k.cmd.Wait()
}

// RunCommand is the whole main of a command that runs the local runtime (the
// demo, the benchmark, the dashboard): run gets a context that Ctrl-C or
// SIGTERM cancels, so it can stop every process it started; an error is
// printed with the command's name and ends the process with status 1.
func RunCommand(name string, run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}
