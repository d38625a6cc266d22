package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go/logging"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/store"
	"github.com/mecd/mecd/test/localrt"
)

// env is one local runtime at one latency scale, with kumo as a process.
type env struct {
	rt        *localrt.Runtime
	scale     float64
	processes int // Lambda processes per function
	kumoPID   int
	stop      func()
	// Direct clients on kumo, not the front: the benchmark's own polling
	// must not show up in the front's API call counts.
	ddb   *dynamodb.Client
	sfn   *sfn.Client
	store *store.Store
	// How long Start took: building the functions, deploying, and any wait
	// for another local runtime's lock.
	startup time.Duration
}

// startEnv starts kumo as a process and a local runtime on it; close stops
// both (every process by its pid) whatever happens next.
func startEnv(ctx context.Context, kumoBin string, scale float64, processes, waiters int) (*env, error) {
	kumo, err := localrt.StartKumoProcess(ctx, kumoBin)
	if err != nil {
		return nil, err
	}
	url, pid, stopKumo := kumo.URL, kumo.PID, kumo.Stop
	t0 := time.Now()
	rt, err := localrt.Start(ctx, localrt.Options{
		KumoURL: url, Scale: scale, Processes: processes,
		// check-nodes (the agents) and launch-nodes (IAM propagation) wait
		// inside their invocations: one process per MEC waiting, as AWS
		// would run them (1,000 at once).
		FunctionProcesses: map[string]int{"check-nodes": max(processes, waiters), "launch-nodes": max(processes, waiters)},
		Logger:            slog.New(slog.NewJSONHandler(io.Discard, nil)),
		LockWait:          30 * time.Minute,
	})
	if err != nil {
		stopKumo()
		return nil, fmt.Errorf("local runtime at scale %g: %w", scale, err)
	}
	e := &env{rt: rt, scale: scale, processes: processes, kumoPID: pid, startup: time.Since(t0)}
	e.stop = func() {
		rt.Close()
		stopKumo()
	}
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(rt.Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(localrt.AccessKey, localrt.SecretKey, "")),
	)
	if err != nil {
		e.stop()
		return nil, fmt.Errorf("aws config: %w", err)
	}
	cfg.BaseEndpoint = aws.String(rt.KumoURL)
	cfg.Logger = logging.Nop{}
	// kumo sends no X-Amz-Crc32 (the front adds it; these calls bypass the front).
	e.ddb = dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.DisableValidateResponseChecksum = true })
	e.sfn = sfn.NewFromConfig(cfg)
	e.store = &store.Store{DB: e.ddb, Table: localrt.TableName}
	return e, nil
}

func (e *env) close() {
	if e != nil && e.stop != nil {
		e.stop()
		e.stop = nil
	}
}

// apiResult is one request through kumo's API Gateway.
type apiResult struct {
	Code    int
	Body    []byte
	Latency time.Duration
	Err     error
}

// api sends one request to the MEC API through the front and kumo's API
// Gateway, as a client does, and times it.
func (e *env) api(ctx context.Context, method, path, body string) apiResult {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	h := http.Header{}
	var rd io.Reader
	if body != "" {
		h.Set("Content-Type", "application/json")
		rd = strings.NewReader(body)
	}
	t0 := time.Now()
	resp, b, err := e.rt.APIRequest(ctx, method, path, rd, h)
	r := apiResult{Latency: time.Since(t0), Body: b, Err: err}
	if resp != nil {
		r.Code = resp.StatusCode
	}
	return r
}

// ok reports whether the answer is the wanted status, else why not.
func (r apiResult) check(want int) error {
	if r.Err != nil {
		return r.Err
	}
	if r.Code != want {
		return fmt.Errorf("status %d, want %d: %s", r.Code, want, clip(string(r.Body), 300))
	}
	return nil
}

