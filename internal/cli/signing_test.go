package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

var reAuth = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$`)

// signature is what verifySigV4 read from a request.
type signature struct {
	region, service string
	signedHeaders   []string
}

// verifySigV4 checks a request's signature as API Gateway does: it signs
// the same request again with the SDK's v4 signer (the signed headers
// only, at the request's X-Amz-Date) and compares.
func verifySigV4(r *http.Request, body []byte, creds aws.Credentials) (signature, error) {
	m := reAuth.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return signature{}, fmt.Errorf("no SigV4 Authorization header: %q", r.Header.Get("Authorization"))
	}
	sig := signature{region: m[3], service: m[4], signedHeaders: strings.Split(m[5], ";")}
	if m[1] != creds.AccessKeyID {
		return sig, fmt.Errorf("signed by %s, want %s", m[1], creds.AccessKeyID)
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || at.Format("20060102") != m[2] {
		return sig, fmt.Errorf("X-Amz-Date %q does not match the scope date %s", r.Header.Get("X-Amz-Date"), m[2])
	}
	if d := time.Since(at); d > 5*time.Minute || d < -5*time.Minute {
		return sig, fmt.Errorf("signed at %v, %v from now", at, d)
	}
	again, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return sig, err
	}
	for _, h := range sig.signedHeaders {
		if h != "host" && h != "content-length" {
			again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), sig.service, sig.region, at); err != nil {
		return sig, err
	}
	if got, want := r.Header.Get("Authorization"), again.Header.Get("Authorization"); got != want {
		return sig, fmt.Errorf("signature mismatch:\n got  %s\n want %s", got, want)
	}
	return sig, nil
}

// fakeAPI answers like the API after checking every request's signature.
type fakeAPI struct {
	creds aws.Credentials
	mu    sync.Mutex
	seen  []seenRequest
}

type seenRequest struct {
	method, uri, host string
	sig               signature
	err               error
	header            http.Header
}

const fakeMEC = `{"id":"mec-01m88ep76tgbghk3fv44wdc5r0","name":"edge-1","status":"CREATING","region":"us-east-1",` +
	`"spec":{"name":"edge-1","nodeCount":1,"addons":["dns"]},"createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z","version":1}`

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	sig, err := verifySigV4(r, body, f.creds)
	f.mu.Lock()
	f.seen = append(f.seen, seenRequest{method: r.Method, uri: r.URL.RequestURI(), host: r.Host, sig: sig, err: err, header: r.Header.Clone()})
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"message":%q}`, "The request signature we calculated does not match the signature you provided.")
		return
	}
	switch {
	case r.Method == http.MethodPost:
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, fakeMEC)
	case r.URL.Path == "/v1/mecs":
		fmt.Fprintf(w, `{"items":[%s]}`, fakeMEC)
	default:
		fmt.Fprint(w, fakeMEC)
	}
}

func (f *fakeAPI) last() seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[len(f.seen)-1]
}

// TestRequestsAreSigned: what the CLI sends carries a valid SigV4
// signature for execute-api, made from the SDK's credential chain, in the
// region the endpoint or flags say. Not parallel: a case sets the
// environment the SDK reads.
func TestRequestsAreSigned(t *testing.T) {
	api := &fakeAPI{creds: aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	port := u.Port()
	for _, tc := range []struct {
		name     string
		args     []string
		token    string // AWS_SESSION_TOKEN
		method   string
		uri      string
		region   string
		host     string
		signedAt []string // headers that must be signed
	}{
		{name: "list on a loopback endpoint, region from AWS_REGION",
			args: []string{"list", "-o", "json", "--status", "READY", "--endpoint", srv.URL + "/v1"}, method: "GET",
			uri: "/v1/mecs?limit=100&status=READY", region: "us-east-1", host: "127.0.0.1:" + port, signedAt: []string{"host", "x-amz-date"}},
		{name: "create on a *.localhost endpoint, which is dialled on 127.0.0.1",
			args:   []string{"create", "edge-1", "--nodes", "1", "--idempotency-key", "k-1", "--endpoint", "http://abc123.execute-api.localhost:" + port + "/v1"},
			method: "POST", uri: "/v1/mecs", region: "us-east-1", host: "abc123.execute-api.localhost:" + port,
			signedAt: []string{"content-length", "content-type", "host", "idempotency-key", "x-amz-date"}},
		{name: "get with --api-region and temporary credentials",
			args: []string{"get", "mec-01m88ep76tgbghk3fv44wdc5r0", "--api-region", "eu-west-1", "--endpoint", srv.URL + "/v1/"}, token: "session-token-1",
			method: "GET", uri: "/v1/mecs/mec-01m88ep76tgbghk3fv44wdc5r0", region: "eu-west-1", host: "127.0.0.1:" + port,
			signedAt: []string{"host", "x-amz-date", "x-amz-security-token"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_SESSION_TOKEN", tc.token)
			api.creds.SessionToken = tc.token
			if code, out := runWithCredentials(t, tc.args...); code != exitOK {
				t.Fatalf("exit %d: %s", code, out)
			}
			got := api.last()
			if got.err != nil {
				t.Fatalf("signature: %v", got.err)
			}
			if got.method != tc.method || got.uri != tc.uri || got.host != tc.host {
				t.Errorf("request %s %s (Host %s), want %s %s (Host %s)", got.method, got.uri, got.host, tc.method, tc.uri, tc.host)
			}
			if got.sig.service != "execute-api" || got.sig.region != tc.region {
				t.Errorf("signed for %s in %s, want execute-api in %s", got.sig.service, got.sig.region, tc.region)
			}
			for _, h := range tc.signedAt {
				if !strings.Contains(";"+strings.Join(got.sig.signedHeaders, ";")+";", ";"+h+";") {
					t.Errorf("header %s is not signed (signed: %v)", h, got.sig.signedHeaders)
				}
			}
			if tc.token != "" && got.header.Get("X-Amz-Security-Token") != tc.token {
				t.Errorf("X-Amz-Security-Token %q", got.header.Get("X-Amz-Security-Token"))
			}
		})
	}

	// The check is not vacuous: other credentials, a changed body or path fail it.
	t.Run("verifier rejects", func(t *testing.T) {
		good := aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey}
		sign := func(creds aws.Credentials, body string) *http.Request {
			req, _ := http.NewRequest("POST", srv.URL+"/v1/mecs", strings.NewReader(body))
			sum := sha256.Sum256([]byte(body))
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "execute-api", "us-east-1", time.Now()); err != nil {
				t.Fatal(err)
			}
			req.Host = req.URL.Host
			return req
		}
		for _, tc := range []struct {
			name string
			req  *http.Request
			body string
		}{
			{"wrong secret", sign(aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: "other"}, "{}"), "{}"},
			{"other body", sign(good, `{"name":"a"}`), `{"name":"b"}`},
		} {
			if _, err := verifySigV4(tc.req, []byte(tc.body), good); err == nil {
				t.Errorf("%s: accepted", tc.name)
			}
		}
		if _, err := verifySigV4(sign(good, "{}"), []byte("{}"), good); err != nil {
			t.Errorf("a good signature: %v", err)
		}
	})
}

