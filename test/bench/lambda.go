package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mecd/mecd/internal/backend"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/test/localrt"
)

// binSize is one function's deployment artefact from `make build`.
type binSize struct {
	Fn       string
	Bytes    int64 // build/<fn>/bootstrap (linux/arm64, stripped)
	ZipBytes int64 // the bootstrap deflated in a zip, as Lambda receives it
	MemoryMB int
	Err      error
}

func binarySizes(buildDir string) []binSize {
	var out []binSize
	for _, f := range backend.Functions {
		s := binSize{Fn: f.Name, MemoryMB: f.MemoryMB}
		path := filepath.Join(buildDir, f.Name, "bootstrap")
		b, err := os.ReadFile(path)
		if err != nil {
			s.Err = fmt.Errorf("%s (run `make build`): %w", path, err)
			out = append(out, s)
			continue
		}
		s.Bytes = int64(len(b))
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "bootstrap", Method: zip.Deflate})
		if err == nil {
			_, err = w.Write(b)
		}
		if err == nil {
			err = zw.Close()
		}
		if err != nil {
			s.Err = fmt.Errorf("zip %s: %w", path, err)
		}
		s.ZipBytes = int64(buf.Len())
		out = append(out, s)
	}
	return out
}

// coldStart is one function started afresh several times on a Runtime API
// of the benchmark's own, so that init and the first invocation are timed
// exactly and the process is known by pid.
type coldStart struct {
	Fn      string
	Init    []time.Duration // exec -> first poll of .../invocation/next
	Invoke  []time.Duration // first event handed out -> result posted
	HWMkB   int64           // VmHWM after the first invocation (max over samples)
	RSSkB   int64           // VmRSS after the first invocation (max over samples)
	Outcome string          // "response" or "error" (the synthetic events of step functions mostly end in an error)
	Err     error
}

// coldEvents are synthetic first events: each makes the handler build its
// clients and call AWS at least once. Step functions get a cluster id that
// does not exist, so they touch nothing; api reads a real record.
func coldEvents(existingID string) map[string]string {
	ghost := mec.NewID(time.Now())
	now := time.Now().UTC().Format(time.RFC3339)
	return map[string]string{
		"api": fmt.Sprintf(`{"resource":"/mecs/{id}","path":"/mecs/%s","httpMethod":"GET","headers":{},"pathParameters":{"id":%q},`+
			`"requestContext":{"requestId":"bench-cold","stage":"v1","identity":{"userArn":"arn:aws:iam::000000000000:user/bench"}}}`, existingID, existingID),
		"prepare":      fmt.Sprintf(`{"clusterId":%q}`, ghost),
		"launch-nodes": fmt.Sprintf(`{"clusterId":%q}`, ghost),
		"check-nodes":  fmt.Sprintf(`{"clusterId":%q}`, ghost),
		"node-command": fmt.Sprintf(`{"taskToken":"bench-cold-start","clusterId":%q,"step":"install"}`, ghost),
		"command-events": fmt.Sprintf(`{"version":"0","id":"bench-cold","detail-type":"EC2 Command Invocation Status-change Notification","source":"aws.ssm",`+
			`"account":"000000000000","time":%q,"region":"us-east-1","resources":[],"detail":{"command-id":"bench-cold-start","instance-id":"i-0bench","status":"Success"}}`, now),
		"cleanup":       fmt.Sprintf(`{"purpose":"teardown","state":{"clusterId":%q}}`, ghost),
		"record-status": fmt.Sprintf(`{"status":"DELETED","state":{"clusterId":%q}}`, ghost),
		"sweeper": fmt.Sprintf(`{"version":"0","id":"bench-cold","detail-type":"Scheduled Event","source":"aws.events","account":"000000000000",`+
			`"time":%q,"region":"us-east-1","resources":["arn:aws:events:us-east-1:000000000000:rule/mecd-sweeper"],"detail":{}}`, now),
	}
}

