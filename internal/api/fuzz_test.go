package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// Fuzz input flags.
const (
	fuzzStyleMask = 3      // which event shape (eventStyle)
	fuzzBase64    = 1 << 2 // body base64-encoded, as API Gateway does for binary media types
	fuzzRawB64    = 1 << 3 // marked base64 but sent as is (likely invalid)
)

// fuzzEvent builds a proxy event from raw parts: headers are "Name: value"
// lines (a repeated name gives a multi-value header).
func fuzzEvent(method, path, query, headers string, body []byte, flags uint8) events.APIGatewayProxyRequest {
	r := req{method: method, path: path, query: query, body: string(body), style: eventStyle(flags&fuzzStyleMask) % styleCount,
		headers: map[string]string{}, multi: map[string][]string{}}
	for line := range strings.SplitSeq(headers, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if prev, seen := r.headers[k]; seen {
			if len(r.multi[k]) == 0 {
				r.multi[k] = []string{prev}
			}
			r.multi[k] = append(r.multi[k], v)
		}
		r.headers[k] = v
	}
	ev := r.ev()
	switch {
	case flags&fuzzBase64 != 0:
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
	case flags&fuzzRawB64 != 0:
		ev.IsBase64Encoded = true
	}
	return ev
}

func headerLines(r req) string {
	var b strings.Builder
	for k, v := range r.headers {
		b.WriteString(k + ": " + v + "\n")
	}
	for k, vs := range r.multi {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	return b.String()
}

// FuzzHandleRequest feeds arbitrary methods, paths, query strings, headers
// and bodies to the handler against a healthy backend (kumo): it must not
// panic, must answer 2xx or 4xx (a 5xx would be the API's fault), must never
// start a workflow on a 4xx, and every answer must match openapi.yaml.
func FuzzHandleRequest(f *testing.F) {
	e := newEnv(f)
	key := "fuzz-existing-key"
	resp, err := e.h.Handle(context.Background(), post(named("edge-fuzz"), "Idempotency-Key", key).ev())
	if err != nil || resp.StatusCode != 202 {
		f.Fatalf("seed: %d %s %v", resp.StatusCode, resp.Body, err)
	}
	var live struct{ ID, Name string }
	_ = json.Unmarshal([]byte(resp.Body), &live)

	seeds := []req{
		post(`{"name":"edge-f1","nodeCount":2,"addons":["dns","ingress"],"ttl":"8h"}`, "Idempotency-Key", "fuzz-k1"),
		post(named("edge-fuzz"), "Idempotency-Key", key),
		{method: "GET", path: "/mecs", query: "status=READY&limit=5&region=eu-west-1"},
		{method: "GET", path: "/mecs", query: "limit=1"},
		get("/mecs/" + live.ID),
		get("/mecs/" + live.ID + "/kubeconfig"),
		del("/mecs/" + live.ID),
	}
	for _, c := range malformedCases(live.ID, live.Name, key) {
		seeds = append(seeds, c.r)
	}
	for i, s := range seeds {
		f.Add(s.method, s.path, s.query, headerLines(s), []byte(s.body), uint8(i)&fuzzStyleMask)
	}
	f.Add("POST", "/mecs", "", "", []byte(base64.StdEncoding.EncodeToString([]byte(`{"name":"edge-f2"}`))), uint8(fuzzRawB64))
	f.Add("POST", "/mecs", "", "", []byte(`{"name":"edge-f3"}`), uint8(fuzzBase64|1))
	f.Add("GET", "/{proxy+}", "", "", []byte(nil), uint8(0))
	f.Add("GET", "/mecs/{id}", "", "", []byte(nil), uint8(0))

	f.Fuzz(func(t *testing.T, method, path, query, headers string, body []byte, flags uint8) {
		ev := fuzzEvent(method, path, query, headers, body, flags)
		starts := e.sfn.starts.Load()
		resp, err := e.h.Handle(context.Background(), ev)
		if err != nil {
			t.Fatalf("Handle returned an error: %v", err)
		}
		switch c := resp.StatusCode; {
		case c >= 200 && c < 300:
		case c >= 400 && c < 500:
			var er ErrorResponse
			if err := json.Unmarshal([]byte(resp.Body), &er); err != nil || er.Error == nil || er.Error.Code == "" || er.Error.Message == "" {
				t.Fatalf("%d with a malformed error body %q: %v", c, resp.Body, err)
			}
			if got := e.sfn.starts.Load(); got != starts {
				t.Fatalf("%d answer, yet %d workflow starts", c, got-starts)
			}
		default:
			t.Fatalf("status %d for %s %q: %s", c, ev.HTTPMethod, ev.Path, resp.Body)
		}
		if err := checkResponse(ev.HTTPMethod, routeOf(ev), resp); err != nil {
			t.Fatalf("%v\nbody: %.300s", err, resp.Body)
		}
	})
}
