package localrt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mecd/mecd/test/iameval"
	"github.com/mecd/mecd/test/nodesim"
	"github.com/mecd/mecd/test/nodesim/ec2sim"
	"github.com/mecd/mecd/test/nodesim/fault"
	"github.com/mecd/mecd/test/nodesim/ssmsim"
)

// FrontAddr is where kumo's Step Functions, EventBridge and API Gateway call
// Lambda (http://localhost:4566, whatever port kumo itself has).
const FrontAddr = "127.0.0.1:4566"

// SimHandlers are the parts of the node simulator the front routes to.
type SimHandlers interface {
	EC2() http.Handler
	RunCommand() http.Handler
	Control() http.Handler
	// Node is the instance whose role credentials carry accessKeyID
	// (ok=false if the key is not a node's).
	Node(accessKeyID string) (nodesim.NodeCaller, bool)
	// CredentialExpired reports whether a node's access key has expired.
	CredentialExpired(accessKeyID string) bool
	// ProfileCreated tells EC2 an instance profile was just created in IAM
	// (which kumo serves): IAM propagates it to EC2 only after a while.
	ProfileCreated(name string)
	// Caller is the host whose instance credentials signed a call (nil if
	// none), for host-scoped API faults.
	Caller(accessKeyID string) *fault.Caller
	// InstanceTags and GroupTags are an EC2 resource's tags now.
	InstanceTags(id string) map[string]string
	GroupTags(id string) map[string]string
	KMSKeyTags(arn string) map[string]string
}

// runCommandActions are the SSM actions kumo lacks (Run Command and
// documents), answered by the simulator.
var runCommandActions = func() map[string]bool {
	m := map[string]bool{}
	for _, a := range ssmsim.Actions {
		m[a] = true
	}
	return m
}()

// Front is the local runtime's entry point on 127.0.0.1:4566. It routes
// to kumo or the node simulator and papers over the kumo gaps that would make
// local runs behave unlike AWS (DESIGN section 8).
type Front struct {
	kumo   *url.URL
	proxy  *httputil.ReverseProxy
	sim    SimHandlers
	nodes  *nodeAuth
	faults *fault.Injector
	log    *slog.Logger

	Calls   *CallCounter
	Polls   *PollTracker
	Invokes *InvokeTracker
	Serving *ServingTracker
	Secrets *SecretLedger
	// Auth records what each function's calls needed authorised, for the
	// IAM proof.
	Auth *AuthLog

	mu      sync.Mutex
	callers map[string]string // access key -> principal ARN

	srv *http.Server
	ln  net.Listener
}

// NewFront builds a front for kumo at kumoURL.
func NewFront(kumoURL string, sim SimHandlers, ev *iameval.Evaluator, faults *fault.Injector, log *slog.Logger) (*Front, error) {
	u, err := url.Parse(kumoURL)
	if err != nil {
		return nil, fmt.Errorf("front: kumo url: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	f := &Front{kumo: u, sim: sim, nodes: newNodeAuth(ev), faults: faults, log: log, Calls: NewCallCounter(), Polls: NewPollTracker(), Invokes: NewInvokeTracker(), Serving: NewServingTracker(), Secrets: NewSecretLedger(), Auth: NewAuthLog(), callers: map[string]string{}}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		pr.Out.Host = pr.In.Host // keep <apiId>.execute-api.localhost for kumo's API Gateway
	}}
	rp.ModifyResponse = f.modifyResponse
	rp.FlushInterval = -1
	// Lambda runtime long-polls idle for as long as a process lives.
	rp.Transport = &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		f.log.Warn("front: kumo unreachable", "path", r.URL.Path, "err", err)
		http.Error(w, "local runtime: kumo unreachable", http.StatusBadGateway)
	}
	f.proxy = rp
	return f, nil
}

