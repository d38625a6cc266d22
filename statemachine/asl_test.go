// Package statemachine holds the workflows as ASL files; this test checks
// them statically: structure, substitutions, Retry and Catch coverage, and
// that they use only the ASL forms both AWS and the local runtime (kumo) run.
package statemachine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/mecd/mecd/internal/backend"
)

type machine struct {
	file   string
	raw    []byte
	states map[string]map[string]any
	start  string
}

func load(t *testing.T) []machine {
	t.Helper()
	root, err := backend.RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	var out []machine
	for _, sm := range backend.StateMachines {
		raw, err := os.ReadFile(filepath.Join(root, sm.File))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			StartAt string                    `json:"StartAt"`
			States  map[string]map[string]any `json:"States"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s is not valid JSON: %v", sm.File, err)
		}
		out = append(out, machine{file: sm.File, raw: raw, states: doc.States, start: doc.StartAt})
	}
	files, _ := filepath.Glob(filepath.Join(root, "statemachine", "*.asl.json"))
	if len(files) != len(out) {
		t.Fatalf("statemachine/ has %d ASL files, backend.StateMachines lists %d", len(files), len(out))
	}
	return out
}

// placeholderFunction maps a placeholder to its backend function.
func placeholderFunction() map[string]string {
	m := map[string]string{}
	for _, f := range backend.Functions {
		if f.Placeholder != "" {
			m[f.Placeholder] = f.Name
		}
	}
	return m
}

func TestPlaceholdersMatchSubstitutions(t *testing.T) {
	subs := backend.Substitutions(map[string]string{})
	used := map[string]bool{}
	for _, m := range load(t) {
		for _, p := range backend.Placeholders(m.raw) {
			used[p] = true
			if _, ok := subs[p]; !ok {
				t.Errorf("%s: placeholder ${%s} has no substitution", m.file, p)
			}
		}
		full := map[string]string{}
		for k := range subs {
			full[k] = "arn:aws:lambda:us-east-1:123456789012:function:x"
		}
		out, err := backend.Substitute(m.raw, full)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "${") {
			t.Errorf("%s: ${ left after substitution", m.file)
		}
	}
	for k := range subs {
		if !used[k] {
			t.Errorf("substitution %s is used by no state machine", k)
		}
	}
}

// lambdaErrors are Lambda's own failures, retried on every task. Step
// Functions reports a function that crashed, ran out of memory or timed
// out as Lambda.Unknown ("Handling errors in Step Functions"); every task
// is idempotent, so a crashed invocation is simply run again.
var lambdaErrors = []string{"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException", "Lambda.TooManyRequestsException", "Lambda.Unknown"}

// creating lists the functions whose tasks create resources (records, groups,
// instances, parameters, commands): they must be covered by a Catch.
var creating = map[string]bool{"prepare": true, "launch-nodes": true, "node-command": true}

func taskFunction(st map[string]any) string {
	res, _ := st["Resource"].(string)
	if p, ok := st["Parameters"].(map[string]any); ok {
		if fn, ok := p["FunctionName"].(string); ok {
			res = fn
		}
	}
	for ph, fn := range placeholderFunction() {
		if strings.Contains(res, "${"+ph+"}") {
			return fn
		}
	}
	return ""
}

func errorLists(st map[string]any, key string) [][]string {
	var out [][]string
	list, _ := st[key].([]any)
	for _, r := range list {
		rm, _ := r.(map[string]any)
		var names []string
		for _, e := range rm["ErrorEquals"].([]any) {
			names = append(names, e.(string))
		}
		out = append(out, names)
	}
	return out
}

func TestTasksRetryAndCatch(t *testing.T) {
	for _, m := range load(t) {
		for name, st := range m.states {
			if st["Type"] != "Task" {
				continue
			}
			fn := taskFunction(st)
			if fn == "" {
				t.Errorf("%s: task %q calls no backend function", m.file, name)
			}
			var retried []string
			for _, l := range errorLists(st, "Retry") {
				retried = append(retried, l...)
			}
			for _, e := range lambdaErrors {
				if !slices.Contains(retried, e) {
					t.Errorf("%s: task %q has no Retry on %s", m.file, name, e)
				}
			}
			if creating[fn] {
				caught := false
				for _, l := range errorLists(st, "Catch") {
					caught = caught || slices.Contains(l, "States.ALL")
				}
				if !caught {
					t.Errorf("%s: task %q (%s creates resources) has no Catch on States.ALL", m.file, name, fn)
				}
			}
		}
	}
}

func TestTransitionsAreClosed(t *testing.T) {
	for _, m := range load(t) {
		if _, ok := m.states[m.start]; !ok {
			t.Fatalf("%s: StartAt %q is not a state", m.file, m.start)
		}
		reached := map[string]bool{}
		var walk func(string)
		walk = func(n string) {
			if reached[n] {
				return
			}
			st, ok := m.states[n]
			if !ok {
				t.Errorf("%s: transition to unknown state %q", m.file, n)
				return
			}
			reached[n] = true
			for _, next := range nextStates(st) {
				walk(next)
			}
		}
		walk(m.start)
		var unreachable []string
		for n := range m.states {
			if !reached[n] {
				unreachable = append(unreachable, n)
			}
		}
		sort.Strings(unreachable)
		if len(unreachable) > 0 {
			t.Errorf("%s: unreachable states %v", m.file, unreachable)
		}
	}
}

func nextStates(st map[string]any) []string {
	var out []string
	if n, ok := st["Next"].(string); ok {
		out = append(out, n)
	}
	if n, ok := st["Default"].(string); ok {
		out = append(out, n)
	}
	for _, key := range []string{"Choices", "Catch"} {
		list, _ := st[key].([]any)
		for _, c := range list {
			if n, ok := c.(map[string]any)["Next"].(string); ok {
				out = append(out, n)
			}
		}
	}
	return out
}

// TestOnlyFormsKumoRuns forbids what kumo v0.33.1 cannot execute (DESIGN
// section 8), so the ASL that runs locally is the ASL deployed.
func TestOnlyFormsKumoRuns(t *testing.T) {
	for _, m := range load(t) {
		for name, st := range m.states {
			if st["Type"] == "Map" && st["Parameters"] != nil {
				t.Errorf("%s: Map %q uses Parameters (use ItemSelector)", m.file, name)
			}
			inspect(t, m.file+": "+name, st, false, st["Type"] == "Map")
		}
	}
}

func inspect(t *testing.T, where string, v any, inArray, inMap bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if strings.HasSuffix(k, ".$") {
				if inArray {
					t.Errorf("%s: %q is a path key inside an array", where, k)
				}
				s, _ := val.(string)
				switch {
				case strings.HasPrefix(s, "States."):
					t.Errorf("%s: %q uses an intrinsic function (%s)", where, k, s)
				case strings.Contains(s, "["):
					t.Errorf("%s: %q indexes an array in a path (%s)", where, k, s)
				case strings.HasPrefix(s, "$$") && s != "$$.Task.Token" && !(inMap && k != ""):
					t.Errorf("%s: %q uses the context object outside ItemSelector (%s)", where, k, s)
				}
			}
			if strings.HasSuffix(k, "Path") {
				if s, ok := val.(string); ok && (strings.Contains(s, "[") || strings.HasPrefix(s, "States.")) {
					t.Errorf("%s: %s %q uses a form kumo cannot run", where, k, s)
				}
			}
			inspect(t, where, val, inArray, inMap)
		}
	case []any:
		for _, e := range x {
			inspect(t, where, e, true, inMap)
		}
	}
}
