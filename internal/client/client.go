package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/spec"
)

// SigningService is the SigV4 service name of API Gateway invocations.
const SigningService = "execute-api"

// MaxResponseBytes bounds what the client reads from one answer: the API
// answers a page of records at most, far below this.
const MaxResponseBytes = 16 << 20

// Client calls the API. Build it with New, or fill every field.
type Client struct {
	// Endpoint is the API's base URL including the stage, such as
	// https://abc.execute-api.eu-west-1.amazonaws.com/prod.
	Endpoint *url.URL
	// Region is the signing region: the API's region.
	Region      string
	Credentials aws.CredentialsProvider
	Signer      *v4.Signer
	HTTP        *http.Client
	UserAgent   string
	// Now is the signing clock; nil means time.Now.
	Now func() time.Time
	// Retries is how many times a request is repeated after a throttled,
	// unavailable or unreachable answer (POSTs carry an Idempotency-Key, so
	// every request is safe to repeat).
	Retries int
}

// Error is an API error answer ({"error":{"code","message","fields"}}), or a
// non-JSON failure from something in front of the API (API Gateway's own
// 403 for a bad signature has a {"message"} body).
type Error struct {
	Status  int               `json:"-"`
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%d %s)", e.Message, e.Status, e.Code)
	for _, k := range e.FieldNames() {
		fmt.Fprintf(&b, "; %s: %s", k, e.Fields[k])
	}
	return b.String()
}

