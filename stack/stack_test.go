package stack

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/mecd/mecd/internal/backend"
	"github.com/mecd/mecd/internal/store"
)

func TestFunctionsAreArm64Al2023WithTheirEnvironmentAndLogGroup(t *testing.T) {
	s, _ := full(t)
	table := s.one(t, "AWS::DynamoDB::Table").ID
	boundary := s.nodeBoundary(t).ID
	if n := len(s.resources("AWS::Lambda::Function")); n != len(s.defs.Functions) {
		t.Errorf("%d Lambda functions, want one per backend function (%d)", n, len(s.defs.Functions))
	}
	for _, f := range s.defs.Functions {
		fn := s.function(t, f)
		p := fn.Props
		if !reflect.DeepEqual(p["Architectures"], []any{"arm64"}) || p["Runtime"] != "provided.al2023" || p["Handler"] != "bootstrap" {
			t.Errorf("%s: architectures %v, runtime %v, handler %v; want [arm64] provided.al2023 bootstrap", f.Name, p["Architectures"], p["Runtime"], p["Handler"])
		}
		if p["MemorySize"] != float64(max(f.MemoryMB, 128)) || p["Timeout"] != float64(f.TimeoutSeconds) {
			t.Errorf("%s: memory %v timeout %v, want the backend's %d MB %d s", f.Name, p["MemorySize"], p["Timeout"], f.MemoryMB, f.TimeoutSeconds)
		}
		if tc, _ := p["TracingConfig"].(map[string]any); tc["Mode"] != "Active" {
			t.Errorf("%s: tracing %v, want Active", f.Name, p["TracingConfig"])
		}
		lc, _ := p["LoggingConfig"].(map[string]any)
		if lc["LogFormat"] != "JSON" {
			t.Errorf("%s: log format %v, want JSON", f.Name, lc["LogFormat"])
		}
		lg := refID(lc["LogGroup"])
		if lg == "" || s.resource(lg).Type != "AWS::Logs::LogGroup" || s.resource(lg).Props["RetentionInDays"] != float64(30) {
			t.Errorf("%s: log group %v: want its own AWS::Logs::LogGroup with the default retention (30 days)", f.Name, lc["LogGroup"])
		}

		env, _ := p["Environment"].(map[string]any)
		vars, _ := env["Variables"].(map[string]any)
		names := slices.Sorted(maps.Keys(vars))
		want := append([]string(nil), f.Env...)
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Errorf("%s: environment %v, want exactly the variables it declares %v", f.Name, names, want)
		}
		for k, v := range vars {
			switch k {
			case backend.EnvTableName:
				if refID(v) != table {
					t.Errorf("%s: %s = %v, want the table", f.Name, k, v)
				}
			case backend.EnvNodeBoundaryArn:
				if refID(v) != boundary {
					t.Errorf("%s: %s = %v, want the node boundary policy", f.Name, k, v)
				}
			case backend.EnvNodeCorePolicyArn:
				if got := flat(v); got != coreARN {
					t.Errorf("%s: %s = %s, want %s", f.Name, k, got, coreARN)
				}
			case backend.EnvProvisionSMArn, backend.EnvTeardownSMArn, backend.EnvRollbackSMArn, backend.EnvScaleSMArn:
				machine := map[string]string{backend.EnvProvisionSMArn: ProvisionMachine, backend.EnvTeardownSMArn: TeardownMachine,
					backend.EnvRollbackSMArn: RollbackMachine, backend.EnvScaleSMArn: ScaleMachine}[k]
				if got, want := flat(v), "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:stateMachine:"+testStack+"-"+machine; got != want {
					t.Errorf("%s: %s = %s, want %s", f.Name, k, got, want)
				}
			case backend.EnvAllowedRegions:
				if v != homeRegion+","+mecRegion {
					t.Errorf("%s: %s = %v", f.Name, k, v)
				}
			case backend.EnvAdminRoleArns:
				if v != "" {
					t.Errorf("%s: %s = %v, want none: the test stack names no admin roles", f.Name, k, v)
				}
			case backend.EnvRecordRetention:
				if v != "720h" {
					t.Errorf("%s: %s = %v, want 720h", f.Name, k, v)
				}
			default:
				if _, ok := v.(string); !ok || v == "" {
					t.Errorf("%s: %s = %v, want a literal value", f.Name, k, v)
				}
			}
		}
	}
}