// Listen binds addr. If the port is taken it says by what and stops.
func (f *Front) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("front: %s is in use%s; stop that process and retry: %w", addr, describePortOwner(addr), err)
	}
	f.ln = ln
	f.srv = &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := f.srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			f.log.Error("front stopped", "err", err)
		}
	}()
	return nil
}

// URL is the front's base URL.
func (f *Front) URL() string { return "http://" + f.ln.Addr().String() }

// Close stops listening.
func (f *Front) Close() error {
	if f.srv == nil {
		return nil
	}
	return f.srv.Close()
}

var (
	invokePath = regexp.MustCompile(`^/2015-03-31/functions/([^/]+)/invocations$`)
	credScope  = regexp.MustCompile(`Credential=([^/]+)/[0-9]+/([^/]+)/([^/]+)/aws4_request`)
	// A Lambda process posting an invocation's result to the Runtime API.
	runtimeResult = regexp.MustCompile(`/runtime/invocation/([^/]+)/(response|error)$`)
)

// LocalCaller is the principal the local runtime's own access key stands for.
const LocalCaller = "arn:aws:sts::" + Account + ":assumed-role/mecd-local-operator/tester"

// AddCaller names the IAM principal behind an access key, for the identity
// API Gateway reports to the API function (tests sign as several callers).
func (f *Front) AddCaller(accessKey, arn string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callers[accessKey] = arn
}

