package ssmsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mecd/mecd/test/nodesim/latency"
)

// maxCapture bounds what is kept of a script's stdout/stderr (SSM keeps far less).
const maxCapture = 1 << 20

// runInvocation is one invocation's life: Pending, dispatch delay, InProgress,
// the script in bash on the host, a terminal status, then the events.
func (s *Sim) runInvocation(v *invocation) {
	c := v.cmd
	if !s.sleep(s.ctx, latency.Dispatch) {
		s.finish(v, StatusCancelled, StatusCancelled, exitKilled, "", "", false)
		return
	}
	// An agent restarting (its snap refreshed) takes the command when it is
	// back: a running document worker survives the restart, the agent only
	// delivers new work late.
	if inst, ok := s.instance(v.instanceID); ok {
		s.mu.Lock()
		b := s.bootLocked(inst)
		s.mu.Unlock()
		if now := time.Now(); now.After(b.restartFrom) && now.Before(b.restartTo) && !sleepFor(s.ctx, b.restartTo.Sub(now)) {
			s.finish(v, StatusCancelled, StatusCancelled, exitKilled, "", "", false)
			return
		}
	}
	inst, ok := s.instance(v.instanceID)
	if !ok || inst.State != "running" {
		// The agent is gone: SSM reports the invocation undeliverable.
		s.finish(v, StatusFailed, "Undeliverable", exitKilled, "", "", true)
		return
	}
	h, _, err := s.hostFor(v.instanceID)
	if err != nil {
		s.finish(v, StatusFailed, StatusFailed, 1, "", err.Error(), true)
		return
	}

	s.mu.Lock()
	v.status, v.statusDetails, v.start = StatusInProgress, StatusInProgress, time.Now()
	refreshCommandLocked(c)
	s.mu.Unlock()

	res := s.execScript(h, inst, c)
	switch {
	case res.cancelled:
		s.finish(v, StatusCancelled, StatusCancelled, exitKilled, res.stdout, res.stderr, false)
	case res.timedOut:
		s.finish(v, StatusTimedOut, "ExecutionTimedOut", exitTimedOut, res.stdout, res.stderr, true)
	case res.lost:
		s.finish(v, StatusFailed, StatusFailed, exitKilled, res.stdout, res.stderr, true)
	case res.code == 0:
		s.finish(v, StatusSuccess, StatusSuccess, 0, res.stdout, res.stderr, true)
	default:
		// The agent appends its own line to stderr of a failed script.
		stderr := res.stderr
		if res.startErr != "" {
			stderr = appendLine(stderr, res.startErr)
		} else {
			stderr = appendLine(stderr, fmt.Sprintf("failed to run commands: exit status %d", res.code))
		}
		s.finish(v, StatusFailed, StatusFailed, res.code, res.stdout, stderr, true)
	}
}

func appendLine(s, line string) string {
	if s == "" || strings.HasSuffix(s, "\n") {
		return s + line
	}
	return s + "\n" + line
}