func (e *env) coldStarts(ctx context.Context, existingID string, samples int) []coldStart {
	events := coldEvents(existingID)
	var out []coldStart
	for _, f := range backend.Functions {
		c := coldStart{Fn: f.Name}
		for range samples {
			if ctx.Err() != nil {
				c.Err = ctx.Err()
				break
			}
			s, err := e.coldStartOnce(ctx, f, events[f.Name])
			if err != nil {
				c.Err = err
				break
			}
			c.Init = append(c.Init, s.init)
			c.Invoke = append(c.Invoke, s.invoke)
			c.HWMkB, c.RSSkB, c.Outcome = max(c.HWMkB, s.hwm), max(c.RSSkB, s.rss), s.outcome
		}
		out = append(out, c)
	}
	return out
}

type coldSample struct {
	init, invoke time.Duration
	hwm, rss     int64
	outcome      string
}

// coldStartOnce runs the host build of f (the runtime's own binary) once.
func (e *env) coldStartOnce(ctx context.Context, f backend.Function, event string) (coldSample, error) {
	var s coldSample
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return s, fmt.Errorf("runtime api listener: %w", err)
	}
	polled := make(chan time.Time, 1)
	handed := make(chan time.Time, 1)
	result := make(chan string, 1)
	stop := make(chan struct{})
	first := true
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) {
		if !first {
			// The process polls for its second event: hold it until it is killed.
			select {
			case <-stop:
			case <-r.Context().Done():
			}
			return
		}
		first = false
		polled <- time.Now()
		w.Header().Set("Lambda-Runtime-Aws-Request-Id", "bench-cold-1")
		w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10))
		w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:"+localrt.FunctionName(f.Name))
		w.Header().Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
		handed <- time.Now()
		_, _ = w.Write([]byte(event))
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/{kind}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
		select {
		case result <- r.PathValue("kind"):
		default:
		}
	})
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
		select {
		case result <- "init error":
		default:
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		close(stop)
		_ = srv.Close()
	}()

	cmd := exec.Command(filepath.Join(e.rt.Dir(), "bin", f.Name))
	cmd.Env = e.lambdaEnv(f, ln.Addr().String())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &limitWriter{w: &logs, n: 8 << 10}, &limitWriter{w: &logs, n: 8 << 10}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return s, fmt.Errorf("start %s: %w", f.Name, err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	wait := func(what string, d time.Duration) error {
		return fmt.Errorf("%s: no %s within %v; output: %s", f.Name, what, d, clip(logs.String(), 400))
	}
	select {
	case t := <-polled:
		s.init = t.Sub(t0)
	case kind := <-result:
		return s, fmt.Errorf("%s: %s before polling; output: %s", f.Name, kind, clip(logs.String(), 400))
	case <-time.After(20 * time.Second):
		return s, wait("first poll", 20*time.Second)
	case <-ctx.Done():
		return s, ctx.Err()
	}
	at := <-handed
	select {
	case s.outcome = <-result:
		s.invoke = time.Since(at)
	case <-time.After(30 * time.Second):
		return s, wait("result", 30*time.Second)
	case <-ctx.Done():
		return s, ctx.Err()
	}
	// The process is idle in its next poll: its memory after one invocation.
	time.Sleep(20 * time.Millisecond)
	if s.hwm, err = procStatusKB(cmd.Process.Pid, "VmHWM"); err != nil {
		return s, err
	}
	s.rss, err = procStatusKB(cmd.Process.Pid, "VmRSS")
	return s, err
}

