package stack

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/mecd/mecd/internal/backend"
)

// Synthesis costs seconds (the jsii kernel runs aws-cdk-lib in Node), so the
// tests share a few synthesized apps and inspect their templates.

const (
	testStack  = "mecd-test"
	homeRegion = "eu-west-1"
	mecRegion  = "us-east-1"
)

var functionsDir string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "mecd-stack-test")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		// Every function the tests may deploy, as a dummy bootstrap.
		for _, f := range append(append([]backend.Function(nil), backend.Functions...), extraFunctions...) {
			if err := os.MkdirAll(filepath.Join(dir, f.Name), 0o755); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			if err := os.WriteFile(filepath.Join(dir, f.Name, "bootstrap"), []byte("#!/bin/sh\n# "+f.Name+"\n"), 0o755); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		functionsDir = dir
		return m.Run()
	}()
	jsii.Close()
	os.Exit(code)
}

// extraFunctions are issue 5's functions, for the case they are missing
// from internal/backend (the tests build the stack with and without them).
var extraFunctions = []backend.Function{
	{Name: APIFunction, Description: "test: the MEC API", Env: []string{backend.EnvTableName, backend.EnvProvisionSMArn, backend.EnvTeardownSMArn, backend.EnvLogLevel}, MemoryMB: 512, TimeoutSeconds: 29},
	{Name: SweeperFunction, Description: "test: the sweeper", Env: []string{backend.EnvTableName, backend.EnvTeardownSMArn, backend.EnvSweepBatch, backend.EnvLogLevel}, MemoryMB: 256, TimeoutSeconds: 60},
}

// synthesized is one synthesized stack: its template as JSON and the
// cdk-nag findings nobody suppressed.
type synthesized struct {
	defs     Definitions
	tpl      assertions.Template
	json     map[string]any
	findings []string
}

type fixture struct {
	once sync.Once
	s    []*synthesized
	err  error
}

func (f *fixture) get(t *testing.T, build func() ([]*synthesized, error)) []*synthesized {
	t.Helper()
	f.once.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				f.err = fmt.Errorf("synth panicked: %v", r)
			}
		}()
		f.s, f.err = build()
	})
	if f.err != nil {
		t.Fatal(f.err)
	}
	return f.s
}

var fullFixture, coreFixture fixture

// full is the stack as the backend defines it (with the API, the sweeper and
// the teardown workflow, adding them if the backend lacks them), in an app
// that also has the forwarder of a second MEC region.
func full(t *testing.T) (*synthesized, *synthesized) {
	s := fullFixture.get(t, func() ([]*synthesized, error) {
		defs := withLifecycle(BackendDefinitions())
		app := awscdk.NewApp(nil)
		main := NewMecdStack(app, testStack, &MecdStackProps{
			StackProps:     awscdk.StackProps{Env: &awscdk.Environment{Region: jsii.String(homeRegion)}},
			FunctionsDir:   functionsDir,
			AllowedRegions: []string{homeRegion, mecRegion},
			Definitions:    &defs,
		})
		fwd := NewEventForwarderStack(app, testStack+"-events-"+mecRegion, &EventForwarderProps{
			StackProps: awscdk.StackProps{Env: &awscdk.Environment{Region: jsii.String(mecRegion)}},
			HomeRegion: homeRegion,
		})
		return inspect(app, defs, main, fwd), nil
	})
	return s[0], s[1]
}

// core is the stack of the provisioning issue alone: no API, no sweeper, no
// teardown workflow.
func core(t *testing.T) *synthesized {
	s := coreFixture.get(t, func() ([]*synthesized, error) {
		defs := BackendDefinitions()
		defs.Functions = nil
		for _, f := range BackendDefinitions().Functions {
			if f.Name != APIFunction && f.Name != SweeperFunction && f.Name != ReaperFunction {
				defs.Functions = append(defs.Functions, f)
			}
		}
		defs.StateMachines = nil
		for _, sm := range BackendDefinitions().StateMachines {
			if sm.Name != TeardownMachine {
				defs.StateMachines = append(defs.StateMachines, sm)
			}
		}
		app := awscdk.NewApp(nil)
		st := NewMecdStack(app, testStack, &MecdStackProps{FunctionsDir: functionsDir, Definitions: &defs})
		return inspect(app, defs, st), nil
	})
	return s[0]
}

