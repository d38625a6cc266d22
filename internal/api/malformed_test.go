package api

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mecd/mecd/internal/mec"
)

type badCase struct {
	name   string
	r      req
	status int
	code   string
	field  string // a key expected in error.fields ("" for none)
}

func named(name string) string { return fmt.Sprintf(`{"name":%q}`, name) }

func withName(extra string) string { return `{"name":"edge-bad",` + extra + `}` }

// malformedCases are requests that must be refused. They seed the fuzz
// corpus too. existing is a live MEC's id and name, key an Idempotency-Key
// already used for it.
func malformedCases(existingID, existingName, key string) []badCase {
	v, nf, pt, mna, ikr, nt := http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge,
		http.StatusMethodNotAllowed, http.StatusUnprocessableEntity, http.StatusConflict
	body := func(name, b string, field string) badCase {
		return badCase{name: "body/" + name, r: post(b), status: v, code: CodeValidation, field: field}
	}
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	id := mec.NewID(time.Now())
	hugeTags := withName(`"tags":{"big":"` + strings.Repeat("x", MaxBodyBytes) + `"}`)
	cases := []badCase{
		// Bodies that are not one JSON object.
		body("empty", "", "body"),
		body("blank", " \n\t ", "body"),
		body("truncated", `{"name":"edge-bad"`, "body"),
		body("array", `[{"name":"edge-bad"}]`, "body"),
		body("string", `"edge-bad"`, "body"),
		body("null", `null`, "body"),
		body("two objects", `{"name":"edge-bad"} {"name":"edge-2"}`, "body"),
		body("trailing comma", `{"name":"edge-bad",}`, "body"),
		body("single quotes", `{'name':'edge-bad'}`, "body"),
		body("yaml", "name: edge-bad\n", "body"),
		// Wrong types.
		body("name number", `{"name":1}`, "name"),
		body("nodeCount string", withName(`"nodeCount":"3"`), "nodeCount"),
		body("nodeCount fraction", withName(`"nodeCount":2.5`), "nodeCount"),
		body("nodeCount huge", withName(`"nodeCount":1e400`), "nodeCount"),
		body("publicEndpoint string", withName(`"publicEndpoint":"yes"`), "publicEndpoint"),
		body("addons string", withName(`"addons":"dns"`), "addons"),
		body("tags list", withName(`"tags":["a"]`), "tags"),
		body("tag value number", withName(`"tags":{"k":1}`), "tags.k"),
		// Out of range or invalid values.
		body("nodeCount zero", withName(`"nodeCount":0`), "nodeCount"),
		body("nodeCount 21", withName(`"nodeCount":21`), "nodeCount"),
		body("nodeCount negative", withName(`"nodeCount":-1`), "nodeCount"),
		body("rootVolume small", withName(`"rootVolumeGiB":10`), "rootVolumeGiB"),
		body("rootVolume big", withName(`"rootVolumeGiB":501`), "rootVolumeGiB"),
		body("unknown addon", withName(`"addons":["dns","kubeflow"]`), "addons[1]"),
		body("duplicate addon", withName(`"addons":["dns","dns"]`), "addons[1]"),
		body("addons over the memory", withName(`"instanceType":"t4g.small","addons":["dns","observability"]`), "addons"),
		body("dataVolumes 4", withName(`"dataVolumes":{"count":4}`), "dataVolumes.count"),
		body("dataVolumes unknown key", withName(`"dataVolumes":{"count":1,"iops":3000}`), "dataVolumes.iops"),
		body("cidr prefix", withName(`"apiAccessCidrs":["0.0.0.0/33"]`), "apiAccessCidrs[0]"),
		body("cidr host bits", withName(`"apiAccessCidrs":["10.0.0.1/24"]`), "apiAccessCidrs[0]"),
		body("cidr ipv6", withName(`"nodePortCidrs":["::/0"]`), "nodePortCidrs[0]"),
		body("region shape", withName(`"region":"mars-north-1"`), "region"),
		body("region not served", withName(`"region":"ap-south-1"`), "region"),
		body("instance type", withName(`"instanceType":"t4g"`), "instanceType"),
		body("ami id", withName(`"amiId":"ami-xyz"`), "amiId"),
		body("channel", withName(`"microk8sChannel":"latest"`), "microk8sChannel"),
		body("ttl short", withName(`"ttl":"5m"`), "ttl"),
		body("ttl words", withName(`"ttl":"forever"`), "ttl"),
		body("expiresAt past", withName(`"expiresAt":"2000-01-01T00:00:00Z"`), "expiresAt"),
		body("ttl and expiresAt", withName(`"ttl":"8h","expiresAt":"2099-01-01T00:00:00Z"`), "ttl"),
		body("reserved tag", withName(`"tags":{"aws:owner":"me"}`), "tags.aws:owner"),
		body("ha with one node", withName(`"haControlPlane":true,"nodeCount":1`), "haControlPlane"),
		// Unknown and repeated fields.
		body("unknown field", withName(`"sshKey":"ssh-rsa AAAA"`), "sshKey"),
		body("field case", withName(`"NodeCount":3`), "NodeCount"),
		body("repeated field", `{"name":"edge-bad","name":"edge-2"}`, "name"),
		body("missing name", `{"nodeCount":3}`, "name"),
		body("empty name", `{"name":""}`, "name"),
		// Injection-like and otherwise invalid names.
		body("name shell", named("a;rm -rf /"), "name"),
		body("name traversal", named("../x"), "name"),
		body("name script", named("<script>alert(1)</script>"), "name"),
		body("name sql", named("edge' OR '1'='1"), "name"),
		body("name subshell", named("$(reboot)"), "name"),
		body("name backticks", named("`id`"), "name"),
		body("name key prefix", named("name#edge"), "name"),
		body("name upper", named("EDGE"), "name"),
		body("name leading dash", named("-edge"), "name"),
		body("name trailing dash", named("edge-"), "name"),
		body("name too long", named(strings.Repeat("a", 41)), "name"),
		body("name unicode", named("édge"), "name"),
		body("name space", named("edge 1"), "name"),
		body("name nul", `{"name":"edge\u0000"}`, "name"),
		body("name newline", `{"name":"edge\n1"}`, "name"),
		body("name invalid utf8", "{\"name\":\"edge\xff\"}", "name"),
		// Sizes and encodings.
		{name: "body/too large", r: post(hugeTags), status: pt, code: CodePayloadTooLarge},
		{name: "body/too large base64", r: req{method: "POST", path: "/mecs", body: hugeTags, b64: true}, status: pt, code: CodePayloadTooLarge},
		{name: "body/bad base64", r: req{method: "POST", path: "/mecs", body: "not base64!"}, status: v, code: CodeValidation, field: "body"},
		// Idempotency keys.
		{name: "key/empty", r: post(named("edge-k"), "Idempotency-Key", ""), status: v, code: CodeValidation, field: IdempotencyHeader},
		{name: "key/too long", r: post(named("edge-k"), "Idempotency-Key", strings.Repeat("k", 129)), status: v, code: CodeValidation, field: IdempotencyHeader},
		{name: "key/space", r: post(named("edge-k"), "Idempotency-Key", "my key"), status: v, code: CodeValidation, field: IdempotencyHeader},
		{name: "key/tab", r: post(named("edge-k"), "Idempotency-Key", "my\tkey"), status: v, code: CodeValidation, field: IdempotencyHeader},
		{name: "key/non-ascii", r: post(named("edge-k"), "Idempotency-Key", "ключ"), status: v, code: CodeValidation, field: IdempotencyHeader},
		// Live name and reused key.
		{name: "conflict/name taken", r: post(named(existingName)), status: nt, code: CodeNameTaken},
		{name: "conflict/key reused", r: post(named("edge-other"), "Idempotency-Key", key), status: ikr, code: CodeIdempotencyKeyReused},
		// Listing parameters.
		{name: "list/status", r: req{method: "GET", path: "/mecs", query: "status=RUNNING"}, status: v, code: CodeValidation, field: "status"},
		{name: "list/status case", r: req{method: "GET", path: "/mecs", query: "status=ready"}, status: v, code: CodeValidation, field: "status"},
		{name: "list/status pseudo", r: req{method: "GET", path: "/mecs", query: "status=TEARDOWN_FAILED"}, status: v, code: CodeValidation, field: "status"},
		{name: "list/limit 0", r: req{method: "GET", path: "/mecs", query: "limit=0"}, status: v, code: CodeValidation, field: "limit"},
		{name: "list/limit 101", r: req{method: "GET", path: "/mecs", query: "limit=101"}, status: v, code: CodeValidation, field: "limit"},
		{name: "list/limit negative", r: req{method: "GET", path: "/mecs", query: "limit=-1"}, status: v, code: CodeValidation, field: "limit"},
		{name: "list/limit word", r: req{method: "GET", path: "/mecs", query: "limit=ten"}, status: v, code: CodeValidation, field: "limit"},
		{name: "list/limit fraction", r: req{method: "GET", path: "/mecs", query: "limit=1.5"}, status: v, code: CodeValidation, field: "limit"},
		{name: "list/limit plus", r: req{method: "GET", path: "/mecs", query: "limit=%2B5"}, status: v, code: CodeValidation, field: "limit"},
		{name: "list/limit exponent", r: req{method: "GET", path: "/mecs", query: "limit=1e2"}, status: v, code: CodeValidation, field: "limit"},
		{name: "list/limit huge", r: req{method: "GET", path: "/mecs", query: "limit=99999999999999999999"}, status: v, code: CodeValidation, field: "limit"},
		{name: "list/limit twice", r: req{method: "GET", path: "/mecs", query: "limit=1&limit=2"}, status: v, code: CodeValidation, field: "limit"},
		{name: "list/region", r: req{method: "GET", path: "/mecs", query: "region=Mars"}, status: v, code: CodeValidation, field: "region"},
		{name: "list/region injection", r: req{method: "GET", path: "/mecs", query: "region=us-east-1%27%20OR%201%3D1"}, status: v, code: CodeValidation, field: "region"},
		{name: "list/unknown parameter", r: req{method: "GET", path: "/mecs", query: "sort=name"}, status: v, code: CodeValidation, field: "sort"},
		{name: "list/token garbage", r: req{method: "GET", path: "/mecs", query: "nextToken=garbage!"}, status: v, code: CodeValidation, field: "nextToken"},
		{name: "list/token not json", r: req{method: "GET", path: "/mecs", query: "nextToken=" + b64("hello")}, status: v, code: CodeValidation, field: "nextToken"},
		{name: "list/token extra key", r: req{method: "GET", path: "/mecs", query: "nextToken=" + b64(fmt.Sprintf(`{"pk":"mec#%s","kind":"mec","id":%q,"ttl":"1"}`, id, id))}, status: v, code: CodeValidation, field: "nextToken"},
		{name: "list/token number", r: req{method: "GET", path: "/mecs", query: "nextToken=" + b64(fmt.Sprintf(`{"pk":"mec#%s","kind":"mec","id":7}`, id))}, status: v, code: CodeValidation, field: "nextToken"},
		{name: "list/token other item", r: req{method: "GET", path: "/mecs", query: "nextToken=" + b64(`{"pk":"idem#k","kind":"idem","id":"k"}`)}, status: v, code: CodeValidation, field: "nextToken"},
		{name: "list/token other status", r: req{method: "GET", path: "/mecs", query: "status=FAILED&nextToken=" + b64(fmt.Sprintf(`{"pk":"mec#%s","status":"READY","id":%q}`, id, id))}, status: v, code: CodeValidation, field: "nextToken"},
		{name: "list/token other index", r: req{method: "GET", path: "/mecs", query: "nextToken=" + b64(fmt.Sprintf(`{"pk":"mec#%s","status":"READY","id":%q}`, id, id))}, status: v, code: CodeValidation, field: "nextToken"},
		{name: "list/token long", r: req{method: "GET", path: "/mecs", query: "nextToken=" + strings.Repeat("A", 600)}, status: v, code: CodeValidation, field: "nextToken"},
		// Ids.
		{name: "id/short", r: get("/mecs/mec-123"), status: v, code: CodeValidation, field: "id"},
		{name: "id/upper", r: get("/mecs/" + strings.ToUpper(id)), status: v, code: CodeValidation, field: "id"},
		{name: "id/prefix", r: get("/mecs/xyz-" + id[4:]), status: v, code: CodeValidation, field: "id"},
		{name: "id/sql", r: get("/mecs/' OR 1=1 --"), status: v, code: CodeValidation, field: "id"},
		{name: "id/script", r: get("/mecs/<script>"), status: v, code: CodeValidation, field: "id"},
		{name: "id/dots", r: get("/mecs/.."), status: v, code: CodeValidation, field: "id"},
		{name: "id/delete", r: del("/mecs/mec-" + strings.Repeat("z", 27)), status: v, code: CodeValidation, field: "id"},
		{name: "id/kubeconfig", r: get("/mecs/not-an-id/kubeconfig"), status: v, code: CodeValidation, field: "id"},
		{name: "id/query parameter", r: req{method: "GET", path: "/mecs/" + existingID, query: "verbose=1"}, status: v, code: CodeValidation, field: "verbose"},
		// Routes and methods.
		{name: "route/root", r: get("/"), status: nf, code: CodeNotFound},
		{name: "route/other", r: get("/clusters"), status: nf, code: CodeNotFound},
		{name: "route/deep", r: get("/mecs/" + existingID + "/nodes/0"), status: nf, code: CodeNotFound},
		{name: "route/sub", r: get("/mecs/" + existingID + "/secrets"), status: nf, code: CodeNotFound},
		{name: "route/traversal", r: get("/mecs/../../etc/passwd"), status: nf, code: CodeNotFound},
		{name: "route/empty segment", r: get("/mecs//kubeconfig"), status: nf, code: CodeNotFound},
		{name: "method/put collection", r: req{method: "PUT", path: "/mecs", body: named("edge-put")}, status: mna, code: CodeMethodNotAllowed},
		{name: "method/delete collection", r: del("/mecs"), status: mna, code: CodeMethodNotAllowed},
		{name: "method/post item", r: req{method: "POST", path: "/mecs/" + existingID, body: named("edge-p")}, status: mna, code: CodeMethodNotAllowed},
		{name: "scale/while creating", r: req{method: "PATCH", path: "/mecs/" + existingID, body: `{"nodeCount":5}`}, status: http.StatusConflict, code: CodeBusy},
		{name: "scale/unknown field", r: req{method: "PATCH", path: "/mecs/" + existingID, body: `{"nodeCount":5,"instanceType":"t4g.large"}`}, status: http.StatusBadRequest, code: CodeValidation},
		{name: "scale/no nodeCount", r: req{method: "PATCH", path: "/mecs/" + existingID, body: `{"haControlPlane":false}`}, status: http.StatusBadRequest, code: CodeValidation},
		{name: "scale/zero", r: req{method: "PATCH", path: "/mecs/" + existingID, body: `{"nodeCount":0}`}, status: http.StatusBadRequest, code: CodeValidation},
		{name: "method/put item", r: req{method: "PUT", path: "/mecs/" + existingID, body: `{"nodeCount":5}`}, status: mna, code: CodeMethodNotAllowed},
		{name: "method/delete kubeconfig", r: del("/mecs/" + existingID + "/kubeconfig"), status: mna, code: CodeMethodNotAllowed},
		{name: "method/head", r: req{method: "HEAD", path: "/mecs"}, status: mna, code: CodeMethodNotAllowed},
		{name: "method/lower case", r: req{method: "post", path: "/mecs", body: named("edge-lc")}, status: mna, code: CodeMethodNotAllowed},
	}
	rep := post(named("edge-k2"), "Idempotency-Key", "k1")
	rep.multi = map[string][]string{"Idempotency-Key": {"k1", "k2"}}
	return append(cases, badCase{name: "key/repeated", r: rep, status: v, code: CodeValidation, field: IdempotencyHeader})
}

