package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"gopkg.in/yaml.v3"
)

// doc is openapi.yaml decoded into plain maps, slices and scalars.
type doc map[string]any

var (
	docOnce   sync.Once
	theDoc    doc
	theDocErr error
)

func loadDoc() (doc, error) {
	docOnce.Do(func() {
		var d map[string]any
		theDocErr = yaml.Unmarshal(OpenAPI, &d)
		theDoc = d
	})
	return theDoc, theDocErr
}

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }

// deref follows a local $ref ("#/components/...").
func (d doc) deref(v any) map[string]any {
	m := obj(v)
	for i := 0; i < 10 && m != nil; i++ {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		var cur any = map[string]any(d)
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cur = obj(cur)[part]
		}
		m = obj(cur)
	}
	return m
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// operations lists "METHOD pattern" for every operation in the document.
func (d doc) operations() []string {
	var ops []string
	for p, item := range obj(d["paths"]) {
		for m := range obj(item) {
			if slices.Contains(httpMethods, m) {
				ops = append(ops, strings.ToUpper(m)+" "+p)
			}
		}
	}
	sort.Strings(ops)
	return ops
}

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	d, err := loadDoc()
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := d["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Fatalf("openapi version %q, want 3.x", v)
	}
	var served []string
	for _, rt := range routes {
		for m := range rt.methods {
			served = append(served, m+" "+rt.pattern)
		}
	}
	sort.Strings(served)
	if documented := d.operations(); !slices.Equal(served, documented) {
		t.Fatalf("router serves %v\ndocument has  %v", served, documented)
	}
	// Every $ref resolves, and every operation's query parameters are the ones the router accepts.
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok && d.deref(x) == nil {
				t.Errorf("%s: $ref %s does not resolve", at, ref)
			}
			for k, c := range x {
				walk(c, at+"/"+k)
			}
		case []any:
			for i, c := range x {
				walk(c, at+"/"+strconv.Itoa(i))
			}
		}
	}
	walk(map[string]any(d), "#")
	for _, rt := range routes {
		for m := range rt.methods {
			var documented []string
			for _, p := range asList(obj(obj(obj(d["paths"])[rt.pattern])[strings.ToLower(m)])["parameters"]) {
				if p := d.deref(p); p["in"] == "query" {
					documented = append(documented, p["name"].(string))
				}
			}
			accepted := slices.Clone(rt.query[m])
			slices.Sort(documented)
			slices.Sort(accepted)
			if !slices.Equal(documented, accepted) {
				t.Errorf("%s %s: query parameters documented %v, accepted %v", m, rt.pattern, documented, accepted)
			}
		}
	}
}

// checkResponse checks one answer against the document: a declared status
// for the operation, the declared content type, required headers, and a
// body valid against the declared schema.
func checkResponse(method, pattern string, resp events.APIGatewayProxyResponse) error {
	d, err := loadDoc()
	if err != nil {
		return err
	}
	var spec map[string]any
	var op map[string]any
	if method == strings.ToUpper(method) { // HTTP methods are case-sensitive
		op = obj(obj(obj(d["paths"])[pattern])[strings.ToLower(method)])
	}
	switch {
	case pattern == "":
		if resp.StatusCode != 404 {
			return fmt.Errorf("no route, status %d: want 404", resp.StatusCode)
		}
		spec = d.deref(obj(obj(d["components"])["responses"])["NotFound"])
	case op == nil:
		if resp.StatusCode != 405 {
			return fmt.Errorf("%s %s is not an operation, status %d: want 405", method, pattern, resp.StatusCode)
		}
		spec = d.deref(obj(obj(d["components"])["responses"])["MethodNotAllowed"])
	default:
		spec = d.deref(obj(op["responses"])[strconv.Itoa(resp.StatusCode)])
		if spec == nil {
			return fmt.Errorf("%s %s: status %d is not declared", method, pattern, resp.StatusCode)
		}
	}
	for name, h := range obj(spec["headers"]) {
		if required, _ := obj(h)["required"].(bool); required && header(resp, name) == "" {
			return fmt.Errorf("%s %s %d: required header %s missing", method, pattern, resp.StatusCode, name)
		}
	}
	content := obj(spec["content"])
	if len(content) != 1 {
		return fmt.Errorf("%s %s %d: the document declares %d media types, want 1", method, pattern, resp.StatusCode, len(content))
	}
	for mt, c := range content {
		got, _, err := mime.ParseMediaType(header(resp, "Content-Type"))
		if err != nil || got != mt {
			return fmt.Errorf("%s %s %d: Content-Type %q, declared %s", method, pattern, resp.StatusCode, header(resp, "Content-Type"), mt)
		}
		var body any
		switch mt {
		case "application/json":
			dec := json.NewDecoder(strings.NewReader(resp.Body))
			dec.UseNumber()
			if err := dec.Decode(&body); err != nil {
				return fmt.Errorf("%s %s %d: body is not JSON: %v", method, pattern, resp.StatusCode, err)
			}
		case "application/yaml":
			var y any
			if err := yaml.Unmarshal([]byte(resp.Body), &y); err != nil {
				return fmt.Errorf("%s %s %d: body is not YAML: %v", method, pattern, resp.StatusCode, err)
			}
			body = resp.Body
		}
		if err := d.validate(obj(c)["schema"], body, "body"); err != nil {
			return fmt.Errorf("%s %s %d: %w", method, pattern, resp.StatusCode, err)
		}
	}
	return nil
}