func TestStateMachinesHaveEveryPlaceholderSubstituted(t *testing.T) {
	s, _ := full(t)
	machines := s.resources("AWS::StepFunctions::StateMachine")
	if len(machines) != len(s.defs.StateMachines) {
		t.Fatalf("%d state machines, want %d", len(machines), len(s.defs.StateMachines))
	}
	root, err := backend.RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	fnIDs := map[string]string{} // function name -> logical id
	for _, f := range s.defs.Functions {
		fnIDs[f.Name] = s.function(t, f).ID
	}
	for _, def := range s.defs.StateMachines {
		var sm *resource
		for _, r := range machines {
			if r.Props["StateMachineName"] == testStack+"-"+def.Name {
				sm = &r
			}
		}
		if sm == nil {
			t.Errorf("no state machine named %s-%s", testStack, def.Name)
			continue
		}
		p := sm.Props
		if p["StateMachineType"] != "STANDARD" {
			t.Errorf("%s: type %v, want STANDARD", def.Name, p["StateMachineType"])
		}
		if tc, _ := p["TracingConfiguration"].(map[string]any); tc["Enabled"] != true {
			t.Errorf("%s: tracing %v", def.Name, p["TracingConfiguration"])
		}
		lc, _ := p["LoggingConfiguration"].(map[string]any)
		if lc["Level"] != "ALL" || lc["IncludeExecutionData"] != false || len(list(lc["Destinations"])) != 1 {
			t.Errorf("%s: logging %v, want ALL without execution data (payloads carry task tokens) to one log group", def.Name, lc)
		}
		asl, err := os.ReadFile(filepath.Join(root, def.File))
		if err != nil {
			t.Fatal(err)
		}
		defString, ok := p["DefinitionString"].(string)
		if !ok || defString != string(asl) {
			t.Errorf("%s: the definition is not %s as written", def.Name, def.File)
			continue
		}
		// Render as CloudFormation will: each substitution is a function's ARN.
		subs := map[string]string{}
		for k, v := range p["DefinitionSubstitutions"].(map[string]any) {
			subs[k] = "arn:of:" + refID(v)
		}
		rendered, err := backend.Substitute([]byte(defString), subs)
		if err != nil {
			t.Errorf("%s: %v", def.Name, err)
			continue
		}
		if strings.Contains(string(rendered), "${") {
			t.Errorf("%s: the rendered definition still has a ${...}", def.Name)
		}
		var doc map[string]any
		if err := json.Unmarshal(rendered, &doc); err != nil {
			t.Errorf("%s: rendered definition is not JSON: %v", def.Name, err)
		}
		// The same substitutions the local runtime computes, restricted to this workflow.
		local := map[string]string{}
		for name, id := range fnIDs {
			local[name] = "arn:of:" + id
		}
		want := map[string]string{}
		all := backend.Substitutions(local)
		for _, ph := range backend.Placeholders(asl) {
			want[ph] = all[ph]
		}
		if !reflect.DeepEqual(subs, want) {
			t.Errorf("%s: substitutions %v, want backend.Substitutions' %v", def.Name, subs, want)
		}
	}
}

