package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
)

func TestEndpointRegion(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]string{
		"abc123.execute-api.eu-west-1.amazonaws.com":     "eu-west-1",
		"ABC123.execute-api.US-GOV-WEST-1.amazonaws.com": "us-gov-west-1",
		"abc.execute-api.cn-north-1.amazonaws.com.cn":    "cn-north-1",
		"abc.execute-api.localhost":                      "",
		"api.example.com":                                "",
		"abc.execute-api.eu-west-1.amazonaws.com.evil":   "",
	} {
		if got := EndpointRegion(host); got != want {
			t.Errorf("EndpointRegion(%q) = %q, want %q", host, got, want)
		}
	}
}

func TestLocalDialAddr(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"abc.execute-api.localhost:4566": "127.0.0.1:4566",
		"localhost:8080":                 "127.0.0.1:8080",
		"LOCALHOST.:80":                  "127.0.0.1:80",
		"localhost.example.com:443":      "localhost.example.com:443",
		"notlocalhost:443":               "notlocalhost:443",
		"10.0.0.1:443":                   "10.0.0.1:443",
		"no-port":                        "no-port",
	} {
		if got := LocalDialAddr(addr); got != want {
			t.Errorf("LocalDialAddr(%q) = %q, want %q", addr, got, want)
		}
	}
}

// TestLocalHostIsDialledOnLoopback: a *.localhost URL reaches a server on
// 127.0.0.1 with its own Host header, as the local runtime's API needs.
func TestLocalHostIsDialledOnLoopback(t *testing.T) {
	t.Parallel()
	var host atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { host.Store(r.Host) }))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	hc := NewHTTPClient()
	req, _ := http.NewRequest("GET", "http://abc123.execute-api.localhost:"+u.Port()+"/", nil)
	if p, err := hc.Transport.(*http.Transport).Proxy(req); p != nil || err != nil {
		t.Errorf("a proxy (%v, %v) for a *.localhost URL", p, err)
	}
	resp, err := hc.Get("http://abc123.execute-api.localhost:" + u.Port() + "/v1/mecs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := host.Load(); got != "abc123.execute-api.localhost:"+u.Port() {
		t.Errorf("Host %v", got)
	}
}

