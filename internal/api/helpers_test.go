package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/sivchari/kumo"

	"github.com/mecd/mecd/internal/config"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/store"
)

// One in-process kumo serves the package (kumo servers in a process share
// state anyway); every env uses its own table and state machines.
var kumoURL string

func TestMain(m *testing.M) {
	srv := kumo.NewServer()
	kumoURL = srv.URL
	code := m.Run()
	srv.Close()
	if code == 0 {
		code = checkRecorded()
	}
	os.Exit(code)
}

var creds = credentials.NewStaticCredentialsProvider("a", "b", "")

// countingSFN is kumo's Step Functions, counting StartExecution calls; fail
// makes StartExecution fail as an unavailable service would.
type countingSFN struct {
	*sfn.Client
	starts atomic.Int64
	fail   atomic.Bool
}

func (c *countingSFN) StartExecution(ctx context.Context, in *sfn.StartExecutionInput, opts ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error) {
	c.starts.Add(1)
	if c.fail.Load() {
		return nil, &sfntypes.InvalidExecutionInput{Message: aws.String("injected failure")}
	}
	return c.Client.StartExecution(ctx, in, opts...)
}

// regionSSM is kumo's SSM, remembering the region each GetParameter was
// pointed at (kumo itself does not separate regions).
type regionSSM struct {
	*ssm.Client
	mu      sync.Mutex
	regions []string
}

func (c *regionSSM) GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	o := ssm.Options{Region: "us-east-1"}
	for _, fn := range opts {
		fn(&o)
	}
	c.mu.Lock()
	c.regions = append(c.regions, o.Region)
	c.mu.Unlock()
	return c.Client.GetParameter(ctx, in, opts...)
}

type env struct {
	h        *Handler
	st       *store.Store
	ddb      *dynamodb.Client
	sfn      *countingSFN
	ssm      *regionSSM
	logs     *bytes.Buffer
	clock    *clock
	provArn  string
	tearArn  string
	scaleArn string
}

// clock is a settable time for the handler and the store.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time                    { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration)           { c.off.Add(int64(d)) }
func (e *env) count(t testing.TB, kind string) int { return countItems(t, e, kind) }

var envSeq atomic.Int64

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	ddb := dynamodb.New(dynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String(kumoURL), Credentials: creds,
		DisableValidateResponseChecksum: true})
	sf := sfn.New(sfn.Options{Region: "us-east-1", BaseEndpoint: aws.String(kumoURL), Credentials: creds})
	sm := ssm.New(ssm.Options{Region: "us-east-1", BaseEndpoint: aws.String(kumoURL), Credentials: creds})
	uniq := fmt.Sprintf("%d-%d", time.Now().UnixNano(), envSeq.Add(1))
	table := "api-" + uniq
	if err := store.CreateTable(ctx, ddb, table); err != nil {
		t.Fatal(err)
	}
	// Stand-in workflows: a long Wait keeps executions RUNNING for the test.
	def := `{"StartAt":"Work","States":{"Work":{"Type":"Wait","Seconds":120,"End":true}}}`
	arns := make([]string, 3)
	for i, name := range []string{"provision-", "teardown-", "scale-"} {
		out, err := sf.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{Name: aws.String(name + uniq),
			Definition: aws.String(def), RoleArn: aws.String("arn:aws:iam::123456789012:role/sfn")})
		if err != nil {
			t.Fatal(err)
		}
		arns[i] = aws.ToString(out.StateMachineArn)
	}
	logs := &bytes.Buffer{} // slog's handler serializes its writes
	clk := &clock{}
	e := &env{ddb: ddb, sfn: &countingSFN{Client: sf}, ssm: &regionSSM{Client: sm}, logs: logs, clock: clk,
		provArn: arns[0], tearArn: arns[1], scaleArn: arns[2]}
	e.st = &store.Store{DB: ddb, Table: table, Retention: time.Hour, Now: clk.now}
	e.h = &Handler{
		Store: e.st,
		SFN:   e.sfn,
		SSM:   e.ssm,
		Env: config.Env{Region: "us-east-1", TableName: table, ProvisionSMArn: arns[0], TeardownSMArn: arns[1], ScaleSMArn: arns[2], CommandTimeout: 30 * time.Minute,
			AllowedRegions: []string{"us-east-1", "eu-west-1"}},
		Log: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now: clk.now,
	}
	return e
}