func TestAPIMethodsAllNeedIAMAuth(t *testing.T) {
	s, _ := full(t)
	api := s.one(t, "AWS::ApiGateway::RestApi")
	apiFn := s.function(t, backend.Function{Name: APIFunction, Description: descriptionOf(s.defs, APIFunction)}).ID
	apiPaths := s.apiPaths()
	path := func(id string) string { return apiPaths[id] }
	methods := s.resources("AWS::ApiGateway::Method")
	var paths []string
	for _, m := range methods {
		p := m.Props
		if p["AuthorizationType"] != "AWS_IAM" {
			t.Errorf("method %s %s: authorization %v, want AWS_IAM", p["HttpMethod"], path(refID(p["ResourceId"])), p["AuthorizationType"])
		}
		if refID(p["RestApiId"]) != api.ID || p["HttpMethod"] != "ANY" || refID(p["RequestValidatorId"]) == "" {
			t.Errorf("method %v: want one ANY method per resource, validated", p)
		}
		integ, _ := p["Integration"].(map[string]any)
		if integ["Type"] != "AWS_PROXY" || !strings.Contains(flat(integ["Uri"]), "<"+apiFn+".Arn>") {
			t.Errorf("method %s: integration %v, want a Lambda proxy to the api function", path(refID(p["ResourceId"])), integ)
		}
		paths = append(paths, path(refID(p["ResourceId"])))
	}
	sort.Strings(paths)
	want := append([]string(nil), backend.APIResources...)
	sort.Strings(want)
	if !slices.Equal(paths, want) {
		t.Errorf("methods on %v, want one on each of backend.APIResources %v", paths, want)
	}
	v := s.one(t, "AWS::ApiGateway::RequestValidator").Props
	if v["ValidateRequestBody"] != true || v["ValidateRequestParameters"] != true {
		t.Errorf("request validator %v", v)
	}
	stage := s.one(t, "AWS::ApiGateway::Stage").Props
	if stage["StageName"] != backend.APIStage || stage["TracingEnabled"] != true {
		t.Errorf("stage %v %v, want %s with tracing", stage["StageName"], stage["TracingEnabled"], backend.APIStage)
	}
	if als, _ := stage["AccessLogSetting"].(map[string]any); s.resource(refID(als["DestinationArn"])).Type != "AWS::Logs::LogGroup" {
		t.Errorf("access logs %v, want a log group", stage["AccessLogSetting"])
	}
	ms, _ := list(stage["MethodSettings"])[0].(map[string]any)
	if ms["ThrottlingRateLimit"] != float64(DefaultAPIRateLimit) || ms["ThrottlingBurstLimit"] != float64(DefaultAPIBurstLimit) ||
		ms["DataTraceEnabled"] != false || ms["LoggingLevel"] != "ERROR" {
		t.Errorf("method settings %v: want throttling, error logs and no data trace (bodies carry kubeconfigs)", ms)
	}
	// Stages log only once the region's API Gateway account has a CloudWatch
	// role; the stack sets it and keeps it on destroy (other APIs may use it).
	acct := s.one(t, "AWS::ApiGateway::Account")
	if role := refID(acct.Props["CloudWatchRoleArn"]); role == "" || acct.Raw["DeletionPolicy"] != "Retain" || s.resource(role).Raw["DeletionPolicy"] != "Retain" {
		t.Errorf("API Gateway account %v (%v): want a CloudWatch role, both retained", acct.Props, acct.Raw["DeletionPolicy"])
	}
}

func TestSweepScheduleTargetsTheSweeperAndTheReaper(t *testing.T) {
	s, _ := full(t)
	sweeper := s.function(t, backend.Function{Name: SweeperFunction, Description: descriptionOf(s.defs, SweeperFunction)}).ID
	reaper := s.function(t, backend.Function{Name: ReaperFunction, Description: descriptionOf(s.defs, ReaperFunction)}).ID
	var found int
	for _, r := range s.resources("AWS::Events::Rule") {
		if r.Props["ScheduleExpression"] == nil {
			continue
		}
		found++
		if r.Props["ScheduleExpression"] != "rate(5 minutes)" {
			t.Errorf("schedule %v, want rate(5 minutes)", r.Props["ScheduleExpression"])
		}
		targets := list(r.Props["Targets"])
		if len(targets) != 2 || refID(targets[0].(map[string]any)["Arn"]) != sweeper || refID(targets[1].(map[string]any)["Arn"]) != reaper {
			t.Errorf("schedule targets %v, want the sweeper and the reaper", targets)
		}
	}
	if found != 1 {
		t.Errorf("%d schedules, want 1", found)
	}
}

