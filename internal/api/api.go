package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/mecd/mecd/internal/config"
	"github.com/mecd/mecd/internal/lifecycle"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/store"
)

// SSMAPI is the part of SSM the API calls: reading a kubeconfig.
type SSMAPI interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

var _ SSMAPI = (*ssm.Client)(nil)

// Store is what the API needs of the record store.
type Store interface {
	Create(ctx context.Context, m *mec.MEC, idem *store.Idempotency) error
	Get(ctx context.Context, id string) (*mec.MEC, error)
	Update(ctx context.Context, id string, fn func(*mec.MEC) error) (*mec.MEC, error)
	NameOwner(ctx context.Context, name string) (string, error)
	Idempotency(ctx context.Context, key string) (*store.Idempotency, error)
	List(ctx context.Context, q store.ListQuery) ([]*mec.MEC, string, error)
}

var _ Store = (*store.Store)(nil)

// Handler serves the API. Every field but Now, Checker and OwnerOnly is
// required.
type Handler struct {
	Store Store
	SFN   lifecycle.Starter
	// Checker, when set, checks each new spec against its region before the
	// API accepts it; when it cannot answer, the provisioning checks again.
	Checker SpecChecker
	// OwnerOnly (off when zero) keeps deleting a MEC and reading its
	// kubeconfig to its owner and the admin roles.
	OwnerOnly OwnerOnly
	// SSM reads kubeconfigs; each call is pointed at the MEC's region.
	SSM SSMAPI
	Env config.Env
	Log *slog.Logger
	Now func() time.Time
}

// Limits and names of the HTTP surface.
const (
	// MaxBodyBytes bounds a request body (after base64 decoding).
	MaxBodyBytes = 64 << 10
	// IdempotencyHeader names the optional header that makes POST /mecs repeatable.
	IdempotencyHeader = "Idempotency-Key"
	// MaxIdempotencyKeyLen bounds the key: it becomes part of a DynamoDB key.
	MaxIdempotencyKeyLen = 128
)

// Error codes, stable for clients to branch on.
const (
	CodeValidation           = "ValidationError"
	CodeNotFound             = "NotFound"
	CodeForbidden            = "Forbidden"
	CodeMethodNotAllowed     = "MethodNotAllowed"
	CodePayloadTooLarge      = "PayloadTooLarge"
	CodeNameTaken            = "NameTaken"
	CodeNotReady             = "NotReady"
	CodeBusy                 = "OperationInProgress"
	CodeIdempotencyKeyReused = "IdempotencyKeyReused"
	CodeInternal             = "InternalError"
	CodeUnavailable          = "ServiceUnavailable"
)

// Error is an API error answer. Fields (validation errors only) maps each
// offending field or parameter to what would be valid.
type Error struct {
	Status  int               `json:"-"`
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
	// header holds extra response headers (Allow, Retry-After).
	header map[string]string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error *Error `json:"error"`
}

// ListResponse is the body of GET /mecs.
type ListResponse struct {
	Items     []*mec.MEC `json:"items"`
	NextToken string     `json:"nextToken,omitempty"`
}

func validationError(msg string, fields map[string]string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeValidation, Message: msg, Fields: fields}
}

func unavailable(msg string) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: msg,
		header: map[string]string{"Retry-After": "5"}}
}

// op serves one method of one route.
type op func(h *Handler, ctx context.Context, r *request) (events.APIGatewayProxyResponse, error)

// route is one resource: its path template (as in openapi.yaml), its
// operations by method, and the query parameters they accept.
type route struct {
	pattern string
	methods map[string]op
	query   map[string][]string // method -> accepted query parameters
}

var routes = []route{
	{pattern: "/mecs",
		methods: map[string]op{http.MethodGet: (*Handler).list, http.MethodPost: (*Handler).create},
		query:   map[string][]string{http.MethodGet: {"status", "region", "limit", "nextToken"}}},
	{pattern: "/mecs/{id}",
		methods: map[string]op{http.MethodGet: (*Handler).get, http.MethodPatch: (*Handler).scale, http.MethodDelete: (*Handler).delete}},
	{pattern: "/mecs/{id}/kubeconfig",
		methods: map[string]op{http.MethodGet: (*Handler).kubeconfig}},
}

