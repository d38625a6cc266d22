// Package localrt is mecd's local runtime: kumo (Step Functions, Lambda's
// Runtime API, DynamoDB, Parameter Store, EventBridge, API Gateway) behind a
// front on 127.0.0.1:4566, the node simulator for EC2 hosts and SSM Run
// Command, and a supervisor running the real Lambda bootstrap binaries. The
// resources are created from internal/backend, the definitions the CDK stack
// uses, so a local run and a deployment cannot drift.
//
// Tests use it through Main and Get (one runtime per test binary); `make demo`
// uses Start directly with kumo as a separate process.
package localrt

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/sivchari/kumo"

	"github.com/mecd/mecd/test/iameval"
	"github.com/mecd/mecd/test/nodesim"
	"github.com/mecd/mecd/test/nodesim/latency"
)

// Local credentials and account: kumo checks no signature.
const (
	AccessKey     = "AKIAMECDLOCAL0000000"
	SecretKey     = "mecd-local-secret"
	DefaultRegion = "us-east-1"
	Account       = "000000000000"
)

// Options configures a runtime.
type Options struct {
	Scale     float64      // latency time scale (default 0.01)
	Mode      latency.Mode // default typical
	Seed      uint64
	Processes int // Lambda processes per function (default 3)
	// FunctionProcesses overrides Processes for some functions (by backend
	// name, e.g. "check-nodes"): AWS runs up to 1,000 invocations at once,
	// and a function that waits inside its invocation needs one process per
	// invocation in flight.
	FunctionProcesses map[string]int
	// SpareNodeRoles is how many spare node roles launch-nodes keeps made
	// ahead (SPARE_NODE_ROLES); 0 means 2, as on AWS, and -1 none.
	SpareNodeRoles int
	// Functions to build and run; nil means every backend function.
	Functions []FunctionSource
	// KumoURL uses a kumo already running (make demo starts `kumo --port N`);
	// empty starts one in-process.
	KumoURL string
	Dir     string // work directory (default: a new temp dir, removed on Close)
	Region  string // the "home" region of the backend (default us-east-1)
	// Regions MECs may be created in: each gets Canonical's AMI parameters and
	// AMIs seeded (default: Region, us-west-2, eu-central-1, ap-northeast-1).
	Regions []string
	Logger  *slog.Logger
	// LogMirror, if set, receives every Lambda log line as it is written.
	LogMirror io.Writer
	// LockWait bounds how long to wait for another local runtime (another
	// test binary of this repo) to release 127.0.0.1:4566.
	LockWait time.Duration
}

// Runtime is a running local runtime.
type Runtime struct {
	Endpoint string // the front, what every SDK client and Lambda uses
	KumoURL  string
	Region   string
	Sim      *nodesim.Sim
	Front    *Front
	Sup      *Supervisor
	Logs     *LogStore
	Deployed Deployed

	opts    Options
	dir     string
	ownDir  bool
	kumo    *kumo.Server
	iam     *iameval.Evaluator
	lock    *os.File
	log     *slog.Logger
	closing bool
}