func TestEventRulesMatchTheBackend(t *testing.T) {
	s, fwd := full(t)
	for _, rule := range s.defs.EventRules {
		var want any
		if err := json.Unmarshal([]byte(rule.Pattern), &want); err != nil {
			t.Fatal(err)
		}
		fn := s.function(t, backend.Function{Name: rule.Function, Description: descriptionOf(s.defs, rule.Function)}).ID
		var found int
		for _, r := range s.resources("AWS::Events::Rule") {
			if reflect.DeepEqual(r.Props["EventPattern"], want) {
				found++
				if targets := list(r.Props["Targets"]); len(targets) != 1 || refID(targets[0].(map[string]any)["Arn"]) != fn {
					t.Errorf("rule %s targets %v, want %s", rule.Name, targets, rule.Function)
				}
			}
		}
		if found != 1 {
			t.Errorf("rule %s: %d rules with its pattern, want 1", rule.Name, found)
		}
		// The other MEC region forwards the same events to the home bus.
		found = 0
		for _, r := range fwd.resources("AWS::Events::Rule") {
			if reflect.DeepEqual(r.Props["EventPattern"], want) {
				found++
				targets := list(r.Props["Targets"])
				if len(targets) != 1 || flat(targets[0].(map[string]any)["Arn"]) != "arn:<AWS::Partition>:events:"+homeRegion+":<AWS::AccountId>:event-bus/default" {
					t.Errorf("forwarder %s targets %v, want the home region's default bus", rule.Name, targets)
				}
			}
		}
		if found != 1 {
			t.Errorf("forwarder: %d rules with %s's pattern, want 1", found, rule.Name)
		}
	}
}

// Node commands run mecd's own document, in the home region and every
// forwarded one; the command-status rule matches that document only, and
// what a rule cannot deliver goes to an encrypted dead-letter queue.
func TestNodeDocumentAndDeadLetters(t *testing.T) {
	if nodeDocument != backend.NodeDocument.Name {
		t.Fatalf("the IAM pattern's document %q is not backend.NodeDocument %q", nodeDocument, backend.NodeDocument.Name)
	}
	var content any
	if err := json.Unmarshal([]byte(backend.NodeDocument.Content), &content); err != nil {
		t.Fatal(err)
	}
	home, fwd := full(t)
	for _, st := range []*synthesized{home, fwd} {
		doc := st.one(t, "AWS::SSM::Document")
		if doc.Props["Name"] != backend.NodeDocument.Name || doc.Props["DocumentType"] != "Command" || !reflect.DeepEqual(doc.Props["Content"], content) {
			t.Errorf("node document %v", doc.Props)
		}
		q := st.one(t, "AWS::SQS::Queue")
		if q.Props["SqsManagedSseEnabled"] != true {
			t.Errorf("dead-letter queue %v: want SQS-managed encryption", q.Props)
		}
		for _, r := range st.resources("AWS::Events::Rule") {
			if r.Props["ScheduleExpression"] != nil {
				continue
			}
			detail, _ := r.Props["EventPattern"].(map[string]any)["detail"].(map[string]any)
			if docs := list(detail["document-name"]); len(docs) != 1 || docs[0] != backend.NodeDocument.Name {
				t.Errorf("rule %v matches documents %v, want %s only", r.ID, docs, backend.NodeDocument.Name)
			}
			for _, tg := range list(r.Props["Targets"]) {
				dlc, _ := tg.(map[string]any)["DeadLetterConfig"].(map[string]any)
				if refID(dlc["Arn"]) != q.ID {
					t.Errorf("rule %v target %v has no dead-letter queue", r.ID, tg)
				}
			}
		}
	}
	var sends []string
	for _, stmt := range home.statements() {
		if slices.Contains(stmt.actions, "ssm:SendCommand") {
			sends = append(sends, stmt.resources...)
		}
	}
	if !slices.ContainsFunc(sends, func(r string) bool { return strings.HasSuffix(r, ":document/"+backend.NodeDocument.Name) }) ||
		slices.ContainsFunc(sends, func(r string) bool { return strings.Contains(r, "AWS-RunShellScript") }) {
		t.Errorf("SendCommand resources %v: want mecd's document and not AWS-RunShellScript", sends)
	}
}