func TestParseEndpoint(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"https://abc.execute-api.eu-west-1.amazonaws.com/prod/": "https://abc.execute-api.eu-west-1.amazonaws.com/prod",
		"http://abc.execute-api.localhost:4566/v1":              "http://abc.execute-api.localhost:4566/v1",
		"http://127.0.0.1:9/v1":                                 "http://127.0.0.1:9/v1",
		"http://api.example.com/v1":                             "error: plain http",
		"ftp://x/y":                                             "error: want a URL",
		"https://x/y?a=b":                                       "error: want a URL",
		"abc.execute-api.eu-west-1.amazonaws.com":               "error: want a URL",
	} {
		u, err := ParseEndpoint(raw)
		got := ""
		if err != nil {
			got = "error: " + err.Error()
		} else {
			got = u.String()
		}
		if !strings.HasPrefix(got, want) && !(strings.HasPrefix(want, "error: ") && strings.Contains(got, strings.TrimPrefix(want, "error: "))) {
			t.Errorf("ParseEndpoint(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestParseError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		body   string
		want   Error
	}{
		{400, `{"error":{"code":"ValidationError","message":"the MEC spec is not valid","fields":{"name":"must be a DNS-1123 label"}}}`,
			Error{Status: 400, Code: "ValidationError", Message: "the MEC spec is not valid", Fields: map[string]string{"name": "must be a DNS-1123 label"}}},
		{403, `{"message":"Missing Authentication Token"}`, Error{Status: 403, Code: "AccessDenied", Message: "Missing Authentication Token"}},
		{429, `{"Message":"Too Many Requests"}`, Error{Status: 429, Code: "Throttled", Message: "Too Many Requests"}},
		{502, `<html>bad gateway</html>`, Error{Status: 502, Code: "BadGateway", Message: "<html>bad gateway</html>"}},
		{500, ``, Error{Status: 500, Code: "InternalServerError", Message: "Internal Server Error"}},
	} {
		got := ParseError(tc.status, []byte(tc.body))
		if got.Status != tc.want.Status || got.Code != tc.want.Code || got.Message != tc.want.Message || len(got.Fields) != len(tc.want.Fields) {
			t.Errorf("ParseError(%d, %s) = %+v, want %+v", tc.status, tc.body, got, tc.want)
		}
	}
	e := ParseError(400, []byte(`{"error":{"code":"ValidationError","message":"bad","fields":{"b":"2","a":"1"}}}`))
	if e.Error() != "bad (400 ValidationError); a: 1; b: 2" {
		t.Errorf("Error() = %q", e.Error())
	}
}

func TestNewResolvesEndpointAndRegion(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	stack := func(ctx context.Context, cfg aws.Config, name string) (string, error) {
		if name != "mecd" && name != "other" {
			return "", errors.New("stack " + name + " does not exist")
		}
		return "https://fromstack.execute-api." + cfg.Region + ".amazonaws.com/prod/", nil
	}
	for _, tc := range []struct {
		name, envRegion string
		o               Options
		env             map[string]string
		endpoint        string
		region          string
		err             string
	}{
		{name: "flag endpoint names its region", envRegion: "us-east-1",
			o: Options{Endpoint: "https://a1.execute-api.eu-central-1.amazonaws.com/prod"}, endpoint: "https://a1.execute-api.eu-central-1.amazonaws.com/prod", region: "eu-central-1"},
		{name: "MECD_ENDPOINT", envRegion: "us-east-1", env: map[string]string{"MECD_ENDPOINT": "https://api.example.com/v1"},
			endpoint: "https://api.example.com/v1", region: "us-east-1"},
		{name: "--api-region wins", envRegion: "us-east-1", o: Options{Endpoint: "https://a1.execute-api.eu-central-1.amazonaws.com/prod", Region: "eu-west-1"},
			endpoint: "https://a1.execute-api.eu-central-1.amazonaws.com/prod", region: "eu-west-1"},
		{name: "local endpoint without a region", o: Options{Endpoint: "http://x.execute-api.localhost:4566/v1"},
			endpoint: "http://x.execute-api.localhost:4566/v1", region: "us-east-1"},
		{name: "stack output", envRegion: "ap-northeast-1", endpoint: "https://fromstack.execute-api.ap-northeast-1.amazonaws.com/prod", region: "ap-northeast-1"},
		{name: "named stack", envRegion: "eu-west-1", o: Options{Stack: "other"}, endpoint: "https://fromstack.execute-api.eu-west-1.amazonaws.com/prod", region: "eu-west-1"},
		{name: "missing stack", envRegion: "eu-west-1", o: Options{Stack: "gone"}, err: "stack gone does not exist"},
		{name: "nothing to go on", err: "no API endpoint: pass --endpoint or set MECD_ENDPOINT"},
		{name: "custom domain, no region", o: Options{Endpoint: "https://api.example.com/v1"}, err: "pass --api-region"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_REGION", tc.envRegion)
			t.Setenv("AWS_DEFAULT_REGION", "")
			o := tc.o
			o.StackLookup = stack
			o.Getenv = func(k string) string { return tc.env[k] }
			c, err := New(context.Background(), o)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Endpoint.String() != tc.endpoint || c.Region != tc.region {
				t.Errorf("endpoint %s region %s, want %s %s", c.Endpoint, c.Region, tc.endpoint, tc.region)
			}
		})
	}
}

type fakeCF struct {
	out *cloudformation.DescribeStacksOutput
	err error
}

func (f fakeCF) DescribeStacks(context.Context, *cloudformation.DescribeStacksInput, ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error) {
	return f.out, f.err
}

func TestStackOutputValue(t *testing.T) {
	t.Parallel()
	out := &cloudformation.DescribeStacksOutput{Stacks: []cftypes.Stack{{Outputs: []cftypes.Output{
		{OutputKey: aws.String("TableName"), OutputValue: aws.String("t")},
		{OutputKey: aws.String("ApiUrl"), OutputValue: aws.String("https://x.execute-api.eu-west-1.amazonaws.com/prod/")},
	}}}}
	if v, err := StackOutputValue(context.Background(), fakeCF{out: out}, "mecd", "ApiUrl", "eu-west-1"); err != nil || !strings.HasPrefix(v, "https://x.") {
		t.Errorf("%q %v", v, err)
	}
	if _, err := StackOutputValue(context.Background(), fakeCF{out: &cloudformation.DescribeStacksOutput{}}, "mecd", "ApiUrl", "eu-west-1"); err == nil ||
		!strings.Contains(err.Error(), "has no ApiUrl output") {
		t.Errorf("no output: %v", err)
	}
	if _, err := StackOutputValue(context.Background(), fakeCF{err: errors.New("ValidationError: Stack with id mecd does not exist")}, "mecd", "ApiUrl", "eu-west-1"); err == nil ||
		!strings.Contains(err.Error(), "does not exist") {
		t.Errorf("no stack: %v", err)
	}
}