// request is a proxy event with its route resolved and inputs normalized.
type request struct {
	ev      *events.APIGatewayProxyRequest
	method  string
	pattern string
	params  map[string]string
	query   map[string]string
	header  map[string]string // lower-cased names
	// repeated holds the (lower-cased) headers given more than once.
	repeated map[string]bool
}

// caller is the principal API Gateway's SigV4 (AWS_IAM) check found: a
// user ARN, or an STS session ARN for role credentials; "" without one.
func (r *request) caller() string { return r.ev.RequestContext.Identity.UserArn }

// Handle serves one API Gateway proxy request. It never returns an error:
// client mistakes are 4xx answers, internal failures 5xx answers whose
// detail goes to the log only.
func (h *Handler) Handle(ctx context.Context, ev events.APIGatewayProxyRequest) (resp events.APIGatewayProxyResponse, _ error) {
	start := time.Now()
	r := &request{ev: &ev, method: ev.HTTPMethod}
	defer func() {
		if p := recover(); p != nil {
			h.log().ErrorContext(ctx, "panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			resp = errorResponse(&Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"})
		}
		h.log().InfoContext(ctx, "request", "method", r.method, "route", r.pattern, "status", resp.StatusCode,
			"clusterId", clip(r.params["id"], 64), "requestId", ev.RequestContext.RequestID,
			"caller", r.caller(), "ms", time.Since(start).Milliseconds())
	}()
	o, err := r.resolve()
	if err == nil {
		resp, err = o(h, ctx, r)
	}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			h.log().ErrorContext(ctx, "internal error", "method", r.method, "route", r.pattern,
				"clusterId", clip(r.params["id"], 64), "error", err)
			e = &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error; try again later"}
		}
		return errorResponse(e), nil
	}
	return resp, nil
}

func (h *Handler) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now().UTC()
	}
	return time.Now().UTC()
}

// concretePath is the request path without its stage or base path: API
// Gateway puts the concrete path in Path, behind a custom domain's base
// path mapping with that base path in front.
func concretePath(ev *events.APIGatewayProxyRequest) string {
	p := ev.Path
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	// A stage (or base path) in front: "/prod/mecs/..." -> "/mecs/...".
	if p != "/mecs" && !strings.HasPrefix(p, "/mecs/") {
		if i := strings.Index(p[1:], "/"); i >= 0 {
			p = p[1+i:]
		}
	}
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	return p
}

// resolve finds the route and operation and normalizes the inputs.
func (r *request) resolve() (op, error) {
	path := concretePath(r.ev)
	var rt *route
	for i := range routes {
		if params, ok := match(routes[i].pattern, path); ok {
			rt, r.params = &routes[i], params
			break
		}
	}
	if rt == nil {
		return nil, &Error{Status: http.StatusNotFound, Code: CodeNotFound,
			Message: "no such resource; the API serves /mecs, /mecs/{id} and /mecs/{id}/kubeconfig"}
	}
	r.pattern = rt.pattern
	o, ok := rt.methods[r.method]
	if !ok {
		allow := allowed(rt)
		return nil, &Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed,
			Message: fmt.Sprintf("%s does not support %s; use %s", rt.pattern, clip(r.method, 16), allow),
			header:  map[string]string{"Allow": allow}}
	}
	if id, ok := r.params["id"]; ok && !mec.ValidID(id) {
		return nil, validationError(fmt.Sprintf("%q is not a MEC id", clip(id, 64)),
			map[string]string{"id": `must be a MEC id: "mec-" followed by 26 lowercase letters or digits`})
	}
	r.header, r.repeated = lowerHeaders(r.ev)
	var err error
	if r.query, err = queryParams(r.ev, rt.query[r.method]); err != nil {
		return nil, err
	}
	return o, nil
}

// match matches a path against a template whose {name} segments match any
// one non-empty segment.
func match(pattern, path string) (map[string]string, bool) {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return nil, false
	}
	params := map[string]string{}
	for i := range ps {
		if strings.HasPrefix(ps[i], "{") {
			if xs[i] == "" {
				return nil, false
			}
			params[strings.Trim(ps[i], "{}")] = xs[i]
		} else if ps[i] != xs[i] {
			return nil, false
		}
	}
	return params, true
}

