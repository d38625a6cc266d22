package ec2sim

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mecd/mecd/test/nodesim/sigv4"
)

// This file holds EC2 Query protocol plumbing: reading form parameters the way
// the SDK's ec2query serializer writes them, writing XML the way EC2 answers,
// errors, filters and pagination.

const (
	apiVersion = "2016-11-15"
	xmlns      = "http://ec2.amazonaws.com/doc/" + apiVersion + "/"
	// ownerID is the account that owns EC2 resources; kumo uses 000000000000
	// for every service but IAM.
	ownerID = "000000000000"
	// iamAccount is kumo's IAM account, used for instance profile ARNs built
	// from a name, so they match the profiles kumo creates.
	iamAccount    = "123456789012"
	defaultRegion = "us-east-1"
	timeFormat    = "2006-01-02T15:04:05.000Z"
)

// apiError is an EC2 error answer.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errf(code, format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

func missing(name string) error {
	return errf("MissingParameter", "The request must contain the parameter %s", name)
}

func invalidValue(name, value string) error {
	return errf("InvalidParameterValue", "Value (%s) for parameter %s is invalid.", value, name)
}

// WriteError writes an error in EC2's XML error format. The front uses it for
// injected faults (RequestLimitExceeded with HTTP 503).
func WriteError(w http.ResponseWriter, status int, code, message string) {
	var x xmlw
	x.raw(`<?xml version="1.0" encoding="UTF-8"?>`)
	x.open("Response")
	x.open("Errors")
	x.open("Error")
	x.leaf("Code", code)
	x.leaf("Message", message)
	x.close("Error")
	x.close("Errors")
	x.leaf("RequestID", requestID())
	x.close("Response")
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(x.b.String())) // the client went away: nothing to do
}

func writeAPIError(w http.ResponseWriter, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		WriteError(w, ae.status, ae.code, ae.message)
		return
	}
	WriteError(w, http.StatusInternalServerError, "InternalError", "An internal error has occurred: "+err.Error())
}

