package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/mecd/mecd/internal/mec"
)

// fakeAPI records what the proxy forwards.
type fakeAPI struct {
	mu    sync.Mutex
	calls []call
	err   error
}

type call struct {
	method, path, query, body string
	header                    http.Header
}

func (f *fakeAPI) Send(_ context.Context, method, path, rawQuery string, body []byte, header http.Header) (*http.Response, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{method, path, rawQuery, string(body), header})
	if f.err != nil {
		return nil, nil, f.err
	}
	h := http.Header{"Content-Type": {"application/json"}, "X-Amzn-Requestid": {"r-1"}, "Set-Cookie": {"a=b"}}
	status := http.StatusOK
	if method == http.MethodPost {
		status = http.StatusAccepted
		h.Set("Location", "/mecs/mec-01m88ep76tgbghk3fv44wdc5r0")
	}
	return &http.Response{StatusCode: status, Header: h}, []byte(`{"ok":true}`), nil
}

const id = "mec-01m88ep76tgbghk3fv44wdc5r0"

func do(t *testing.T, h http.Handler, method, target, body string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Host = "127.0.0.1:8080"
	for k, v := range hdr {
		if k == "Host" {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

var page = map[string]string{HeaderName: "1"}

func TestProxyForwardsOnlyTheAPIRoutes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		method, target string
		status         int
		forwarded      string // "METHOD path?query" the API got; "" = nothing
	}{
		{"GET", "/api/mecs", 200, "GET /mecs?"},
		{"GET", "/api/mecs?status=READY&region=eu-west-1&limit=100&nextToken=abc", 200, "GET /mecs?limit=100&nextToken=abc&region=eu-west-1&status=READY"},
		{"POST", "/api/mecs", 202, "POST /mecs?"},
		{"GET", "/api/mecs/" + id, 200, "GET /mecs/" + id + "?"},
		{"DELETE", "/api/mecs/" + id, 200, "DELETE /mecs/" + id + "?"},
		{"GET", "/api/mecs/" + id + "/kubeconfig", 200, "GET /mecs/" + id + "/kubeconfig?"},
		{"PUT", "/api/mecs/" + id, 405, ""},
		{"DELETE", "/api/mecs", 405, ""},
		{"GET", "/api/mecs?debug=1", 400, ""},
		{"GET", "/api/mecs/not-an-id", 404, ""},
		{"GET", "/api/mecs/" + id + "/../../admin", 307, ""}, // ServeMux cleans it: to /api/admin, a 404
		{"GET", "/api/other", 404, ""},
		{"GET", "/api/mecs/" + id + "/kubeconfig/x", 404, ""},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			api := &fakeAPI{}
			h := (&Server{API: api}).Handler()
			w := do(t, h, tc.method, tc.target, `{"name":"edge-1"}`, map[string]string{HeaderName: "1", "Idempotency-Key": "k1",
				"Content-Type": "application/json", "Authorization": "AWS4-HMAC-SHA256 forged", "Cookie": "x=y"})
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.forwarded == "" {
				if len(api.calls) != 0 {
					t.Errorf("forwarded %+v", api.calls)
				}
				if w.Code != http.StatusTemporaryRedirect && !strings.Contains(w.Body.String(), `"error"`) {
					t.Errorf("not an API-shaped error: %s", w.Body)
				}
				return
			}
			if len(api.calls) != 1 {
				t.Fatalf("%d calls", len(api.calls))
			}
			c := api.calls[0]
			if got := c.method + " " + c.path + "?" + c.query; got != tc.forwarded {
				t.Errorf("forwarded %q, want %q", got, tc.forwarded)
			}
			// Only the headers the API reads go through; the browser's never sign anything.
			for k := range c.header {
				if k != "Content-Type" && k != "Idempotency-Key" {
					t.Errorf("forwarded header %s", k)
				}
			}
			if tc.method == "POST" && (c.body != `{"name":"edge-1"}` || c.header.Get("Idempotency-Key") != "k1") {
				t.Errorf("POST forwarded %q %v", c.body, c.header)
			}
			if tc.method != "POST" && c.body != "" {
				t.Errorf("%s forwarded a body", tc.method)
			}
			if w.Header().Get("Set-Cookie") != "" || w.Header().Get("X-Amzn-Requestid") != "" {
				t.Errorf("answer headers leaked: %v", w.Header())
			}
			if tc.method == "POST" && w.Header().Get("Location") == "" {
				t.Error("Location dropped")
			}
		})
	}
}