// waitRecord polls the record (DynamoDB on kumo, not counted) until its
// status is one of want, or timeout.
func (e *env) waitRecord(ctx context.Context, id string, timeout, every time.Duration, want ...mec.Status) (*mec.MEC, error) {
	deadline := time.Now().Add(timeout)
	for {
		m, err := e.store.Get(ctx, id)
		if err == nil {
			for _, w := range want {
				if m.Status == w {
					return m, nil
				}
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("read record %s: %w", id, err)
		}
		if time.Now().After(deadline) {
			status := "absent"
			if m != nil {
				status = string(m.Status)
			}
			return m, fmt.Errorf("MEC %s is %s after %v, want %v", id, status, timeout, want)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(every):
		}
	}
}

// waitExecution polls an execution (on kumo directly) until it ends.
func (e *env) waitExecution(ctx context.Context, arn string, timeout time.Duration) (sfntypes.ExecutionStatus, error) {
	deadline := time.Now().Add(timeout)
	for {
		out, err := e.sfn.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
		if err != nil {
			return "", fmt.Errorf("describe execution %s: %w", arn, err)
		}
		if out.Status != sfntypes.ExecutionStatusRunning {
			return out.Status, nil
		}
		if time.Now().After(deadline) {
			return out.Status, fmt.Errorf("execution %s still running after %v", arn, timeout)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// snapshot is what the front has counted so far.
type snapshot struct {
	calls map[string]int
	inv   map[string]localrt.InvokeStats
}

func (e *env) snapshot() snapshot {
	return snapshot{calls: e.rt.Front.Calls.Snapshot(), inv: e.rt.Front.Invokes.Snapshot()}
}

// fnUse is one function's invocations in a window.
type fnUse struct {
	Count, Errors int
	Durations     []time.Duration
}

// BilledMs sums the durations rounded up to the millisecond, as Lambda bills.
func (u fnUse) BilledMs() int64 {
	var ms int64
	for _, d := range u.Durations {
		ms += int64(math.Ceil(float64(d) / float64(time.Millisecond)))
	}
	return ms
}

// usage is what happened between two snapshots.
type usage struct {
	Calls map[string]int   // "service:Action" -> n, through the front
	Fns   map[string]fnUse // by backend function name
}

func (s snapshot) until(after snapshot) usage {
	u := usage{Calls: map[string]int{}, Fns: map[string]fnUse{}}
	for k, v := range after.calls {
		if d := v - s.calls[k]; d > 0 {
			u.Calls[mecIDs.ReplaceAllString(k, "{id}")] += d
		}
	}
	for fn, a := range after.inv {
		b := s.inv[fn]
		if a.Count == b.Count {
			continue
		}
		name := strings.TrimPrefix(fn, "mecd-")
		u.Fns[name] = fnUse{Count: a.Count - b.Count, Errors: a.Errors - b.Errors,
			Durations: append([]time.Duration(nil), a.Durations[min(len(b.Durations), len(a.Durations)):]...)}
	}
	return u
}

// mecIDs folds the client's per-MEC API paths into one route.
var mecIDs = regexp.MustCompile(`mec-[0-9a-z]{26}`)

func (u usage) add(o usage) usage {
	out := usage{Calls: map[string]int{}, Fns: map[string]fnUse{}}
	for _, x := range []usage{u, o} {
		for k, v := range x.Calls {
			out.Calls[k] += v
		}
		for k, v := range x.Fns {
			f := out.Fns[k]
			f.Count += v.Count
			f.Errors += v.Errors
			f.Durations = append(f.Durations, v.Durations...)
			out.Fns[k] = f
		}
	}
	return out
}

func (u usage) invocations() int {
	n := 0
	for _, f := range u.Fns {
		n += f.Count
	}
	return n
}

func (u usage) billedMs() int64 {
	var ms int64
	for _, f := range u.Fns {
		ms += f.BilledMs()
	}
	return ms
}

// awsCalls counts the product's AWS API calls: everything the front saw
// except the Lambda invokes kumo itself makes (counted as invocations) and
// the client's requests to API Gateway.
func (u usage) awsCalls() int {
	n := 0
	for k, v := range u.Calls {
		if isProductCall(k) {
			n += v
		}
	}
	return n
}

func isProductCall(k string) bool {
	return k != "lambda:Invoke" && !strings.HasPrefix(k, "execute-api:")
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