func (f *Front) callerOf(accessKey string) (string, bool) {
	if accessKey == AccessKey {
		return LocalCaller, true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	arn, ok := f.callers[accessKey]
	return arn, ok
}

// ServeHTTP routes one request.
func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		f.sim.Control().ServeHTTP(w, r)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/_runtime/") {
		f.serveRuntime(w, r)
		return
	}
	call, err := classify(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.Calls.Add(call.Service, call.Action)
	f.Auth.notePaths(call)
	if fn, ok := strings.CutPrefix(call.AccessKey, functionKeyPrefix); ok {
		f.Auth.record(fn, call, f.sim)
	}
	simRunCommand := call.Service == "ssm" && runCommandActions[call.Action]
	// The Run Command simulator draws its own API faults; kumo's own calls
	// (Step Functions, API Gateway and EventBridge invoking Lambda) stand
	// for AWS's internals, which the faults are not about.
	if !simRunCommand && !fromKumo(r) {
		if code, ok := f.faults.APIFault(call.Service, call.Action, f.sim.Caller(call.AccessKey)); ok {
			writeFault(w, call, code)
			return
		}
	}
	if call.Service == "ssm" && call.AccessKey != "" {
		if f.sim.CredentialExpired(call.AccessKey) {
			writeJSONError(w, http.StatusBadRequest, "ExpiredTokenException", "The security token included in the request is expired")
			return
		}
		if node, ok := f.sim.Node(call.AccessKey); ok {
			denied, err := f.nodes.decide(r.Context(), call, node)
			if err != nil {
				http.Error(w, "local runtime: "+err.Error(), http.StatusInternalServerError)
				return
			}
			if denied != "" {
				writeJSONError(w, http.StatusBadRequest, "AccessDeniedException", denied)
				return
			}
		}
	}
	if call.Service == "ssm" && call.Action == "PutParameter" {
		f.Secrets.note(call.Body)
	}
	if call.Service == "iam" {
		form, _ := url.ParseQuery(string(call.Body))
		f.nodes.note(call.Action, form)
	}
	if call.Service == "iam" && call.Action == "CreateInstanceProfile" {
		// Noted on success only (modifyResponse): a repeated create changes nothing.
		form, _ := url.ParseQuery(string(call.Body))
		r.Header.Set(profileHeader, form.Get("InstanceProfileName"))
	}
	if call.Service == "iam" && (call.Action == "DeleteRole" || call.Action == "DeleteInstanceProfile") {
		// Forgotten on success only (modifyResponse): what a later call
		// names by a deleted role's name, IAM authorizes without its path.
		form, _ := url.ParseQuery(string(call.Body))
		r.Header.Set(goneHeader, call.Action+" "+form.Get("RoleName")+form.Get("InstanceProfileName"))
	}
	if call.Service == "lambda" && fromKumo(r) {
		if err := rewriteProxyEvent(r, f.callerOf); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	switch {
	case call.Service == "ec2":
		f.sim.EC2().ServeHTTP(w, r)
	case simRunCommand:
		f.sim.RunCommand().ServeHTTP(w, r)
	default:
		f.proxy.ServeHTTP(w, r)
	}
}

// serveRuntime proxies the Lambda Runtime API and notes every process that is
// waiting for work: kumo routes invokes (and EventBridge deliveries) to a
// function only after its first poll.
func (f *Front) serveRuntime(w http.ResponseWriter, r *http.Request) {
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/_runtime/"), "/", 2)
	fn, slot := splitSlot(parts[0])
	if slot != "" && len(parts) == 2 {
		// kumo knows the function, not the process.
		r.URL.Path = "/_runtime/" + fn + "/" + parts[1]
		r.URL.RawPath = ""
		r.Header.Set(slotHeader, slot)
	}
	if strings.HasSuffix(r.URL.Path, "/runtime/invocation/next") {
		f.Polls.begin(fn)
		defer f.Polls.end(fn)
	} else if m := runtimeResult.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodPost {
		f.Serving.end(fn, slot, m[1])
		f.Invokes.finish(fn, m[1], m[2] == "error")
	}
	f.proxy.ServeHTTP(w, r)
}

// Call identifies one AWS API request.
type Call struct {
	Service, Action, Region, AccessKey string
	Body                               []byte
	// Function is the Lambda function an Invoke names.
	Function string
	Protocol string // "ec2", "json", "rest-json", "execute-api", "other"
}

// classify reads enough of r to name the service and action; it leaves r.Body readable.
func classify(r *http.Request) (Call, error) {
	var c Call
	if m := credScope.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		c.AccessKey, c.Region, c.Service = m[1], m[2], m[3]
	}
	if strings.Contains(r.Host, ".execute-api.") {
		c.Service, c.Action, c.Protocol = "execute-api", r.Method+" "+r.URL.Path, "execute-api"
		return c, nil
	}
	if m := invokePath.FindStringSubmatch(r.URL.Path); m != nil {
		c.Service, c.Action, c.Protocol, c.Function = "lambda", "Invoke", "rest-json", m[1]
		return c, nil
	}
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		if i := strings.LastIndex(t, "."); i >= 0 {
			c.Action = t[i+1:]
		}
		c.Protocol = "json"
		// The body names the resources (and, for the IAM proof, the tags).
		if c.Service == "ssm" || c.Service == "dynamodb" || c.Service == "states" {
			body, err := readBody(r)
			if err != nil {
				return c, err
			}
			c.Body = body
		}
		return c, nil
	}
	// The query protocol (EC2, IAM, STS, ...) names the action in the form body.
	if c.Service == "ec2" || strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		body, err := readBody(r)
		if err != nil {
			return c, err
		}
		form, _ := url.ParseQuery(string(body))
		c.Action = form.Get("Action")
		c.Body = body
		if c.Service == "" && form.Get("Version") == "2016-11-15" {
			c.Service = "ec2"
		}
		c.Protocol = "ec2"
		if c.Service != "ec2" {
			c.Protocol = "query"
		}
		return c, nil
	}
	c.Protocol = "other"
	c.Action = r.Method + " " + r.URL.Path
	return c, nil
}

func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return body, nil
}