// requestID is a UUID-shaped id; it need not be reproducible, so it uses the
// global source rather than the Sim's seeded one.
func requestID() string {
	a, b := rand.Uint64(), rand.Uint64()
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

// regionOf is the region the request was signed for.
func regionOf(r *http.Request) string { return sigv4.Region(r, defaultRegion) }

// params reads EC2 Query parameters under a prefix. Lists are flattened
// ("InstanceId.1", "Filter.2.Value.1"), structures are dotted
// ("MetadataOptions.HttpTokens").
type params struct {
	v      url.Values
	prefix string
}

func (p params) get(name string) string { return p.v.Get(p.prefix + name) }

func (p params) has(name string) bool { return p.v.Has(p.prefix + name) }

// sub is the structure under name.
func (p params) sub(name string) params { return params{v: p.v, prefix: p.prefix + name + "."} }

// hasSub reports whether any parameter lies under the structure name.
func (p params) hasSub(name string) bool {
	pre := p.prefix + name + "."
	for k := range p.v {
		if strings.HasPrefix(k, pre) {
			return true
		}
	}
	return false
}

// indices lists the list indices present under name, in numeric order.
func (p params) indices(name string) []int {
	pre := p.prefix + name + "."
	seen := map[int]bool{}
	for k := range p.v {
		rest, ok := strings.CutPrefix(k, pre)
		if !ok {
			continue
		}
		if i := strings.IndexByte(rest, '.'); i >= 0 {
			rest = rest[:i]
		}
		if n, err := strconv.Atoi(rest); err == nil && n > 0 {
			seen[n] = true
		}
	}
	out := make([]int, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

// list is a flattened list of scalars (name.1, name.2, ...).
func (p params) list(name string) []string {
	var out []string
	for _, i := range p.indices(name) {
		if k := p.prefix + name + "." + strconv.Itoa(i); p.v.Has(k) {
			out = append(out, p.v.Get(k))
		}
	}
	return out
}

// structs is a flattened list of structures (name.1.X, name.2.X, ...).
func (p params) structs(name string) []params {
	var out []params
	for _, i := range p.indices(name) {
		out = append(out, params{v: p.v, prefix: p.prefix + name + "." + strconv.Itoa(i) + "."})
	}
	return out
}

// intOpt parses an optional integer; ok is false when absent.
func (p params) intOpt(name string) (n int, ok bool, err error) {
	if !p.has(name) {
		return 0, false, nil
	}
	s := p.get(name)
	n, err = strconv.Atoi(s)
	if err != nil {
		return 0, false, invalidValue(name, s)
	}
	return n, true, nil
}

// boolOpt parses an optional boolean; ok is false when absent.
func (p params) boolOpt(name string) (b bool, ok bool, err error) {
	if !p.has(name) {
		return false, false, nil
	}
	s := p.get(name)
	b, err = strconv.ParseBool(s)
	if err != nil {
		return false, false, invalidValue(name, s)
	}
	return b, true, nil
}

// xmlw builds an XML answer. EC2 answers are simple enough that a writer is
// clearer than a struct per shape.
type xmlw struct{ b strings.Builder }

func (x *xmlw) raw(s string)      { x.b.WriteString(s) }
func (x *xmlw) open(name string)  { x.b.WriteString("<" + name + ">") }
func (x *xmlw) close(name string) { x.b.WriteString("</" + name + ">") }

func (x *xmlw) leaf(name, value string) {
	x.open(name)
	x.b.WriteString(escape(value))
	x.close(name)
}

// opt writes a leaf only when value is set: EC2 omits absent fields.
func (x *xmlw) opt(name, value string) {
	if value != "" {
		x.leaf(name, value)
	}
}

func (x *xmlw) boolean(name string, v bool) { x.leaf(name, strconv.FormatBool(v)) }
func (x *xmlw) int(name string, v int64)    { x.leaf(name, strconv.FormatInt(v, 10)) }
func (x *xmlw) time(name string, t time.Time) {
	x.leaf(name, t.UTC().Format(timeFormat))
}

func (x *xmlw) elem(name string, body func()) {
	x.open(name)
	body()
	x.close(name)
}

// set writes a list of n items: <name><item>...</item>...</name>.
func (x *xmlw) set(name string, n int, item func(i int)) {
	x.open(name)
	for i := range n {
		x.open("item")
		item(i)
		x.close("item")
	}
	x.close(name)
}

// tags writes a tagSet sorted by key; omit says whether to leave out an empty set.
func (x *xmlw) tags(t map[string]string, omit bool) {
	if len(t) == 0 && omit {
		return
	}
	keys := slices.Sorted(maps.Keys(t))
	x.set("tagSet", len(keys), func(i int) {
		x.leaf("key", keys[i])
		x.leaf("value", t[keys[i]])
	})
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;", "\r", "&#xD;")

func escape(s string) string { return xmlEscaper.Replace(s) }

// filter is one Filter.N of a Describe call: values are ORed, filters ANDed.
type filter struct {
	name   string
	values []string
}

func parseFilters(p params) []filter {
	var out []filter
	for _, f := range p.structs("Filter") {
		out = append(out, filter{name: f.get("Name"), values: f.list("Value")})
	}
	return out
}

// fields maps a filter name to the values a resource has for it.
type fields[T any] map[string]func(T) []string

// applyFilters keeps the items matching every filter; tag:KEY, tag-key and
// tag-value work on any resource with tags. An unknown filter name is an
// error, as on EC2.
func applyFilters[T any](items []T, fs []filter, known fields[T], tags func(T) map[string]string) ([]T, error) {
	for _, f := range fs {
		_, ok := known[f.name]
		if !ok && !strings.HasPrefix(f.name, "tag:") && f.name != "tag-key" && f.name != "tag-value" {
			return nil, errf("InvalidParameterValue", "The filter '%s' is invalid", f.name)
		}
	}
	var out []T
	for _, it := range items {
		if matchAll(it, fs, known, tags) {
			out = append(out, it)
		}
	}
	return out, nil
}

func matchAll[T any](it T, fs []filter, known fields[T], tags func(T) map[string]string) bool {
	for _, f := range fs {
		var have []string
		switch {
		case strings.HasPrefix(f.name, "tag:"):
			if v, ok := tags(it)[strings.TrimPrefix(f.name, "tag:")]; ok {
				have = []string{v}
			}
		case f.name == "tag-key":
			have = slices.Sorted(maps.Keys(tags(it)))
		case f.name == "tag-value":
			for _, v := range tags(it) {
				have = append(have, v)
			}
		default:
			have = known[f.name](it)
		}
		if !matchAny(have, f.values) {
			return false
		}
	}
	return true
}

func matchAny(have, want []string) bool {
	for _, h := range have {
		for _, w := range want {
			if glob(w, h) {
				return true
			}
		}
	}
	return false
}

// glob matches EC2 filter wildcards: * any run, ? one character.
func glob(pattern, s string) bool {
	if !strings.ContainsAny(pattern, "*?") {
		return pattern == s
	}
	p, t := []rune(pattern), []rune(s)
	var pi, ti, star, mark = 0, 0, -1, 0
	for ti < len(t) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == t[ti]):
			pi++
			ti++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ti
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			ti = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// page cuts items (sorted by key) after NextToken, at most MaxResults. The
// token carries the last key returned, so pages stay stable when resources
// are added between calls. maxResults 0 means everything.
func page[T any](items []T, key func(T) string, p params, minMax, maxMax int) ([]T, string, error) {
	slices.SortFunc(items, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	if tok := p.get("NextToken"); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		after, ok := strings.CutPrefix(string(raw), "after:")
		if err != nil || !ok {
			return nil, "", errf("InvalidPaginationToken", "Invalid pagination token: %s", tok)
		}
		i := sort.Search(len(items), func(i int) bool { return key(items[i]) > after })
		items = items[i:]
	}
	n, ok, err := p.intOpt("MaxResults")
	if err != nil {
		return nil, "", err
	}
	if !ok {
		return items, "", nil
	}
	if n < minMax || n > maxMax {
		return nil, "", errf("InvalidParameterValue", "Value ( %d ) for parameter maxResults is invalid. Expecting a value between %d and %d.", n, minMax, maxMax)
	}
	if len(items) <= n {
		return items, "", nil
	}
	items = items[:n]
	return items, base64.RawURLEncoding.EncodeToString([]byte("after:" + key(items[n-1]))), nil
}

// noMaxWithIDs is EC2's rule that MaxResults cannot be combined with an id list.
func noMaxWithIDs(p params, ids []string, listName string) error {
	if len(ids) > 0 && p.has("MaxResults") {
		return errf("InvalidParameterCombination", "The parameter %s cannot be used with the parameter maxResults", listName)
	}
	return nil
}

var (
	reInstanceID = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)
	reImageID    = regexp.MustCompile(`^ami-([0-9a-f]{8}|[0-9a-f]{17})$`)
	reGroupID    = regexp.MustCompile(`^sg-([0-9a-f]{8}|[0-9a-f]{17})$`)
	reVolumeID   = regexp.MustCompile(`^vol-([0-9a-f]{8}|[0-9a-f]{17})$`)
	reSubnetID   = regexp.MustCompile(`^subnet-([0-9a-f]{8}|[0-9a-f]{17})$`)
	reVpcID      = regexp.MustCompile(`^vpc-([0-9a-f]{8}|[0-9a-f]{17})$`)
)

// notFoundList formats EC2's "does not exist" message for one or several ids.
func notFoundList(code, noun string, ids []string) error {
	if len(ids) == 1 {
		return errf(code, "The %s ID '%s' does not exist", noun, ids[0])
	}
	return errf(code, "The %s IDs '%s' do not exist", noun, strings.Join(ids, ", "))
}