// syncBuffer is a bytes.Buffer safe to read while the command writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDashboardCommand: `mecctl dashboard` serves the page on 127.0.0.1
// and forwards its API calls signed with the CLI's credentials; the
// browser's side of the exchange carries none. Ctrl-C (here: the context)
// stops it.
func TestDashboardCommand(t *testing.T) {
	api := &fakeAPI{creds: aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	setTestCredentials(t)
	var out, errb syncBuffer
	a := NewApp(strings.NewReader(""), &out, &errb, os.Getenv, time.Now)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- a.Main(ctx, []string{"dashboard", "--port", "0", "--endpoint", srv.URL + "/v1"}) }()
	reURL := regexp.MustCompile(`Dashboard: (http://127\.0\.0\.1:\d+/)`)
	var base string
	for deadline := time.Now().Add(10 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := reURL.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		cancel()
		t.Fatalf("no dashboard URL: %s %s", out.String(), errb.String())
	}
	get := func(path string, hdr map[string]string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := get("", nil); resp.StatusCode != 200 || !strings.Contains(body, "Create a MEC") {
		t.Errorf("page: %d", resp.StatusCode)
	}
	resp, body := get("api/mecs?status=READY", map[string]string{"X-Mecd-Dashboard": "1"})
	if resp.StatusCode != 200 || !strings.Contains(body, `"edge-1"`) {
		t.Errorf("proxied list: %d %s", resp.StatusCode, body)
	}
	got := api.last()
	if got.err != nil || got.uri != "/v1/mecs?status=READY" || got.sig.service != "execute-api" {
		t.Errorf("the API got %s %s signed %+v: %v", got.method, got.uri, got.sig, got.err)
	}
	for k := range resp.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-amz") || strings.EqualFold(k, "Authorization") {
			t.Errorf("the browser got header %s", k)
		}
	}
	if strings.Contains(body, testSecretKey) || strings.Contains(body, "Signature=") {
		t.Error("credentials in the page's answer")
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK || !strings.Contains(out.String(), "Dashboard stopped.") {
			t.Errorf("exit %d: %s %s", code, out.String(), errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("dashboard did not stop")
	}
}

// Credentials of the fake API: any will do, the fake checks the signature.
const (
	testAccessKey = "AKIAMECDTEST00000000"
	testSecretKey = "mecd-test-secret"
)

// runWithCredentials runs the CLI in-process with the fake API's
// credentials in the environment, where the SDK's chain finds them, and
// nothing from the machine's own AWS files.
func runWithCredentials(t *testing.T, args ...string) (int, string) {
	t.Helper()
	setTestCredentials(t)
	var out bytes.Buffer
	code := NewApp(strings.NewReader(""), &out, &out, os.Getenv, time.Now).Main(t.Context(), args)
	return code, out.String()
}

// setTestCredentials puts the fake API's credentials and region in the
// environment for the rest of the test.
func setTestCredentials(t *testing.T) {
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": testAccessKey, "AWS_SECRET_ACCESS_KEY": testSecretKey, "AWS_REGION": "us-east-1",
		"AWS_PROFILE": "", "AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
		"AWS_EC2_METADATA_DISABLED": "true", "MECD_ENDPOINT": "",
	} {
		t.Setenv(k, v)
	}
}
