package stack

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/mecd/mecd/internal/backend"
)

// Names the stack gives special roles to, once the backend defines them.
const (
	APIFunction       = "api"
	SweeperFunction   = "sweeper"
	ReaperFunction    = "reaper"
	CheckSpecFunction = "check-spec"
	ProvisionMachine  = "provision"
	TeardownMachine   = "teardown"
	RollbackMachine   = "rollback"
	ScaleMachine      = "scale"
)

// Validate checks props before anything is built: the app calls it to fail
// with a readable message instead of a construct panic.
func Validate(props *MecdStackProps) error {
	if props == nil {
		return fmt.Errorf("stack: props are required")
	}
	p, err := props.withDefaults()
	if err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	var missing []string
	for _, f := range p.Definitions.Functions {
		if _, err := os.Stat(filepath.Join(p.FunctionsDir, f.Name, "bootstrap")); err != nil {
			missing = append(missing, f.Name)
		}
		if _, ok := functionAccess(f.Name, refs{}); !ok {
			return fmt.Errorf("stack: function %q has no IAM policy: add what it calls to functionAccess in stack/iam.go", f.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("stack: no bootstrap for %s in %s: run `make build` first", strings.Join(missing, ", "), p.FunctionsDir)
	}
	names := map[string]bool{}
	for _, f := range p.Definitions.Functions {
		names[f.Name] = true
	}
	for _, r := range p.Definitions.EventRules {
		if !names[r.Function] {
			return fmt.Errorf("stack: event rule %q targets unknown function %q", r.Name, r.Function)
		}
		if _, err := eventPattern(r.Pattern); err != nil {
			return fmt.Errorf("stack: event rule %q: %w", r.Name, err)
		}
	}
	placeholders := map[string]bool{}
	for _, f := range p.Definitions.Functions {
		if f.Placeholder != "" {
			placeholders[f.Placeholder] = true
		}
	}
	for _, sm := range p.Definitions.StateMachines {
		asl, err := os.ReadFile(aslPath(p.RepoRoot, sm))
		if err != nil {
			return fmt.Errorf("stack: state machine %q: %w", sm.Name, err)
		}
		for _, ph := range backend.Placeholders(asl) {
			if !placeholders[ph] {
				return fmt.Errorf("stack: state machine %q uses ${%s}, which no deployed function fills", sm.Name, ph)
			}
		}
	}
	return nil
}

// NewMecdStack builds the backend. It panics on invalid props (see Validate).
func NewMecdStack(scope constructs.Construct, id string, props *MecdStackProps) awscdk.Stack {
	if err := Validate(props); err != nil {
		panic(err)
	}
	p, _ := props.withDefaults()
	sprops := p.StackProps
	if sprops.Description == nil {
		sprops.Description = jsii.String("mecd: provisions MicroK8s edge clusters (MECs) on EC2 through Step Functions, Lambda and SSM Run Command")
	}
	stack := awscdk.NewStack(scope, jsii.String(id), &sprops)
	defs := *p.Definitions

	regions := p.AllowedRegions
	if len(regions) == 0 {
		regions = []string{*stack.Region()}
	}

	table := newTable(stack, "Table", p.TableRemovalPolicy)
	boundary := newNodeBoundary(stack, "NodeBoundary")

	// State machine ARNs come from their names, not from the resources: the
	// machines reference the functions (substitutions), and functions that
	// read a machine's ARN (prepare, record-status, api) would otherwise
	// close a dependency cycle.
	smArns := map[string]string{}
	smNames := map[string]string{}
	for _, sm := range defs.StateMachines {
		smNames[sm.Name] = *stack.StackName() + "-" + sm.Name
		smArns[sm.Name] = *awscdk.Fn_Sub(jsii.String(stateMachineArn(smNames[sm.Name])), nil)
	}
	// The API invokes check-spec by name: a fixed one, like the state
	// machines', so its policy can name the function without a reference.
	fnNames := map[string]string{CheckSpecFunction: *stack.StackName() + "-" + CheckSpecFunction}
	res := backend.Resources{
		CheckSpecFunction: fnNames[CheckSpecFunction],
		TableName:         *table.Table.TableName(),
		ProvisionSMArn:    smArns[ProvisionMachine],
		TeardownSMArn:     smArns[TeardownMachine],
		RollbackSMArn:     smArns[RollbackMachine],
		ScaleSMArn:        smArns[ScaleMachine],
		NodeBoundaryArn:   *boundary.ManagedPolicyArn(),
		NodeCorePolicyArn: *awscdk.Fn_Sub(jsii.String(arnCorePolicy), nil),
		AllowedRegions:    strings.Join(regions, ","),
		LogLevel:          p.LogLevel,
		RecordRetention:   goDuration(p.RecordRetention),
		SweepBatch:        fmt.Sprint(p.SweepBatch),
		SpareNodeRoles:    fmt.Sprint(p.SpareNodeRoles),
		NodeOnlineTimeout: goDuration(p.NodeOnlineTimeout),
		CommandTimeout:    goDuration(p.CommandTimeout),
		PollInterval:      goDuration(p.PollInterval),
		// check-nodes waits inside one invocation: 14 of Lambda's 15 minutes.
		CheckWait:     goDuration(14 * time.Minute),
		OwnerOnly:     strconv.FormatBool(p.OwnerOnly),
		AdminRoleArns: strings.Join(p.AdminRoleArns, ","),
	}
	r := refs{table: *table.Table.TableArn(), indexes: table.IndexArns, nodeBoundary: *boundary.ManagedPolicyArn(), stateMachines: smNames,
		functions: fnNames, ebsKeys: p.EBSKeyArns}
	fns := newFunctions(stack, "Functions", functionsConfig{
		defs: defs.Functions, dir: p.FunctionsDir, resources: res, refs: r, regions: regions, logRetention: p.LogRetention,
	})

	wf := newWorkflows(stack, "Workflows", workflowsConfig{
		defs: defs.StateMachines, root: p.RepoRoot, names: smNames, functions: fns, logRetention: p.LogRetention,
	})
	newNodeDocument(stack, "NodeDocument")
	newRules(stack, "Rules", defs.EventRules, fns)
	if sweeper, ok := fns.byName[SweeperFunction]; ok {
		targets := []awslambda.Function{sweeper}
		if reaper, ok := fns.byName[ReaperFunction]; ok {
			targets = append(targets, reaper)
		}
		newSweepSchedule(stack, "SweepSchedule", p.SweepRate, targets...)
	}
	if apiFn, ok := fns.byName[APIFunction]; ok {
		api := newAPI(stack, "Api", apiFn, apiConfig{rate: p.APIRateLimit, burst: p.APIBurstLimit, logRetention: p.LogRetention,
			accountRole: !p.KeepAPIAccountSettings})
		output(stack, "ApiUrl", api.Api.Url(), "the MEC API (IAM auth: SigV4-sign every call, e.g. with mecctl)")
	}

	output(stack, "TableName", table.Table.TableName(), "the MEC records")
	for _, sm := range defs.StateMachines {
		output(stack, pascal(sm.Name)+"StateMachineArn", wf.byName[sm.Name].StateMachineArn(), "the "+sm.Name+" workflow")
	}
	return stack
}

func output(scope constructs.Construct, id string, value *string, description string) {
	awscdk.NewCfnOutput(scope, jsii.String(id), &awscdk.CfnOutputProps{Value: value, Description: jsii.String(description)})
}

// pascal turns "launch-nodes" into "LaunchNodes" for construct ids.
func pascal(name string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(name, func(r rune) bool { return r == '-' || r == '_' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// goDuration prints d as time.ParseDuration reads it, without zero units
// ("720h", "5m", "10s").
func goDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func aslPath(root string, sm backend.StateMachine) string {
	if filepath.IsAbs(sm.File) {
		return sm.File
	}
	return filepath.Join(root, sm.File)
}