// FieldNames returns the names in Fields, sorted.
func (e *Error) FieldNames() []string {
	ks := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// ParseError turns an error answer into an *Error, whatever its shape.
func ParseError(status int, body []byte) *Error {
	var env struct {
		Error *Error `json:"error"`
		// API Gateway's own answers (missing or bad signature, throttling).
		Message string `json:"message"`
		Msg     string `json:"Message"`
	}
	if json.Unmarshal(body, &env) == nil {
		if env.Error != nil && env.Error.Message != "" {
			env.Error.Status = status
			return env.Error
		}
		if m := env.Message + env.Msg; m != "" {
			return &Error{Status: status, Code: gatewayCode(status), Message: m}
		}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &Error{Status: status, Code: gatewayCode(status), Message: msg}
}

func gatewayCode(status int) string {
	switch status {
	case http.StatusForbidden:
		return "AccessDenied"
	case http.StatusTooManyRequests:
		return "Throttled"
	default:
		return strings.ReplaceAll(http.StatusText(status), " ", "")
	}
}

// Send signs and sends one request to the API and returns the answer with
// its body read (at most MaxResponseBytes). path is relative to the
// endpoint ("/mecs/mec-..."); rawQuery is already encoded. A non-2xx answer
// is not an error here: callers that want one use Do.
func (c *Client) Send(ctx context.Context, method, path, rawQuery string, body []byte, header http.Header) (*http.Response, []byte, error) {
	var (
		resp *http.Response
		b    []byte
		err  error
	)
	for attempt := 0; ; attempt++ {
		resp, b, err = c.send(ctx, method, path, rawQuery, body, header)
		if attempt >= c.Retries || !retryable(resp, err) || ctx.Err() != nil {
			return resp, b, err
		}
		wait := time.Duration(1<<attempt) * 200 * time.Millisecond
		if resp != nil {
			if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 && s <= 30 {
				wait = time.Duration(s) * time.Second
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return resp, b, err
		case <-t.C:
		}
	}
}

func retryable(resp *http.Response, err error) bool {
	if err != nil {
		// Connection failures, not a request the caller cancelled.
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func (c *Client) send(ctx context.Context, method, path, rawQuery string, body []byte, header http.Header) (*http.Response, []byte, error) {
	req, err := c.NewRequest(ctx, method, path, rawQuery, body, header)
	if err != nil {
		return nil, nil, err
	}
	if err := c.Sign(ctx, req, body); err != nil {
		return nil, nil, err
	}
	hc := c.HTTP
	if hc == nil {
		hc = NewHTTPClient()
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	if err != nil {
		return resp, nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	return resp, b, nil
}

// NewRequest builds an unsigned request to the endpoint.
func (c *Client) NewRequest(ctx context.Context, method, path, rawQuery string, body []byte, header http.Header) (*http.Request, error) {
	if c.Endpoint == nil {
		return nil, errors.New("client: no API endpoint")
	}
	u := *c.Endpoint
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	u.RawQuery = rawQuery
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	for k, vs := range header {
		req.Header[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	return req, nil
}

// Sign adds the SigV4 Authorization (and, for temporary credentials, the
// X-Amz-Security-Token) to req, whose body is body.
func (c *Client) Sign(ctx context.Context, req *http.Request, body []byte) error {
	if c.Credentials == nil {
		return errors.New("client: no AWS credentials provider")
	}
	creds, err := c.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("get AWS credentials: %w", err)
	}
	signer := c.Signer
	if signer == nil {
		signer = v4.NewSigner()
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	sum := sha256.Sum256(body)
	if err := signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), SigningService, c.Region, now().UTC()); err != nil {
		return fmt.Errorf("sign request: %w", err)
	}
	return nil
}

// Do sends a request and decodes a 2xx JSON answer into out (nil: ignore
// the body). Any other answer is an *Error.
func (c *Client) Do(ctx context.Context, method, path, rawQuery string, body []byte, header http.Header, out any) (*http.Response, error) {
	resp, b, err := c.Send(ctx, method, path, rawQuery, body, header)
	if err != nil {
		return resp, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp, ParseError(resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return resp, nil
}

// Create sends a spec (the JSON body as given: the API applies defaults
// and validates it). key is the Idempotency-Key; "" makes a random one so
// that the client's own retries cannot create two MECs.
func (c *Client) Create(ctx context.Context, specJSON []byte, key string) (*mec.MEC, error) {
	if key == "" {
		key = NewIdempotencyKey()
	}
	var m mec.MEC
	if _, err := c.Do(ctx, http.MethodPost, "/mecs", "", specJSON, http.Header{"Idempotency-Key": {key}}, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// ListOptions filters GET /mecs.
type ListOptions struct {
	Status    string
	Region    string
	Limit     int
	NextToken string
}

// ListPage is one page of GET /mecs.
type ListPage struct {
	Items     []*mec.MEC `json:"items"`
	NextToken string     `json:"nextToken,omitempty"`
}

// List returns one page.
func (c *Client) List(ctx context.Context, o ListOptions) (*ListPage, error) {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("status", o.Status)
	set("region", o.Region)
	set("nextToken", o.NextToken)
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	var p ListPage
	if _, err := c.Do(ctx, http.MethodGet, "/mecs", q.Encode(), nil, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// ListAll follows nextToken to the last page.
func (c *Client) ListAll(ctx context.Context, o ListOptions) ([]*mec.MEC, error) {
	if o.Limit == 0 {
		o.Limit = 100
	}
	var all []*mec.MEC
	for page := 0; ; page++ {
		p, err := c.List(ctx, o)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Items...)
		if p.NextToken == "" {
			return all, nil
		}
		if p.NextToken == o.NextToken || page > 10000 {
			return nil, fmt.Errorf("list mecs: the API returned the same nextToken again")
		}
		o.NextToken = p.NextToken
	}
}

// Get returns one MEC.
func (c *Client) Get(ctx context.Context, id string) (*mec.MEC, error) {
	var m mec.MEC
	if _, err := c.Do(ctx, http.MethodGet, "/mecs/"+url.PathEscape(id), "", nil, nil, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Delete starts the MEC's teardown (or finds it running).
func (c *Client) Delete(ctx context.Context, id string) (*mec.MEC, error) {
	var m mec.MEC
	if _, err := c.Do(ctx, http.MethodDelete, "/mecs/"+url.PathEscape(id), "", nil, nil, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Scale asks for the MEC to have nodeCount nodes (PATCH /mecs/{id}); ha
// nil leaves the HA rule to the API (HA from 3 nodes), false accepts a
// control plane without a quorum to spare.
func (c *Client) Scale(ctx context.Context, id string, nodeCount int, ha *bool) (*mec.MEC, error) {
	body, err := json.Marshal(spec.Scale{NodeCount: nodeCount, HAControlPlane: ha})
	if err != nil {
		return nil, fmt.Errorf("scale body: %w", err)
	}
	var m mec.MEC
	if _, err := c.Do(ctx, http.MethodPatch, "/mecs/"+url.PathEscape(id), "", body, http.Header{"Content-Type": {"application/json"}}, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Kubeconfig returns the READY MEC's kubeconfig (YAML; a secret).
func (c *Client) Kubeconfig(ctx context.Context, id string) ([]byte, error) {
	resp, b, err := c.Send(ctx, http.MethodGet, "/mecs/"+url.PathEscape(id)+"/kubeconfig", "", nil, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, ParseError(resp.StatusCode, b)
	}
	return b, nil
}

var reID = regexp.MustCompile(`^mec-[0-9a-z]{26}$`)

// IsID reports whether s has the shape of a MEC id. A name of that very
// shape is taken for an id: ids are what the API is addressed by.
func IsID(s string) bool { return reID.MatchString(s) }

// ErrNoSuchName is returned by Resolve for a name no live MEC has.
var ErrNoSuchName = errors.New("no live MEC has this name")

// Resolve returns the MEC a user named by id or by name. Names are unique
// among MECs that are not DELETED, so a name finds at most one of those;
// failing that, the newest DELETED MEC of that name.
func (c *Client) Resolve(ctx context.Context, idOrName string) (*mec.MEC, error) {
	if IsID(idOrName) {
		return c.Get(ctx, idOrName)
	}
	// One page holds every MEC of a small deployment; a large one keeps
	// many DELETED records (for audit), so look among the live ones by
	// status rather than read them all.
	first, err := c.List(ctx, ListOptions{Limit: 100})
	if err != nil {
		return nil, err
	}
	if m, deleted := pick(first.Items, idOrName); m != nil || first.NextToken == "" {
		return found(m, deleted, idOrName)
	}
	for _, st := range []mec.Status{mec.Creating, mec.Ready, mec.Failed, mec.Deleting} {
		ms, err := c.ListAll(ctx, ListOptions{Status: string(st)})
		if err != nil {
			return nil, err
		}
		if m, _ := pick(ms, idOrName); m != nil {
			return m, nil
		}
	}
	ms, err := c.ListAll(ctx, ListOptions{Status: string(mec.Deleted)})
	if err != nil {
		return nil, err
	}
	_, deleted := pick(ms, idOrName)
	return found(nil, deleted, idOrName)
}

// pick finds the live MEC named name, and the newest DELETED one.
func pick(ms []*mec.MEC, name string) (live, deleted *mec.MEC) {
	for _, m := range ms {
		if m.Name != name {
			continue
		}
		if m.Status != mec.Deleted {
			return m, deleted
		}
		if deleted == nil {
			deleted = m // lists are newest first
		}
	}
	return nil, deleted
}

func found(live, deleted *mec.MEC, name string) (*mec.MEC, error) {
	switch {
	case live != nil:
		return live, nil
	case deleted != nil:
		return deleted, nil
	}
	return nil, fmt.Errorf("%q: %w (give its id, or see mecctl list --all)", name, ErrNoSuchName)
}

// NewIdempotencyKey returns a random UUID (version 4).
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