func allowed(rt *route) string {
	ms := make([]string, 0, len(rt.methods))
	for m := range rt.methods {
		ms = append(ms, m)
	}
	slices.Sort(ms)
	return strings.Join(ms, ", ")
}

// lowerHeaders indexes headers by lower-cased name (clients and API Gateway
// do not agree on case) and notes the ones given more than once.
func lowerHeaders(ev *events.APIGatewayProxyRequest) (map[string]string, map[string]bool) {
	hs := make(map[string]string, len(ev.Headers))
	repeated := map[string]bool{}
	for k, v := range ev.Headers {
		hs[strings.ToLower(k)] = v
	}
	for k, vs := range ev.MultiValueHeaders {
		k = strings.ToLower(k)
		if len(vs) > 1 {
			repeated[k] = true
		}
		if _, ok := hs[k]; !ok && len(vs) > 0 {
			hs[k] = vs[len(vs)-1]
		}
	}
	return hs, repeated
}

// queryParams returns the single value of each accepted parameter; unknown
// or repeated parameters are refused. An empty value counts as absent, as
// clients that build URLs from templates send them.
func queryParams(ev *events.APIGatewayProxyRequest, accepted []string) (map[string]string, error) {
	fields := map[string]string{}
	q := map[string]string{}
	check := func(k string, n int, v string) {
		switch {
		case !slices.Contains(accepted, k):
			if len(accepted) == 0 {
				fields[clip(k, 64)] = "unknown query parameter; this call takes none"
			} else {
				fields[clip(k, 64)] = "unknown query parameter; valid ones are " + strings.Join(accepted, ", ")
			}
		case n > 1:
			fields[k] = "is given more than once; give it once"
		case v != "":
			q[k] = v
		}
	}
	for k, vs := range ev.MultiValueQueryStringParameters {
		v := ""
		if len(vs) > 0 {
			v = vs[len(vs)-1]
		}
		check(k, len(vs), v)
	}
	for k, v := range ev.QueryStringParameters {
		if _, seen := ev.MultiValueQueryStringParameters[k]; !seen {
			check(k, 1, v)
		}
	}
	if len(fields) > 0 {
		return nil, validationError("invalid query parameters", fields)
	}
	return q, nil
}

// body returns the request body, decoded if API Gateway base64-encoded it.
func (r *request) body() ([]byte, error) {
	raw := r.ev.Body
	tooLarge := func(n int) error {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodePayloadTooLarge,
			Message: fmt.Sprintf("the body is %d bytes; at most %d (64 KiB) are accepted", n, MaxBodyBytes)}
	}
	if !r.ev.IsBase64Encoded {
		if len(raw) > MaxBodyBytes {
			return nil, tooLarge(len(raw))
		}
		return []byte(raw), nil
	}
	// DecodedLen is an upper bound (padding): refuse early only what cannot fit.
	if n := base64.StdEncoding.DecodedLen(len(raw)); n > MaxBodyBytes+2 {
		return nil, tooLarge(n)
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, validationError("the body is not valid base64", map[string]string{"body": "is marked base64-encoded but is not valid base64"})
	}
	if len(b) > MaxBodyBytes {
		return nil, tooLarge(len(b))
	}
	return b, nil
}

// clip shortens user input quoted back in a message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

var jsonHeaders = map[string]string{
	"Content-Type":           "application/json",
	"Cache-Control":          "no-store",
	"X-Content-Type-Options": "nosniff",
}

func jsonResponse(status int, v any, extra map[string]string) (events.APIGatewayProxyResponse, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return events.APIGatewayProxyResponse{}, fmt.Errorf("encode response: %w", err)
	}
	hs := make(map[string]string, len(jsonHeaders)+len(extra))
	for k, v := range jsonHeaders {
		hs[k] = v
	}
	for k, v := range extra {
		hs[k] = v
	}
	return events.APIGatewayProxyResponse{StatusCode: status, Headers: hs, Body: string(b)}, nil
}

func errorResponse(e *Error) events.APIGatewayProxyResponse {
	resp, err := jsonResponse(e.Status, ErrorResponse{Error: e}, e.header)
	if err != nil { // a map of strings and strings: cannot happen
		return events.APIGatewayProxyResponse{StatusCode: http.StatusInternalServerError, Headers: jsonHeaders,
			Body: `{"error":{"code":"InternalError","message":"internal error"}}`}
	}
	return resp
}