// Every malformed request gets the right 4xx and changes nothing: no item in
// DynamoDB, no StartExecution.
func TestMalformedRequestsChangeNothing(t *testing.T) {
	e := newEnv(t)
	key := "existing-key-1"
	resp := e.do(t, post(named("edge-live"), "Idempotency-Key", key))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("seed: %d %s", resp.StatusCode, resp.Body)
	}
	live := mecOf(t, resp)
	cases := malformedCases(live.ID, live.Name, key)
	if len(cases) < 50 {
		t.Fatalf("only %d cases", len(cases))
	}
	items, starts := e.count(t, ""), e.sfn.starts.Load()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			r.style = eventStyle(i) % styleCount // every case in another event shape
			resp := e.do(t, r)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, resp.Body)
			}
			er := errOf(t, resp)
			if er.Code != tc.code || er.Message == "" {
				t.Fatalf("error %+v, want code %s", er, tc.code)
			}
			if tc.field != "" {
				if _, ok := er.Fields[tc.field]; !ok {
					t.Fatalf("fields %v do not name %q", er.Fields, tc.field)
				}
			}
			if tc.status == http.StatusMethodNotAllowed && header(resp, "Allow") == "" {
				t.Fatal("405 without Allow")
			}
			if got := e.count(t, ""); got != items {
				t.Fatalf("DynamoDB items %d -> %d", items, got)
			}
			if got := e.sfn.starts.Load(); got != starts {
				t.Fatalf("StartExecution calls %d -> %d", starts, got)
			}
		})
	}
}