// finish records the terminal state, then (outside the lock, so the state is
// visible to GetCommandInvocation first) puts the events SSM puts.
func (s *Sim) finish(v *invocation, status, details string, code int, stdout, stderr string, emit bool) {
	c := v.cmd
	s.mu.Lock()
	v.status, v.statusDetails, v.code, v.stdout, v.stderr = status, details, code, stdout, stderr
	if !v.start.IsZero() {
		v.end = time.Now()
	}
	commandDone := refreshCommandLocked(c)
	cmdStatus := c.status
	regions := map[string]bool{}
	var resources []string
	for _, iv := range c.invocations {
		regions[iv.region] = true
		resources = append(resources, s.instanceArn(iv.region, iv.instanceID))
	}
	params := c.params
	closed := s.closed
	s.mu.Unlock()

	s.log.InfoContext(s.ctx, "command invocation finished", "commandId", c.id, "instanceId", v.instanceID,
		"status", status, "statusDetails", details, "responseCode", code)
	if !emit || closed || s.cfg.Events == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	detail := map[string]any{
		"command-id": c.id, "document-name": c.doc.name, "instance-id": v.instanceID,
		"requested-date-time": isoMillis(c.requested), "status": status,
	}
	if err := s.cfg.Events.PutEvent(ctx, v.region, "aws.ssm", "EC2 Command Invocation Status-change Notification",
		[]string{s.instanceArn(v.region, v.instanceID)}, detail); err != nil {
		s.log.WarnContext(ctx, "put invocation event", "commandId", c.id, "instanceId", v.instanceID, "err", err)
	}
	if !commandDone {
		return
	}
	cdetail := map[string]any{
		"command-id": c.id, "document-name": c.doc.name, "instance-ids": c.instanceIDs,
		"expire-after": isoMillis(c.expires), "parameters": params,
		"requested-date-time": isoMillis(c.requested), "status": cmdStatus,
	}
	// One event per region the command touched (a command's instances share one in practice).
	for _, region := range slices.Sorted(maps.Keys(regions)) {
		if err := s.cfg.Events.PutEvent(ctx, region, "aws.ssm", "EC2 Command Status-change Notification", resources, cdetail); err != nil {
			s.log.WarnContext(ctx, "put command event", "commandId", c.id, "err", err)
		}
	}
}

type execResult struct {
	stdout, stderr string
	code           int
	timedOut       bool
	cancelled      bool // the Sim was closed
	lost           bool // the instance stopped running under the script
	startErr       string
}

// hostDirs are the absolute paths of a node's filesystem that node scripts
// use: the MicroK8s snap's data, cloud-init's state, mecd's own files, and
// what Longhorn's node preparation reads and writes (the disks by id,
// /etc/fstab, module and multipath configuration).
var hostDirs = regexp.MustCompile(`(^|[\s"'=(:<>])(/var/snap/|/var/lib/cloud/|/run/cloud-init/|/etc/mecd/|/var/lib/mecd/|/etc/fstab\b|/etc/modules-load\.d\b|/etc/multipath\b|/dev/disk/)`)

// mapPaths places a script's absolute host paths under the host's root. A
// script on a real node sees the host's "/"; a simulated host's "/" is
// <dir>/root, and a chroot or mount namespace would need a whole userland
// (and privileges) for what is only a handful of directories.
func (h *host) mapPaths(script string) string {
	return hostDirs.ReplaceAllString(script, "${1}"+h.root+"${2}")
}