// lambdaEnv is what the supervisor gives a function's process, with the
// Runtime API at addr.
func (e *env) lambdaEnv(f backend.Function, addr string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TZ=UTC",
		"AWS_LAMBDA_RUNTIME_API=" + addr,
		"AWS_LAMBDA_FUNCTION_NAME=" + localrt.FunctionName(f.Name),
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + strconv.Itoa(f.MemoryMB),
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_LOG_FORMAT=JSON",
		"AWS_ENDPOINT_URL=" + e.rt.Endpoint,
		"AWS_ACCESS_KEY_ID=" + localrt.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + localrt.SecretKey,
		"AWS_REGION=" + e.rt.Region,
		"AWS_DEFAULT_REGION=" + e.rt.Region,
		"AWS_EC2_METADATA_DISABLED=true",
	}
	for k, v := range f.EnvFrom(e.rt.Deployed.Resources) {
		env = append(env, k+"="+v)
	}
	return env
}

// warmMemory is the peak RSS of the runtime's own processes of each
// function after everything they served.
func (e *env) warmMemory() map[string]int64 {
	out := map[string]int64{}
	for _, f := range backend.Functions {
		for _, pid := range e.rt.Sup.PIDs(localrt.FunctionName(f.Name)) {
			if kb, err := procStatusKB(pid, "VmHWM"); err == nil {
				out[f.Name] = max(out[f.Name], kb)
			}
		}
	}
	return out
}

// procStatusKB reads one "<field>: N kB" line of /proc/<pid>/status.
func procStatusKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("process %d: no %s", pid, field)
}

type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// apiLatency is client-side latency through kumo's API Gateway and the api
// handler's own duration, per route.
type apiLatency struct {
	Route   string
	Client  []time.Duration
	Handler []time.Duration
	Err     error
}

// apiLatencies times GET /mecs/{id} (n times) and POST /mecs (posts times,
// each MEC deleted again and followed to DELETED before the next POST, so
// every POST meets a quiet system; the DELETEs are timed too).
func (e *env) apiLatencies(ctx context.Context, existingID string, n, posts int) []apiLatency {
	get := apiLatency{Route: "GET /mecs/{id}"}
	s0 := e.snapshot()
	for range n {
		res := e.api(ctx, "GET", "/mecs/"+existingID, "")
		if err := res.check(200); err != nil {
			get.Err = err
			break
		}
		get.Client = append(get.Client, res.Latency)
	}
	get.Handler = s0.until(e.snapshot()).Fns["api"].Durations

	post := apiLatency{Route: "POST /mecs (1 node)"}
	del := apiLatency{Route: "DELETE /mecs/{id} (while CREATING)"}
	tag := fmt.Sprintf("lat%d", time.Now().Unix()%100000)
	for i := range posts {
		s0 := e.snapshot()
		res := e.api(ctx, "POST", "/mecs", fmt.Sprintf(`{"name":"%s-%d","nodeCount":1}`, tag, i))
		s1 := e.snapshot()
		if err := res.check(202); err != nil {
			post.Err = err
			break
		}
		post.Client = append(post.Client, res.Latency)
		post.Handler = append(post.Handler, s0.until(s1).Fns["api"].Durations...)
		var m mec.MEC
		if err := json.Unmarshal(res.Body, &m); err != nil {
			post.Err = err
			break
		}
		res = e.api(ctx, "DELETE", "/mecs/"+m.ID, "")
		if err := res.check(202); err != nil {
			del.Err = err
			break
		}
		del.Client = append(del.Client, res.Latency)
		del.Handler = append(del.Handler, s1.until(e.snapshot()).Fns["api"].Durations...)
		if _, err := e.waitRecord(ctx, m.ID, 2*time.Minute, 50*time.Millisecond, mec.Deleted); err != nil {
			del.Err = err
			break
		}
	}
	// A DELETE that lands mid-provisioning must still leave nothing behind.
	if leaks, err := e.rt.LeakAudit(ctx, ""); err != nil || len(leaks) > 0 {
		del.Err = errors.Join(del.Err, err, fmt.Errorf("leak audit after the DELETEs while CREATING: %s", strings.Join(leaks, "; ")))
	}
	return []apiLatency{get, post, del}
}
