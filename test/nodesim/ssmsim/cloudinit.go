package ssmsim

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Cloud-init on an Ubuntu cloud image, as far as user data goes:
//   - it runs the instance's user data once, at first boot, in its last
//     stage (cloud-final), after the network is up (cloud-init docs, "Boot
//     stages"); a user data that begins with "#!" is a script, run as root
//     (docs, "User data formats": user data script);
//   - the script's output goes to /var/log/cloud-init-output.log (the
//     default output setting of Ubuntu's cloud.cfg);
//   - when it is done, /var/lib/cloud/instance/boot-finished exists;
//   - `cloud-init status` prints "status: running|done|error"; `--wait`
//     blocks (printing dots) until it is no longer running; the exit code is
//     0 when done, 1 on a critical error (docs, "cloud-init status", and
//     cloudinit/cmd/status.py: a failed user data script is an error of
//     the modules-final stage, reported as status error).
//
// The SSM agent starts independently of cloud-final (its own systemd unit),
// so commands may arrive while the user data still runs.
type cloudInit struct {
	state  string // "running", "done", "error"
	detail string
	done   chan struct{}
}

// Boot starts cloud-init on a running instance's host (once).
func (s *Sim) Boot(instanceID string) {
	h, inst, err := s.hostFor(instanceID)
	if err != nil {
		return
	}
	s.mu.Lock()
	if h.ci != nil {
		s.mu.Unlock()
		return
	}
	ci := &cloudInit{state: "running", done: make(chan struct{})}
	h.ci = ci
	s.mu.Unlock()
	if !s.goBackground(func() { s.runUserData(h, inst, ci) }) {
		s.endCloudInit(h, ci, "error", "simulator closed")
	}
}

func (s *Sim) endCloudInit(h *host, ci *cloudInit, state, detail string) {
	s.mu.Lock()
	ci.state, ci.detail = state, detail
	s.mu.Unlock()
	_ = os.MkdirAll(filepath.Join(h.root, "var/lib/cloud/instance"), 0o755)
	_ = os.WriteFile(filepath.Join(h.root, "var/lib/cloud/instance/boot-finished"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
	close(ci.done)
}

// runUserData runs the user data script, if there is one, as cloud-final does.
func (s *Sim) runUserData(h *host, inst Instance, ci *cloudInit) {
	raw, err := base64.StdEncoding.DecodeString(inst.UserData)
	script := string(raw)
	if err != nil || !strings.HasPrefix(script, "#!") {
		// No user data, or a format this simulator does not run (cloud-config):
		// nothing to run.
		s.endCloudInit(h, ci, "done", "")
		return
	}
	dir := filepath.Join(h.root, "var/lib/cloud/instance/scripts")
	logPath := filepath.Join(h.root, "var/log/cloud-init-output.log")
	for _, d := range []string{dir, filepath.Dir(logPath), filepath.Join(h.root, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			s.endCloudInit(h, ci, "error", err.Error())
			return
		}
	}
	path := filepath.Join(dir, "part-001")
	if err := os.WriteFile(path, []byte(h.mapPaths(script)), 0o700); err != nil {
		s.endCloudInit(h, ci, "error", err.Error())
		return
	}
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		s.endCloudInit(h, ci, "error", err.Error())
		return
	}
	defer out.Close()
	cmd := exec.CommandContext(s.ctx, "bash", path)
	cmd.Dir = h.root
	cmd.Env = s.hostEnv(h, inst)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		s.endCloudInit(h, ci, "done", "")
	case errors.As(err, &ee):
		s.endCloudInit(h, ci, "error", fmt.Sprintf("runcmd: user data script failed with exit status %d", ee.ExitCode()))
	default:
		s.endCloudInit(h, ci, "error", err.Error())
	}
}

// cloudInitCmd is the `cloud-init` stand-in: `status [--wait] [--long]`.
func (s *Sim) cloudInitCmd(ctx context.Context, h *host, args []string) result {
	if len(args) == 0 || args[0] != "status" {
		return fail(2, "usage: /usr/bin/cloud-init [-h] [--version] [--debug] [--force] {init,modules,single,query,features,analyze,devel,collect-logs,clean,status,schema} ...\n")
	}
	wait := false
	for _, a := range args[1:] {
		switch a {
		case "--wait", "-w":
			wait = true
		case "--long", "-l":
		default:
			return fail(2, "usage: /usr/bin/cloud-init status [-h] [--format {json,tabular,yaml}] [-l] [-w]\n/usr/bin/cloud-init status: error: unrecognized arguments: "+a+"\n")
		}
	}
	s.mu.Lock()
	ci := h.ci
	s.mu.Unlock()
	if ci == nil {
		// Not booted through cloud-init here (the instance came up before the
		// simulator knew it): nothing ran, nothing runs.
		return success("status: done\n")
	}
	dots := ""
	if wait {
		select {
		case <-ci.done:
		case <-ctx.Done():
			return fail(1, "\nerror: interrupted\n")
		}
		dots = ".\n"
	}
	s.mu.Lock()
	state, detail := ci.state, ci.detail
	s.mu.Unlock()
	switch state {
	case "done":
		return success(dots + "status: done\n")
	case "error":
		return failOut(1, dots+"status: error\nerrors:\n\t"+detail+"\n")
	}
	return success("status: running\n")
}