// writeFault answers an injected API error in the service's own wire format.
func writeFault(w http.ResponseWriter, c Call, code string) {
	msg := "Rate exceeded"
	if code == "RequestLimitExceeded" {
		msg = "Request limit exceeded."
	}
	switch c.Protocol {
	case "ec2":
		status := http.StatusBadRequest
		if code == "RequestLimitExceeded" || code == "InternalError" || code == "Unavailable" {
			status = http.StatusServiceUnavailable
		}
		ec2sim.WriteError(w, status, code, msg)
	case "query":
		// The other query-protocol services (IAM, STS) use ErrorResponse:
		// Throttling is a 400 (Sender), ServiceFailure a 500 (Receiver).
		status, typ := http.StatusBadRequest, "Sender"
		if code == "ServiceFailure" || code == "InternalFailure" {
			status, typ = http.StatusInternalServerError, "Receiver"
		}
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<ErrorResponse><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>local</RequestId></ErrorResponse>", typ, code, msg)
	case "rest-json":
		// Lambda: TooManyRequestsException is a 429, ServiceException a 500.
		status := http.StatusTooManyRequests
		if code == "ServiceException" || code == "InternalServerError" {
			status = http.StatusInternalServerError
		}
		w.Header().Set("X-Amzn-ErrorType", code)
		writeJSONError(w, status, code, msg)
	default:
		status := http.StatusBadRequest
		if code == "InternalServerError" || code == "InternalError" || code == "ServiceUnavailable" {
			status = http.StatusInternalServerError
		}
		writeJSONError(w, status, code, msg)
	}
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}

// slotHeader carries a runtime request's process slot to its answer.
const slotHeader = "X-Mecd-Sim-Slot"

// profileHeader carries a CreateInstanceProfile call's profile name from the
// request to its answer.
const profileHeader = "X-Mecd-Sim-Profile"

// goneHeader carries a DeleteRole or DeleteInstanceProfile call's action
// and name from the request to its answer.
const goneHeader = "X-Mecd-Sim-Gone"

// fromKumo tells kumo's own calls (Step Functions, API Gateway and
// EventBridge invoking Lambda) from the SDK's.
func fromKumo(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Authorization"), "Credential=kumo/")
}

// modifyResponse fixes kumo answers that differ from AWS in ways the product depends on.
func (f *Front) modifyResponse(resp *http.Response) error {
	req := resp.Request
	// The event is about to reach the process: its handler starts now.
	if strings.HasSuffix(req.URL.Path, "/runtime/invocation/next") {
		if id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id"); id != "" {
			f.Invokes.start(id)
			if slot := req.Header.Get(slotHeader); slot != "" {
				fn, _ := splitSlot(strings.SplitN(strings.TrimPrefix(req.URL.Path, "/_runtime/"), "/", 2)[0])
				f.Serving.begin(fn, slot, id)
			}
		}
	}
	// kumo's Step Functions and API Gateway ignore X-Amz-Function-Error, so a
	// failing Lambda would look like a success: make it a failed invoke, which
	// kumo reports as States.TaskFailed (reaching Catch on States.ALL). Only
	// kumo's own calls are rewritten; SDK callers see the AWS answer.
	if invokePath.MatchString(req.URL.Path) && resp.Header.Get("X-Amz-Function-Error") != "" && fromKumo(req) {
		resp.StatusCode = http.StatusInternalServerError
		resp.Status = "500 Internal Server Error"
	}
	if name := req.Header.Get(profileHeader); name != "" && resp.StatusCode == http.StatusOK {
		f.sim.ProfileCreated(name)
	}
	if action, name, ok := strings.Cut(req.Header.Get(goneHeader), " "); ok && resp.StatusCode == http.StatusOK {
		f.Auth.forget(action, name)
	}
	// kumo's DynamoDB sends no X-Amz-Crc32; AWS always does and the SDK checks it.
	if m := credScope.FindStringSubmatch(req.Header.Get("Authorization")); m != nil && m[3] == "dynamodb" &&
		resp.Header.Get("X-Amz-Crc32") == "" && resp.Header.Get("Content-Encoding") == "" {
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return fmt.Errorf("read dynamodb answer: %w", err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.Header.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
	}
	return nil
}