// countItems counts the table's items of a kind ("" for all).
func countItems(t testing.TB, e *env, kind string) int {
	t.Helper()
	n := 0
	in := &dynamodb.ScanInput{TableName: aws.String(e.st.Table)}
	for {
		out, err := e.ddb.Scan(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range out.Items {
			if k, _ := it["kind"].(*dtypes.AttributeValueMemberS); kind == "" || (k != nil && k.Value == kind) {
				n++
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return n
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// executions counts the executions a state machine has had.
func (e *env) executions(t testing.TB, smArn string) int {
	t.Helper()
	out, err := e.sfn.Client.ListExecutions(context.Background(), &sfn.ListExecutionsInput{StateMachineArn: aws.String(smArn)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Executions)
}

// req describes a request; ev renders it as API Gateway would.
type req struct {
	method  string
	path    string // concrete, e.g. /mecs/mec-...
	query   string // raw query string
	headers map[string]string
	body    string
	b64     bool
	style   eventStyle
	multi   map[string][]string // headers given more than once
	caller  string              // the signer's ARN (requestContext.identity.userArn)
}

type eventStyle int

// API Gateway's proxy event shapes: a greedy resource, a resource per
// route, and a custom domain's base path in front.
const (
	styleAWS      eventStyle = iota // concrete Path, Resource /{proxy+}
	styleResource                   // concrete Path, Resource /mecs/{id}..., PathParameters id
	styleStaged                     // concrete Path with a base path in front
	styleCount
)

func (r req) ev() events.APIGatewayProxyRequest {
	ev := events.APIGatewayProxyRequest{HTTPMethod: r.method, Headers: map[string]string{}, MultiValueHeaders: map[string][]string{}}
	ev.RequestContext.RequestID = "test"
	ev.RequestContext.Identity.UserArn = r.caller
	for k, v := range r.headers {
		ev.Headers[k] = v
		ev.MultiValueHeaders[k] = []string{v}
	}
	for k, vs := range r.multi {
		ev.Headers[k] = vs[len(vs)-1]
		ev.MultiValueHeaders[k] = vs
	}
	if r.query != "" {
		q, _ := url.ParseQuery(r.query)
		ev.QueryStringParameters = map[string]string{}
		ev.MultiValueQueryStringParameters = map[string][]string{}
		for k, vs := range q {
			ev.MultiValueQueryStringParameters[k] = vs
			ev.QueryStringParameters[k] = vs[len(vs)-1]
		}
	}
	ev.Body = r.body
	if r.b64 {
		ev.Body = base64.StdEncoding.EncodeToString([]byte(r.body))
		ev.IsBase64Encoded = true
	}
	proxy := strings.TrimPrefix(r.path, "/")
	switch r.style {
	case styleAWS:
		ev.Path, ev.Resource = r.path, "/{proxy+}"
		ev.PathParameters = map[string]string{"proxy": proxy}
	case styleResource:
		segs := strings.Split(proxy, "/")
		if len(segs) >= 2 && segs[0] == "mecs" {
			ev.PathParameters = map[string]string{"id": segs[1]}
			segs[1] = "{id}"
		}
		ev.Path = r.path
		ev.Resource = "/" + strings.Join(segs, "/")
	case styleStaged:
		ev.Path, ev.Resource = "/prod"+r.path, "/{proxy+}"
		ev.PathParameters = map[string]string{"proxy": proxy}
	}
	return ev
}

// recorded holds every answer the handler tests got, checked against the
// OpenAPI document once all tests ran (TestMain).
var (
	recMu    sync.Mutex
	recorded []recordedResponse
)

type recordedResponse struct {
	test    string
	method  string
	pattern string
	resp    events.APIGatewayProxyResponse
}

// routeOf is the route template a request resolves to ("" for none).
func routeOf(ev events.APIGatewayProxyRequest) string {
	r := &request{ev: &ev, method: ev.HTTPMethod}
	_, _ = r.resolve()
	return r.pattern
}

// do sends a request through Handle and records the answer.
func (e *env) do(t testing.TB, r req) events.APIGatewayProxyResponse {
	t.Helper()
	ev := r.ev()
	resp, err := e.h.Handle(context.Background(), ev)
	if err != nil {
		t.Fatalf("%s %s: Handle returned an error: %v", r.method, r.path, err)
	}
	recMu.Lock()
	recorded = append(recorded, recordedResponse{test: t.Name(), method: ev.HTTPMethod, pattern: routeOf(ev), resp: resp})
	recMu.Unlock()
	return resp
}

// quiet sends a request without recording the answer.
func (e *env) quiet(t testing.TB, r req) events.APIGatewayProxyResponse {
	t.Helper()
	resp, err := e.h.Handle(context.Background(), r.ev())
	if err != nil {
		t.Fatalf("%s %s: Handle returned an error: %v", r.method, r.path, err)
	}
	return resp
}

// mecOf decodes a record answer.
func mecOf(t testing.TB, resp events.APIGatewayProxyResponse) *mec.MEC {
	t.Helper()
	var m mec.MEC
	if err := json.Unmarshal([]byte(resp.Body), &m); err != nil {
		t.Fatalf("decode record (%d): %v: %s", resp.StatusCode, err, resp.Body)
	}
	return &m
}

// errOf decodes an error answer.
func errOf(t testing.TB, resp events.APIGatewayProxyResponse) *Error {
	t.Helper()
	var er ErrorResponse
	if err := json.Unmarshal([]byte(resp.Body), &er); err != nil || er.Error == nil {
		t.Fatalf("decode error (%d): %v: %s", resp.StatusCode, err, resp.Body)
	}
	return er.Error
}

func post(body string, headers ...string) req {
	r := req{method: "POST", path: "/mecs", body: body, headers: map[string]string{"Content-Type": "application/json"}}
	for i := 0; i+1 < len(headers); i += 2 {
		r.headers[headers[i]] = headers[i+1]
	}
	return r
}

func get(path string) req { return req{method: "GET", path: path} }
func del(path string) req { return req{method: "DELETE", path: path} }