// execScript runs the command's script as `bash _script.sh` on the host, in its
// own process group, and kills the whole group on executionTimeout, Close, or
// when the instance stops running.
func (s *Sim) execScript(h *host, inst Instance, c *command) execResult {
	// Where the agent keeps a command's files on a real host.
	odir := filepath.Join(h.root, "var/lib/amazon/ssm", h.id, "document/orchestration", c.id, "awsrunShellScript/0.awsrunShellScript")
	if err := os.MkdirAll(odir, 0o700); err != nil {
		return execResult{code: 1, startErr: err.Error()}
	}
	scriptPath := filepath.Join(odir, "_script.sh")
	if err := os.WriteFile(scriptPath, []byte(h.mapPaths(c.script)), 0o700); err != nil {
		return execResult{code: 1, startErr: err.Error()}
	}
	cwd := h.root
	if c.workingDir != "" {
		cwd = filepath.Join(h.root, c.workingDir)
		if st, err := os.Stat(cwd); err != nil || !st.IsDir() {
			return execResult{code: 1, startErr: fmt.Sprintf("Invalid workingDirectory %s, directory doesn't exist.", c.workingDir)}
		}
	}
	stdoutF, err := os.Create(filepath.Join(odir, "stdout"))
	if err != nil {
		return execResult{code: 1, startErr: err.Error()}
	}
	defer stdoutF.Close()
	stderrF, err := os.Create(filepath.Join(odir, "stderr"))
	if err != nil {
		return execResult{code: 1, startErr: err.Error()}
	}
	defer stderrF.Close()

	ctx, cancel := context.WithTimeout(s.ctx, c.execTimeout)
	defer cancel()
	lostCtx, markLost := context.WithCancel(ctx)
	defer markLost()

	cmd := exec.CommandContext(lostCtx, "bash", scriptPath)
	cmd.Dir = cwd
	cmd.Env = s.hostEnv(h, inst)
	cmd.Stdin = nil
	// Files, not pipes: Wait returns when bash exits even if a background child
	// still holds the output open (that child is killed with the group below).
	cmd.Stdout, cmd.Stderr = stdoutF, stderrF
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	if err := cmd.Start(); err != nil {
		return execResult{code: 1, startErr: fmt.Sprintf("failed to run commands: %v", err)}
	}

	// The agent loses the script if the instance stops running under it.
	var lost atomic.Bool
	watchDone := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-watchDone:
				return
			case <-lostCtx.Done():
				return
			case <-t.C:
				if cur, ok := s.instance(inst.ID); !ok || cur.State != "running" {
					lost.Store(true)
					markLost()
					return
				}
			}
		}
	}()

	if canWaitNoReap {
		waitExited(cmd.Process.Pid)    // bash has exited but is not reaped: its group id cannot be reused yet
		_ = killGroup(cmd.Process.Pid) // so end the script's leftovers with it
	}
	werr := cmd.Wait()
	close(watchDone)

	res := execResult{stdout: readCapped(stdoutF.Name()), stderr: readCapped(stderrF.Name())}
	var ee *exec.ExitError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		res.timedOut = true
	case s.ctx.Err() != nil:
		res.cancelled = true
	case lost.Load():
		res.lost = true
	case werr == nil:
		res.code = 0
	case errors.As(werr, &ee):
		res.code = ee.ExitCode() // -1 when a signal ended it, as the agent reports
		if res.code < 0 {
			res.code = exitKilled
		}
	default:
		res.code = 1
		res.startErr = werr.Error()
	}
	return res
}

func readCapped(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, maxCapture))
	return string(b)
}

// killGroup SIGKILLs a process group; a group already gone is not an error.
func killGroup(pgid int) error {
	if pgid <= 0 {
		return nil
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// hostEnv is the environment of a command on host h: a clean one (nothing of
// the test process leaks in, in particular no AWS credentials: a script gets
// them from IMDS like on EC2), with the stand-ins first on PATH and every AWS
// endpoint pointed at the front on loopback.
func (s *Sim) hostEnv(h *host, inst Instance) []string {
	ep := strings.TrimRight(s.cfg.Endpoint, "/")
	// Ubuntu's PATH, as the SSM agent gives scripts: the host's own tools
	// (curl, python3, openssl) from /usr/bin, not whatever the test process
	// has first (a pyenv shim costs ~100 ms per python3 call).
	path := h.bin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	return []string{
		"PATH=" + path,
		"HOME=" + filepath.Join(h.root, "root"),
		"USER=root",
		"LANG=C.UTF-8",
		"TMPDIR=" + filepath.Join(h.root, "tmp"),
		"MECD_HOST_ROOT=" + h.root,
		"AWS_REGION=" + inst.Region,
		"AWS_DEFAULT_REGION=" + inst.Region,
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + ep + "/_sim/imds/" + h.id,
		"AWS_ENDPOINT_URL_SSM=" + ep,
		"AWS_ENDPOINT_URL=" + ep,
		envHostURL + "=" + ep + "/_sim/host/" + h.id,
		"MECD_SIM_INSTANCE_ID=" + h.id,
		"NO_PROXY=127.0.0.1,localhost",
		"no_proxy=127.0.0.1,localhost",
	}
}
