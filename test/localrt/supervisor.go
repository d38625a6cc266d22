package localrt

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process describes the processes of one Lambda function.
type Process struct {
	Function string            // function name in kumo
	Binary   string            // bootstrap binary (host architecture)
	Env      map[string]string // the function's environment
	Count    int               // processes to keep running (kumo's give one invocation at a time to each)
}

// Supervisor runs Lambda bootstrap binaries on kumo's Runtime API (through
// the front, which notes their polls), restarts any that exits (a panicking
// aws-lambda-go handler exits, as on AWS) and captures every log line.
type Supervisor struct {
	runtimeAPI string // host:port of the front
	baseEnv    map[string]string
	Logs       *LogStore
	log        *slog.Logger

	// OnExit, if set, is told when a process exits unasked (before its
	// restart): the front ends the invocation it may have been serving.
	OnExit func(fn string, slot int, err error)

	mu       sync.Mutex
	stopping bool
	procs    map[string][]*proc
	restarts map[string]int
	wg       sync.WaitGroup
}

type proc struct {
	slot int // its place among the function's processes (the runtime path names it)
	mu   sync.Mutex
	cmd  *exec.Cmd
}

// NewSupervisor builds a supervisor. baseEnv is given to every process
// (endpoint, credentials, region) beneath the function's own environment.
func NewSupervisor(runtimeAPI string, baseEnv map[string]string, logs *LogStore, log *slog.Logger) *Supervisor {
	return &Supervisor{runtimeAPI: runtimeAPI, baseEnv: baseEnv, Logs: logs, log: log,
		procs: map[string][]*proc{}, restarts: map[string]int{}}
}

// Start launches p.Count processes for p.Function and keeps them running until Stop.
func (s *Supervisor) Start(p Process) error {
	if _, err := os.Stat(p.Binary); err != nil {
		return fmt.Errorf("supervise %s: %w", p.Function, err)
	}
	for i := 0; i < p.Count; i++ {
		pr := &proc{slot: i}
		s.mu.Lock()
		if s.stopping {
			s.mu.Unlock()
			return fmt.Errorf("supervise %s: supervisor stopping", p.Function)
		}
		s.procs[p.Function] = append(s.procs[p.Function], pr)
		s.mu.Unlock()
		if err := s.spawn(p, pr); err != nil {
			return err
		}
	}
	return nil
}

func (s *Supervisor) env(p Process, slot int) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"TZ=UTC",
		"AWS_LAMBDA_RUNTIME_API=" + s.runtimeAPI + "/_runtime/" + p.Function + slotSep + strconv.Itoa(slot),
		"AWS_LAMBDA_FUNCTION_NAME=" + p.Function,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_LOG_FORMAT=JSON",
	}
	keys := make([]string, 0, len(s.baseEnv))
	for k := range s.baseEnv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+s.baseEnv[k])
	}
	for k, v := range p.Env {
		env = append(env, k+"="+v)
	}
	return env
}

// spawn starts one process and a goroutine that restarts it when it exits.
func (s *Supervisor) spawn(p Process, pr *proc) error {
	cmd := exec.Command(p.Binary)
	cmd.Env = s.env(p, pr.slot)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("supervise %s: %w", p.Function, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("supervise %s: %w", p.Function, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("supervise %s: start: %w", p.Function, err)
	}
	pr.mu.Lock()
	pr.cmd = cmd
	pr.mu.Unlock()
	pid := cmd.Process.Pid
	var readers sync.WaitGroup
	readers.Add(2)
	go s.capture(&readers, p.Function, pid, "stdout", stdout)
	go s.capture(&readers, p.Function, pid, "stderr", stderr)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		readers.Wait()
		err := cmd.Wait()
		s.mu.Lock()
		stopping := s.stopping
		if !stopping {
			s.restarts[p.Function]++
		}
		s.mu.Unlock()
		if stopping {
			return
		}
		s.log.Info("lambda process exited; restarting", "function", p.Function, "pid", pid, "err", err)
		if s.OnExit != nil {
			s.OnExit(p.Function, pr.slot, err)
		}
		time.Sleep(20 * time.Millisecond)
		if err := s.spawn(p, pr); err != nil {
			s.log.Error("lambda restart failed", "function", p.Function, "err", err)
		}
	}()
	return nil
}

func (s *Supervisor) capture(wg *sync.WaitGroup, fn string, pid int, stream string, r io.Reader) {
	defer wg.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		s.Logs.add(LogLine{Function: fn, PID: pid, Stream: stream, Time: time.Now(), Text: sc.Text()})
	}
}

// Restarts is how many times fn's processes were restarted.
func (s *Supervisor) Restarts(fn string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts[fn]
}

// PIDs lists the live processes of fn.
func (s *Supervisor) PIDs(fn string) []int {
	s.mu.Lock()
	prs := append([]*proc(nil), s.procs[fn]...)
	s.mu.Unlock()
	var out []int
	for _, pr := range prs {
		pr.mu.Lock()
		if pr.cmd != nil && pr.cmd.Process != nil && pr.cmd.ProcessState == nil {
			out = append(out, pr.cmd.Process.Pid)
		}
		pr.mu.Unlock()
	}
	return out
}

// SlotPID is the pid of fn's process in slot, if it runs.
func (s *Supervisor) SlotPID(fn string, slot int) (int, bool) {
	s.mu.Lock()
	prs := s.procs[fn]
	s.mu.Unlock()
	for _, pr := range prs {
		if pr.slot != slot {
			continue
		}
		pr.mu.Lock()
		defer pr.mu.Unlock()
		if pr.cmd != nil && pr.cmd.Process != nil && pr.cmd.ProcessState == nil {
			return pr.cmd.Process.Pid, true
		}
	}
	return 0, false
}

// Stop kills every process (its whole process group, by pid) and waits for them.
func (s *Supervisor) Stop(ctx context.Context) {
	s.mu.Lock()
	s.stopping = true
	var all []*proc
	for _, prs := range s.procs {
		all = append(all, prs...)
	}
	s.mu.Unlock()
	for _, pr := range all {
		pr.mu.Lock()
		if pr.cmd != nil && pr.cmd.Process != nil {
			_ = syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL)
		}
		pr.mu.Unlock()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("supervisor: processes did not exit in time")
	}
}

// LogLine is one line a Lambda process wrote.
type LogLine struct {
	Function string
	PID      int
	Stream   string
	Time     time.Time
	Text     string
}

// LogStore keeps every captured line in memory (tests search them) and, if
// Mirror is set, copies them there too.
type LogStore struct {
	mu     sync.Mutex
	lines  []LogLine
	Mirror io.Writer
}

func (l *LogStore) add(line LogLine) {
	l.mu.Lock()
	l.lines = append(l.lines, line)
	m := l.Mirror
	l.mu.Unlock()
	if m != nil {
		fmt.Fprintf(m, "[%s %d] %s\n", line.Function, line.PID, line.Text)
	}
}

// Lines returns the captured lines, of one function or all when fn is "".
func (l *LogStore) Lines(fn string) []LogLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []LogLine
	for _, line := range l.lines {
		if fn == "" || line.Function == fn {
			out = append(out, line)
		}
	}
	return out
}

// Contains reports whether any captured line contains s.
func (l *LogStore) Contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line.Text, s) {
			return true
		}
	}
	return false
}