// TestRetries: throttling and unavailability are retried (POSTs carry an
// Idempotency-Key, so that is safe); client errors are not.
func TestRetries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		answers []int
		calls   int
		status  int
	}{
		{"503 then ok", []int{503, 200}, 2, 200},
		{"429 twice then ok", []int{429, 429, 200}, 3, 200},
		{"400 is final", []int{400, 200}, 1, 400},
		{"always 503", []int{503, 503, 503, 503, 503}, 4, 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			keys := map[string]bool{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				keys[r.Header.Get("Idempotency-Key")] = true
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(tc.answers[min(i, len(tc.answers)-1)])
				_, _ = w.Write([]byte(`{"items":[]}`))
			}))
			defer srv.Close()
			u, _ := url.Parse(srv.URL)
			c := &Client{Endpoint: u, Region: "us-east-1", Retries: 3,
				Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", "")}
			resp, _, err := c.Send(context.Background(), http.MethodPost, "/mecs", "", []byte(`{}`), http.Header{"Idempotency-Key": {"k"}})
			if err != nil {
				t.Fatal(err)
			}
			if int(n.Load()) != tc.calls || resp.StatusCode != tc.status {
				t.Errorf("%d calls ending %d, want %d ending %d", n.Load(), resp.StatusCode, tc.calls, tc.status)
			}
			if len(keys) != 1 {
				t.Errorf("retries changed the Idempotency-Key: %v", keys)
			}
		})
	}
}

func TestNewIdempotencyKey(t *testing.T) {
	t.Parallel()
	a, b := NewIdempotencyKey(), NewIdempotencyKey()
	if a == b || len(a) != 36 || a[14] != '4' {
		t.Errorf("%s %s", a, b)
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	mec := func(id, name, status string) string {
		return fmt.Sprintf(`{"id":%q,"name":%q,"status":%q,"region":"us-east-1","spec":{"name":%q,"addons":null},"createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z","version":1}`,
			id, name, status, name)
	}
	id := func(n int) string { return fmt.Sprintf("mec-%026d", n) }
	for _, tc := range []struct {
		name     string
		arg      string
		pages    map[string]string // query -> body
		wantID   string
		wantErr  error
		requests int
	}{
		{name: "an id is fetched", arg: id(7), wantID: id(7), requests: 1},
		{name: "small deployment: one page", arg: "edge",
			pages:  map[string]string{"limit=100": `{"items":[` + mec(id(2), "edge", "DELETED") + `,` + mec(id(1), "edge", "READY") + `]}`},
			wantID: id(1), requests: 1},
		{name: "large deployment: by status", arg: "edge",
			pages: map[string]string{
				"limit=100":                           `{"items":[` + mec(id(9), "other", "DELETED") + `],"nextToken":"t"}`,
				"limit=100&status=CREATING":           `{"items":[]}`,
				"limit=100&status=READY":              `{"items":[` + mec(id(3), "x", "READY") + `],"nextToken":"r2"}`,
				"limit=100&nextToken=r2&status=READY": `{"items":[]}`,
				"limit=100&status=FAILED":             `{"items":[` + mec(id(4), "edge", "FAILED") + `]}`,
			},
			wantID: id(4), requests: 5},
		{name: "only a deleted one", arg: "edge",
			pages: map[string]string{
				"limit=100":                `{"items":[],"nextToken":"t"}`,
				"limit=100&status=DELETED": `{"items":[` + mec(id(6), "edge", "DELETED") + `,` + mec(id(5), "edge", "DELETED") + `]}`,
			},
			wantID: id(6), requests: 6},
		{name: "none", arg: "edge", pages: map[string]string{"limit=100": `{"items":[` + mec(id(1), "other", "READY") + `]}`},
			wantErr: ErrNoSuchName, requests: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				if strings.HasPrefix(r.URL.Path, "/mecs/") {
					fmt.Fprint(w, mec(strings.TrimPrefix(r.URL.Path, "/mecs/"), "x", "READY"))
					return
				}
				body, ok := tc.pages[r.URL.RawQuery]
				if !ok {
					body = `{"items":[]}`
				}
				fmt.Fprint(w, body)
			}))
			defer srv.Close()
			u, _ := url.Parse(srv.URL)
			c := &Client{Endpoint: u, Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", "")}
			m, err := c.Resolve(context.Background(), tc.arg)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
			} else if err != nil || m.ID != tc.wantID {
				t.Fatalf("got %v %v, want %s", m, err, tc.wantID)
			}
			if int(n.Load()) != tc.requests {
				t.Errorf("%d requests, want %d", n.Load(), tc.requests)
			}
		})
	}
}