func header(resp events.APIGatewayProxyResponse, name string) string {
	for k, v := range resp.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// validate checks v against a schema: type, nullable, enum, required,
// properties, additionalProperties, items, and the usual bounds: what this
// document uses.
func (d doc) validate(schemaV any, v any, at string) error {
	s := d.deref(schemaV)
	if s == nil {
		return nil
	}
	if v == nil {
		if n, _ := s["nullable"].(bool); n {
			return nil
		}
		return fmt.Errorf("%s: null is not allowed", at)
	}
	typ, _ := s["type"].(string)
	switch typ {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want an object, got %T", at, v)
		}
		props := obj(s["properties"])
		for _, r := range asList(s["required"]) {
			if _, ok := m[r.(string)]; !ok {
				return fmt.Errorf("%s: required property %q missing", at, r)
			}
		}
		if maxP, ok := s["maxProperties"].(int); ok && len(m) > maxP {
			return fmt.Errorf("%s: %d properties, at most %d", at, len(m), maxP)
		}
		for k, val := range m {
			if ps, ok := props[k]; ok {
				if err := d.validate(ps, val, at+"."+k); err != nil {
					return err
				}
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					return fmt.Errorf("%s: property %q is not declared", at, k)
				}
			case map[string]any:
				if err := d.validate(ap, val, at+"."+k); err != nil {
					return err
				}
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: want an array, got %T", at, v)
		}
		if maxI, ok := s["maxItems"].(int); ok && len(a) > maxI {
			return fmt.Errorf("%s: %d items, at most %d", at, len(a), maxI)
		}
		for i, el := range a {
			if err := d.validate(s["items"], el, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: want a string, got %T", at, v)
		}
		if n, ok := s["maxLength"].(int); ok && len([]rune(str)) > n {
			return fmt.Errorf("%s: longer than %d", at, n)
		}
		if n, ok := s["minLength"].(int); ok && len([]rune(str)) < n {
			return fmt.Errorf("%s: shorter than %d", at, n)
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			return fmt.Errorf("%s: %q does not match %s", at, str, p)
		}
	case "integer", "number":
		n, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("%s: want a %s, got %T", at, typ, v)
		}
		f, err := n.Float64()
		if err != nil || (typ == "integer" && strings.ContainsAny(n.String(), ".eE")) {
			return fmt.Errorf("%s: %s is not an %s", at, n, typ)
		}
		if lo, ok := num(s["minimum"]); ok && f < lo {
			return fmt.Errorf("%s: %s < minimum %v", at, n, lo)
		}
		if hi, ok := num(s["maximum"]); ok && f > hi {
			return fmt.Errorf("%s: %s > maximum %v", at, n, hi)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: want a boolean, got %T", at, v)
		}
	case "":
	default:
		return fmt.Errorf("%s: the validator does not know type %q", at, typ)
	}
	if enum := asList(s["enum"]); enum != nil {
		if !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
			return fmt.Errorf("%s: %v is not one of %v", at, v, enum)
		}
	}
	return nil
}