func TestTableHasPITRTTLAndTheGSIs(t *testing.T) {
	s, _ := full(t)
	tbl := s.one(t, "AWS::DynamoDB::Table")
	p := tbl.Props
	def := store.Table
	if p["BillingMode"] != "PAY_PER_REQUEST" {
		t.Errorf("billing %v, want on-demand", p["BillingMode"])
	}
	if pitr, _ := p["PointInTimeRecoverySpecification"].(map[string]any); pitr["PointInTimeRecoveryEnabled"] != true {
		t.Errorf("PITR %v", p["PointInTimeRecoverySpecification"])
	}
	if sse, _ := p["SSESpecification"].(map[string]any); sse["SSEEnabled"] != true {
		t.Errorf("encryption %v, want the AWS-managed key", p["SSESpecification"])
	}
	if ttl, _ := p["TimeToLiveSpecification"].(map[string]any); ttl["AttributeName"] != def.TTLAttribute || ttl["Enabled"] != true {
		t.Errorf("TTL %v, want %s", p["TimeToLiveSpecification"], def.TTLAttribute)
	}
	if tbl.Raw["DeletionPolicy"] != "Retain" {
		t.Errorf("deletion policy %v, want Retain by default", tbl.Raw["DeletionPolicy"])
	}
}

// TestTemplateMatchesBackendDefinitions: the local runtime (test/localrt)
// creates its table from store.Table, each function's environment with
// Function.EnvFrom and the state machines with backend.Substitutions; the
// template must carry the same keys, indexes, names and substitutions.
func TestTemplateMatchesBackendDefinitions(t *testing.T) {
	s, _ := full(t)
	p := s.one(t, "AWS::DynamoDB::Table").Props
	attrTypes := map[string]string{}
	for _, a := range list(p["AttributeDefinitions"]) {
		am := a.(map[string]any)
		attrTypes[am["AttributeName"].(string)] = am["AttributeType"].(string)
	}
	keys := func(ks any) []string {
		var out []string
		for _, k := range list(ks) {
			km := k.(map[string]any)
			out = append(out, km["KeyType"].(string)+":"+km["AttributeName"].(string)+":"+attrTypes[km["AttributeName"].(string)])
		}
		return out
	}
	def := store.Table
	if got := keys(p["KeySchema"]); !slices.Equal(got, []string{"HASH:" + def.HashKey + ":S"}) {
		t.Errorf("table key %v, want %s (S)", got, def.HashKey)
	}
	gsis := map[string][]string{}
	for _, g := range list(p["GlobalSecondaryIndexes"]) {
		gm := g.(map[string]any)
		if proj, _ := gm["Projection"].(map[string]any); proj["ProjectionType"] != "ALL" {
			t.Errorf("index %v projects %v, want ALL", gm["IndexName"], gm["Projection"])
		}
		gsis[gm["IndexName"].(string)] = keys(gm["KeySchema"])
	}
	want := map[string][]string{}
	for _, g := range def.GSIs {
		want[g.Name] = []string{"HASH:" + g.HashKey + ":S", "RANGE:" + g.RangeKey + ":" + g.RangeType}
	}
	if !reflect.DeepEqual(gsis, want) {
		t.Errorf("indexes %v, want store.Table's %v", gsis, want)
	}

	var gotFns, wantFns []string
	for _, r := range s.resources("AWS::Lambda::Function") {
		vars, _ := r.Props["Environment"].(map[string]any)["Variables"].(map[string]any)
		gotFns = append(gotFns, r.Props["Description"].(string)+" "+strings.Join(slices.Sorted(maps.Keys(vars)), ","))
	}
	for _, f := range s.defs.Functions {
		env := slices.Sorted(maps.Keys(f.EnvFrom(backend.Resources{})))
		wantFns = append(wantFns, f.Description+" "+strings.Join(env, ","))
	}
	slices.Sort(gotFns)
	slices.Sort(wantFns)
	if !slices.Equal(gotFns, wantFns) {
		t.Errorf("functions and their variables\n got %v\nwant %v", gotFns, wantFns)
	}

	for _, r := range s.resources("AWS::StepFunctions::StateMachine") {
		got := slices.Sorted(maps.Keys(r.Props["DefinitionSubstitutions"].(map[string]any)))
		wantSubs := backend.Placeholders([]byte(r.Props["DefinitionString"].(string)))
		if !slices.Equal(got, wantSubs) {
			t.Errorf("%v: substitutions %v, want the placeholders it uses %v", r.Props["StateMachineName"], got, wantSubs)
		}
		for _, k := range got {
			if !slices.ContainsFunc(s.defs.Functions, func(f backend.Function) bool { return f.Placeholder == k }) {
				t.Errorf("%v: substitution %s is no backend function's placeholder", r.Props["StateMachineName"], k)
			}
		}
	}
}