func TestGuard(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		method string
		target string
		hdr    map[string]string
		status int
	}{
		{"page", "GET", "/", nil, 200},
		{"page on localhost", "GET", "/", map[string]string{"Host": "localhost:8080"}, 200},
		{"page on ::1", "GET", "/", map[string]string{"Host": "[::1]:8080"}, 200},
		{"rebound name", "GET", "/", map[string]string{"Host": "attacker.example:8080"}, 421},
		{"rebound name on api", "GET", "/api/mecs", map[string]string{"Host": "evil.localhost:8080", HeaderName: "1"}, 421},
		{"api without the header", "GET", "/api/mecs", nil, 403},
		{"api from another origin", "POST", "/api/mecs", map[string]string{HeaderName: "1", "Origin": "https://attacker.example"}, 403},
		{"api cross-site fetch", "DELETE", "/api/mecs/" + id, map[string]string{HeaderName: "1", "Sec-Fetch-Site": "cross-site"}, 403},
		{"api same origin", "POST", "/api/mecs", map[string]string{HeaderName: "1", "Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}, 202},
		{"validate without the header", "POST", "/ui/validate", nil, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeAPI{}
			w := do(t, (&Server{API: api}).Handler(), tc.method, tc.target, "{}", tc.hdr)
			if w.Code != tc.status {
				t.Errorf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.status >= 400 && len(api.calls) > 0 {
				t.Errorf("refused request was forwarded")
			}
			if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || w.Header().Get("X-Frame-Options") != "DENY" {
				t.Errorf("security headers: %v", w.Header())
			}
		})
	}
}

func TestStaticAndMeta(t *testing.T) {
	t.Parallel()
	h := (&Server{API: &fakeAPI{}, Endpoint: "https://x.execute-api.eu-west-1.amazonaws.com/prod", Region: "eu-west-1"}).Handler()
	for _, tc := range []struct{ target, ctype, contains string }{
		{"/", "text/html", `<label for="f-name">`},
		{"/static/app.js", "javascript", "X-Mecd-Dashboard"},
		{"/static/style.css", "text/css", "@media"},
	} {
		w := do(t, h, "GET", tc.target, "", nil)
		if w.Code != 200 || !strings.Contains(w.Header().Get("Content-Type"), tc.ctype) || !strings.Contains(w.Body.String(), tc.contains) {
			t.Errorf("%s: %d %s", tc.target, w.Code, w.Header().Get("Content-Type"))
		}
	}
	if w := do(t, h, "GET", "/static/missing.js", "", nil); w.Code != 404 {
		t.Errorf("missing file: %d", w.Code)
	}
	w := do(t, h, "GET", "/ui/meta", "", page)
	var meta struct {
		Endpoint string   `json:"endpoint"`
		Addons   []string `json:"addons"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &meta); err != nil || meta.Endpoint == "" || len(meta.Addons) < 5 {
		t.Errorf("meta: %s %v", w.Body, err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	h := (&Server{API: &fakeAPI{}}).Handler()
	for _, tc := range []struct {
		body   string
		fields []string
	}{
		{`{"name":"edge-1","nodeCount":3,"ttl":"8h"}`, nil},
		{`{"name":"Bad_Name","nodeCount":0,"addons":["dns","nope"]}`, []string{"name", "nodeCount", "addons[1]"}},
		{`{"name":"edge-1","bogus":1}`, []string{"bogus"}},
	} {
		w := do(t, h, "POST", "/ui/validate", tc.body, page)
		var got struct {
			Fields map[string]string `json:"fields"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 {
			t.Fatalf("%s: %d %s", tc.body, w.Code, w.Body)
		}
		if len(got.Fields) != len(tc.fields) {
			t.Errorf("%s: fields %v, want %v", tc.body, got.Fields, tc.fields)
		}
		for _, f := range tc.fields {
			if got.Fields[f] == "" {
				t.Errorf("%s: no message for %s in %v", tc.body, f, got.Fields)
			}
		}
	}
}

func TestProxyErrors(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{err: errors.New("get AWS credentials: no profile")}
	w := do(t, (&Server{API: api}).Handler(), "GET", "/api/mecs", "", page)
	if w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), "no profile") {
		t.Errorf("%d %s", w.Code, w.Body)
	}
	big := strings.Repeat("x", MaxBodyBytes+1)
	w = do(t, (&Server{API: &fakeAPI{}}).Handler(), "POST", "/api/mecs", big, page)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("big body: %d", w.Code)
	}
	_, _ = io.Copy(io.Discard, w.Body)
}

// The page shows the API's progress (the one plan, internal/mec) and keeps
// no step list of its own: a list of plan steps in app.js would be a copy
// that can drift from the plan.
func TestPageKeepsNoStepPlan(t *testing.T) {
	js, err := static.ReadFile("static/app.js")
	if err != nil {
		t.Fatal(err)
	}
	var named []string
	for _, s := range mec.Plan() {
		if strings.Contains(string(js), `"`+s+`"`) {
			named = append(named, s)
		}
	}
	// Two plan names double as words of the page (the addons field, the
	// kubeconfig button); a third means a step list.
	if len(named) > 2 {
		t.Fatalf("app.js names the plan's steps %v: read them from m.progress", named)
	}
	if !strings.Contains(string(js), "m.progress") {
		t.Fatal("app.js does not read m.progress")
	}
}