func asList(v any) []any { l, _ := v.([]any); return l }

func num(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

// checkRecorded runs after every test (TestMain): each recorded answer must
// match the document.
func checkRecorded() int {
	recMu.Lock()
	defer recMu.Unlock()
	failed := 0
	seen := map[string]bool{}
	for _, r := range recorded {
		seen[fmt.Sprintf("%s %s %d", r.method, r.pattern, r.resp.StatusCode)] = true
		if err := checkResponse(r.method, r.pattern, r.resp); err != nil {
			failed++
			if failed <= 20 {
				fmt.Fprintf(os.Stderr, "openapi: %s: %v\n  body: %.300s\n", r.test, err, r.resp.Body)
			}
		}
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d of %d recorded answers do not match openapi.yaml\n", failed, len(recorded))
		return 1
	}
	if testing.Verbose() {
		keys := make([]string, 0, len(seen))
		for k := range seen {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b bytes.Buffer
		for _, k := range keys {
			fmt.Fprintf(&b, "  %s\n", k)
		}
		fmt.Fprintf(os.Stderr, "openapi: %d recorded answers match the document; statuses seen:\n%s", len(recorded), b.String())
	}
	return 0
}

// The validator itself must refuse what it claims to check.
func TestSchemaValidatorCatchesMismatches(t *testing.T) {
	d, err := loadDoc()
	if err != nil {
		t.Fatal(err)
	}
	ok := events.APIGatewayProxyResponse{StatusCode: 404, Headers: map[string]string{"Content-Type": "application/json"},
		Body: `{"error":{"code":"NotFound","message":"x"}}`}
	if err := checkResponse("GET", "/mecs/{id}", ok); err != nil {
		t.Fatalf("a valid answer: %v", err)
	}
	bad := []struct {
		name   string
		method string
		resp   events.APIGatewayProxyResponse
	}{
		{"undeclared status", "GET", events.APIGatewayProxyResponse{StatusCode: 418, Headers: ok.Headers, Body: ok.Body}},
		{"wrong content type", "GET", events.APIGatewayProxyResponse{StatusCode: 404, Headers: map[string]string{"Content-Type": "text/plain"}, Body: ok.Body}},
		{"missing code", "GET", events.APIGatewayProxyResponse{StatusCode: 404, Headers: ok.Headers, Body: `{"error":{"message":"x"}}`}},
		{"unknown code", "GET", events.APIGatewayProxyResponse{StatusCode: 404, Headers: ok.Headers, Body: `{"error":{"code":"Nope","message":"x"}}`}},
		{"not an object", "GET", events.APIGatewayProxyResponse{StatusCode: 404, Headers: ok.Headers, Body: `[]`}},
		{"not json", "GET", events.APIGatewayProxyResponse{StatusCode: 404, Headers: ok.Headers, Body: `{`}},
		{"record missing id", "GET", events.APIGatewayProxyResponse{StatusCode: 200, Headers: ok.Headers,
			Body: `{"name":"a","status":"READY","region":"r","spec":{"name":"a"},"createdAt":"t","updatedAt":"t","version":1}`}},
		{"wrong type", "GET", events.APIGatewayProxyResponse{StatusCode: 200, Headers: ok.Headers,
			Body: `{"id":"mec-0000000000000000000000000a","name":"a","status":"READY","region":"r","spec":{"name":"a"},"createdAt":"t","updatedAt":"t","version":"1"}`}},
		{"405 without Allow", "PUT", events.APIGatewayProxyResponse{StatusCode: 405, Headers: ok.Headers, Body: `{"error":{"code":"MethodNotAllowed","message":"x"}}`}},
		{"503 without Retry-After", "DELETE", events.APIGatewayProxyResponse{StatusCode: 503, Headers: ok.Headers, Body: `{"error":{"code":"ServiceUnavailable","message":"x"}}`}},
	}
	for _, tc := range bad {
		if err := checkResponse(tc.method, "/mecs/{id}", tc.resp); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	_ = d
}