func TestWithoutTheLifecycleFunctionsThereIsNoAPIOrSchedule(t *testing.T) {
	s := core(t)
	if n := len(s.resources("AWS::ApiGateway::RestApi")); n != 0 {
		t.Errorf("%d REST APIs without an api function", n)
	}
	for _, r := range s.resources("AWS::Events::Rule") {
		if r.Props["ScheduleExpression"] != nil {
			t.Errorf("a schedule without a sweeper: %v", r.Props)
		}
	}
	if n := len(s.resources("AWS::StepFunctions::StateMachine")); n != len(s.defs.StateMachines) {
		t.Errorf("%d state machines, want %d", n, len(s.defs.StateMachines))
	}
	if n := len(s.findings); n != 0 {
		t.Errorf("%d cdk-nag findings:\n%s", n, strings.Join(s.findings, "\n"))
	}
	// Region-agnostic: the allowed region is the deployment's own.
	for _, f := range s.defs.Functions {
		if slices.Contains(f.Env, backend.EnvAllowedRegions) {
			vars := s.function(t, f).Props["Environment"].(map[string]any)["Variables"].(map[string]any)
			if got := flat(vars[backend.EnvAllowedRegions]); got != "<AWS::Region>" {
				t.Errorf("%s: %s = %s, want the stack's region", f.Name, backend.EnvAllowedRegions, got)
			}
		}
	}
}

func TestOutputs(t *testing.T) {
	s, _ := full(t)
	outs, _ := s.json["Outputs"].(map[string]any)
	want := []string{"ApiUrl", "TableName"}
	for _, sm := range s.defs.StateMachines {
		want = append(want, pascal(sm.Name)+"StateMachineArn")
	}
	for _, k := range want {
		if _, ok := outs[k]; !ok {
			t.Errorf("no output %s (have %v)", k, slices.Sorted(maps.Keys(outs)))
		}
	}
	// Nodes have no shared instance profile any more: one per MEC.
	if _, ok := outs["NodeInstanceProfileArn"]; ok {
		t.Error("output NodeInstanceProfileArn: node instance profiles are per MEC now")
	}
}

func TestCdkNagHasNoUnsuppressedFinding(t *testing.T) {
	s, fwd := full(t)
	for name, x := range map[string]*synthesized{"backend": s, "forwarder": fwd} {
		if len(x.findings) > 0 {
			t.Errorf("%s stack: %d cdk-nag findings:\n%s", name, len(x.findings), strings.Join(x.findings, "\n"))
		}
	}
}

func descriptionOf(d Definitions, name string) string {
	for _, f := range d.Functions {
		if f.Name == name {
			return f.Description
		}
	}
	return ""
}