// withLifecycle adds the API and sweeper functions and the teardown
// workflow if the backend does not define them yet.
func withLifecycle(d Definitions) Definitions {
	has := map[string]bool{}
	for _, f := range d.Functions {
		has[f.Name] = true
	}
	d.Functions = append([]backend.Function(nil), d.Functions...)
	for _, f := range extraFunctions {
		if !has[f.Name] {
			d.Functions = append(d.Functions, f)
		}
	}
	hasTeardown := false
	for _, sm := range d.StateMachines {
		hasTeardown = hasTeardown || sm.Name == TeardownMachine
	}
	if !hasTeardown {
		d.StateMachines = append(append([]backend.StateMachine(nil), d.StateMachines...),
			backend.StateMachine{Name: TeardownMachine, File: "statemachine/provision.asl.json"})
	}
	return d
}

// inspect applies cdk-nag as the app does, then synthesizes each stack.
func inspect(app awscdk.App, defs Definitions, stacks ...awscdk.Stack) []*synthesized {
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true), Reports: jsii.Bool(false)}), nil)
	var out []*synthesized
	for _, st := range stacks {
		tpl := assertions.Template_FromStack(st, nil) // also fails on a dependency cycle
		s := &synthesized{defs: defs, tpl: tpl, json: asMap(tpl.ToJSON())}
		ann := assertions.Annotations_FromStack(st)
		nag := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
		for _, msgs := range [][]string{messages(ann.FindError(jsii.String("*"), nag)), messages(ann.FindWarning(jsii.String("*"), nag))} {
			s.findings = append(s.findings, msgs...)
		}
		out = append(out, s)
	}
	return out
}

func messages[T any](msgs *[]T) []string {
	var out []string
	if msgs == nil {
		return nil
	}
	for _, m := range *msgs {
		b, _ := json.Marshal(m)
		out = append(out, string(b))
	}
	return out
}

// Template helpers. Resources are found by type and property, never by
// (hashed) logical id; logical ids found that way are used to follow
// references.

func asMap(v any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	return m
}

type resource struct {
	ID    string
	Type  string
	Props map[string]any
	Raw   map[string]any
}

func (s *synthesized) resources(typ string) []resource {
	var out []resource
	for id, r := range s.json["Resources"].(map[string]any) {
		rm := r.(map[string]any)
		if rm["Type"] == typ {
			props, _ := rm["Properties"].(map[string]any)
			out = append(out, resource{ID: id, Type: typ, Props: props, Raw: rm})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *synthesized) resource(id string) resource {
	rm := s.json["Resources"].(map[string]any)[id].(map[string]any)
	props, _ := rm["Properties"].(map[string]any)
	return resource{ID: id, Type: rm["Type"].(string), Props: props, Raw: rm}
}

func (s *synthesized) one(t *testing.T, typ string) resource {
	t.Helper()
	rs := s.resources(typ)
	if len(rs) != 1 {
		t.Fatalf("%d %s resources, want 1", len(rs), typ)
	}
	return rs[0]
}

// function finds the Lambda of a backend function (by its description).
func (s *synthesized) function(t *testing.T, f backend.Function) resource {
	t.Helper()
	var found []resource
	for _, r := range s.resources("AWS::Lambda::Function") {
		if r.Props["Description"] == f.Description {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("function %s: %d Lambdas with its description, want 1", f.Name, len(found))
	}
	return found[0]
}

// refID is the logical id a {"Ref"} or {"Fn::GetAtt"} points at ("" if neither).
func refID(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	if r, ok := m["Ref"].(string); ok {
		return r
	}
	if ga, ok := m["Fn::GetAtt"].([]any); ok && len(ga) == 2 {
		return ga[0].(string)
	}
	return ""
}

// flat renders a template value as a string the way cdk-nag does: Fn::Sub's
// ${X} and references become <X>.
func flat(v any) string {
	switch x := v.(type) {
	case string:
		return strings.NewReplacer("${", "<", "}", ">").Replace(x)
	case map[string]any:
		if sub, ok := x["Fn::Sub"].(string); ok {
			return flat(sub)
		}
		if j, ok := x["Fn::Join"].([]any); ok {
			parts := []string{}
			for _, p := range j[1].([]any) {
				parts = append(parts, flat(p))
			}
			return strings.Join(parts, j[0].(string))
		}
		if r, ok := x["Ref"].(string); ok {
			return "<" + r + ">"
		}
		if ga, ok := x["Fn::GetAtt"].([]any); ok {
			return "<" + ga[0].(string) + "." + ga[1].(string) + ">"
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func list(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}