// Start brings up kumo, the simulator, the front and the functions, and
// creates every backend resource. Close stops all of it.
func Start(ctx context.Context, opts Options) (rt *Runtime, err error) {
	if opts.Scale == 0 {
		opts.Scale = 0.01
	}
	if opts.Processes == 0 {
		opts.Processes = 3
	}
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	if len(opts.Regions) == 0 {
		opts.Regions = []string{opts.Region, "us-west-2", "eu-central-1", "ap-northeast-1"}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	if opts.LockWait == 0 {
		opts.LockWait = 20 * time.Minute
	}
	rt = &Runtime{opts: opts, Region: opts.Region, log: opts.Logger, Logs: &LogStore{Mirror: opts.LogMirror}}
	defer func() {
		if err != nil {
			rt.Close()
			rt = nil
		}
	}()
	if rt.lock, err = lockPort(opts.LockWait); err != nil {
		return nil, err
	}
	rt.dir = opts.Dir
	if rt.dir == "" {
		if rt.dir, err = os.MkdirTemp("", "mecd-localrt-"); err != nil {
			return nil, fmt.Errorf("local runtime: %w", err)
		}
		rt.ownDir = true
	}
	if opts.KumoURL != "" {
		rt.KumoURL = opts.KumoURL
	} else {
		rt.kumo = kumo.NewServer()
		rt.KumoURL = rt.kumo.URL
	}
	rt.Endpoint = "http://" + FrontAddr
	rt.Sim, err = nodesim.New(nodesim.Config{
		Dir:      filepath.Join(rt.dir, "hosts"),
		Endpoint: rt.Endpoint,
		Scale:    opts.Scale,
		Mode:     opts.Mode,
		Seed:     opts.Seed,
		Events:   newEventSink(rt.kumoConfig(opts.Region)),
		Logger:   opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	// kumo enforces no IAM: the front decides the nodes' calls with AWS's
	// evaluation logic (the functions' calls are proven against the
	// stack's policies by the IAM proof, test/iamproof).
	if rt.iam, err = iameval.Start(); err != nil {
		return nil, err
	}
	if rt.Front, err = NewFront(rt.KumoURL, rt.Sim, rt.iam, rt.Sim.Faults, opts.Logger); err != nil {
		return nil, err
	}
	// A node role's policy change applies seconds later on AWS.
	rt.Front.SetIAMPropagation(rt.scaled(5*time.Second, 10*time.Millisecond))
	if err = rt.Front.Listen(FrontAddr); err != nil {
		return nil, err
	}
	rt.Sup = NewSupervisor(FrontAddr, map[string]string{
		"AWS_ENDPOINT_URL":      rt.Endpoint,
		"AWS_ACCESS_KEY_ID":     AccessKey,
		"AWS_SECRET_ACCESS_KEY": SecretKey,
		"AWS_REGION":            opts.Region,
		"AWS_DEFAULT_REGION":    opts.Region,
		// Never reach for IMDS for credentials or region.
		"AWS_EC2_METADATA_DISABLED": "true",
	}, rt.Logs, opts.Logger)
	rt.Sup.OnExit = rt.Front.processExited
	if err = rt.deploy(ctx); err != nil {
		return nil, err
	}
	return rt, nil
}

// Close stops every process (by pid), the front and kumo, and removes the work dir.
func (rt *Runtime) Close() {
	if rt == nil || rt.closing {
		return
	}
	rt.closing = true
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if rt.Sup != nil {
		rt.Sup.Stop(ctx)
	}
	if rt.Sim != nil {
		rt.Sim.Close()
	}
	if rt.Front != nil {
		_ = rt.Front.Close()
	}
	if rt.kumo != nil {
		rt.kumo.Close()
	}
	rt.iam.Close()
	if rt.ownDir && rt.dir != "" {
		_ = os.RemoveAll(rt.dir)
	}
	if rt.lock != nil {
		_ = syscall.Flock(int(rt.lock.Fd()), syscall.LOCK_UN)
		_ = rt.lock.Close()
	}
}

// Dir is the runtime's work directory.
func (rt *Runtime) Dir() string { return rt.dir }

// AWSConfig is an SDK config that talks to the front, as the Lambdas do.
func (rt *Runtime) AWSConfig(region string) aws.Config {
	cfg := rt.kumoConfig(region)
	cfg.BaseEndpoint = aws.String(rt.Endpoint)
	return cfg
}

// kumoConfig talks to kumo directly (simulator-internal calls that AWS makes
// itself, like SSM putting events, are not product API calls).
func (rt *Runtime) kumoConfig(region string) aws.Config {
	if region == "" {
		region = rt.opts.Region
	}
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion(region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, "")),
		config.WithRetryer(func() aws.Retryer { return retry.NewStandard() }),
	)
	if err != nil {
		// LoadDefaultConfig only fails on malformed shared config files.
		panic(fmt.Sprintf("local aws config: %v", err))
	}
	cfg.BaseEndpoint = aws.String(rt.KumoURL)
	return cfg
}

// lockPort serializes local runtimes of this repo on this machine (go test
// runs package binaries in parallel, and all need 127.0.0.1:4566).
func lockPort(wait time.Duration) (*os.File, error) {
	path := filepath.Join(os.TempDir(), "mecd-localrt-4566.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("local runtime lock: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("local runtime lock: %w", err)
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("local runtime lock: another local runtime held %s for %v", path, wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// describePortOwner names the process listening on addr (" by pid N (cmd)"),
// read from /proc so the message says what to stop. Empty if unknown.
func describePortOwner(addr string) string {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return ""
	}
	inodes := listeningInodes(port)
	if len(inodes) == 0 {
		return ""
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range procs {
		target, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(target, "socket:[") {
			continue
		}
		if !inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] {
			continue
		}
		pid := strings.Split(fd, "/")[2]
		cmd, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		line := strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		return fmt.Sprintf(" by pid %s (%s)", pid, line)
	}
	return " by a process this user cannot see"
}

// listeningInodes returns the socket inodes in LISTEN state on port (IPv4 and IPv6).
func listeningInodes(port int) map[string]bool {
	out := map[string]bool{}
	hexPort := fmt.Sprintf(":%04X", port)
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		s := bufio.NewScanner(f)
		for s.Scan() {
			fields := strings.Fields(s.Text())
			// sl local_address rem_address st ... inode (index 9)
			if len(fields) < 10 || fields[3] != "0A" || !strings.HasSuffix(fields[1], hexPort) {
				continue
			}
			out[fields[9]] = true
		}
		_ = f.Close()
	}
	return out
}
