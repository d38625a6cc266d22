package backend

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
)

// Environment variable names read by the functions.
const (
	EnvTableName      = "TABLE_NAME"
	EnvProvisionSMArn = "PROVISION_STATE_MACHINE_ARN"
	EnvTeardownSMArn  = "TEARDOWN_STATE_MACHINE_ARN"
	EnvRollbackSMArn  = "ROLLBACK_STATE_MACHINE_ARN"
	EnvScaleSMArn     = "SCALE_STATE_MACHINE_ARN"
	// Each MEC's nodes get their own role, created under this permissions
	// boundary with this managed policy (the SSM agent's) attached.
	EnvNodeBoundaryArn   = "NODE_BOUNDARY_ARN"
	EnvNodeCorePolicyArn = "NODE_CORE_POLICY_ARN"
	EnvAllowedRegions    = "ALLOWED_REGIONS"
	// The function the API asks, before it accepts a spec, whether the
	// spec's region can serve it (instance type, AMI, network).
	EnvCheckSpecFunction = "CHECK_SPEC_FUNCTION"
	EnvLogLevel          = "LOG_LEVEL"
	EnvRecordRetention   = "RECORD_RETENTION"
	EnvSweepBatch        = "SWEEP_BATCH"
	// Durations (Go syntax). Production uses the defaults; the local runtime
	// scales them with its latency model so waits stay proportionate.
	EnvNodeOnlineTimeout = "NODE_ONLINE_TIMEOUT"
	EnvCommandTimeout    = "COMMAND_TIMEOUT"
	EnvPollInterval      = "POLL_INTERVAL"
	// EnvCheckWait bounds how long check-nodes waits inside one invocation
	// (default 14 minutes, within Lambda's 15).
	EnvCheckWait = "CHECK_WAIT"
	// EnvSpareNodeRoles is how many spare node roles launch-nodes keeps
	// made ahead of any MEC (0: none; each MEC then waits for IAM to
	// propagate its own).
	EnvSpareNodeRoles = "SPARE_NODE_ROLES"
	// The API's owner-only option: "true" lets only a MEC's creator and the
	// admin roles (comma-separated IAM role ARNs) delete it or read its
	// kubeconfig.
	EnvOwnerOnly     = "OWNER_ONLY"
	EnvAdminRoleArns = "ADMIN_ROLE_ARNS"
)

// Function is one Lambda: its code lives in functions/<Name>.
type Function struct {
	// Name is the directory under functions/ and the suffix of the deployed name.
	Name        string
	Description string
	// Env lists the environment variables the function reads (values come from Resources).
	Env            []string
	MemoryMB       int
	TimeoutSeconds int
	// Placeholder is the ASL DefinitionSubstitutions key for the function's ARN ("" if no state machine calls it).
	Placeholder string
}

// Functions is every Lambda of the backend. Memory: the steps are I/O bound
// (AWS API calls), so 256 MB buys enough CPU for a fast cold start of a Go
// binary without paying for idle memory; the API gets more for its p99.
var Functions = []Function{
	{
		Name: "prepare", Description: "Creates the MEC record (console runs) and resolves architecture, AMI, VPC and subnet",
		Env:      []string{EnvTableName, EnvAllowedRegions, EnvProvisionSMArn, EnvNodeOnlineTimeout, EnvCommandTimeout, EnvLogLevel},
		MemoryMB: 256, TimeoutSeconds: 60, Placeholder: "PrepareFunctionArn",
	},
	{
		// The API calls it synchronously before it answers 202: what only the
		// MEC's region can tell (the instance type exists and is offered, the
		// AMI's architecture, the network) is refused with a 400, not found
		// out by a provisioning that then fails.
		Name: "check-spec", Description: "Checks a MEC spec against its region (instance type, AMI, VPC and subnet) for the API",
		Env:      []string{EnvTableName, EnvAllowedRegions, EnvLogLevel},
		MemoryMB: 256, TimeoutSeconds: 20,
	},
	{
		Name: "launch-nodes", Description: "Creates the security group and the MEC's node role, and launches every node in one idempotent RunInstances",
		Env:      []string{EnvTableName, EnvNodeBoundaryArn, EnvNodeCorePolicyArn, EnvPollInterval, EnvSpareNodeRoles, EnvLogLevel},
		MemoryMB: 256, TimeoutSeconds: 60, Placeholder: "LaunchNodesFunctionArn",
	},
	{
		Name: "check-nodes", Description: "Waits until the nodes are running with their SSM agent Online",
		Env: []string{EnvTableName, EnvNodeOnlineTimeout, EnvPollInterval, EnvCheckWait, EnvLogLevel},
		// It waits inside the invocation (AWS sends no event when an agent
		// registers): 15 minutes, at the least memory, costs less than the
		// state transitions of a Wait loop and overshoots far less.
		MemoryMB: 128, TimeoutSeconds: 900, Placeholder: "CheckNodesFunctionArn",
	},
	{
		Name: "node-command", Description: "Sends a node script by SSM Run Command and parks the workflow's task token until it ends",
		Env:      []string{EnvTableName, EnvCommandTimeout, EnvPollInterval, EnvLogLevel},
		MemoryMB: 256, TimeoutSeconds: 60, Placeholder: "NodeCommandFunctionArn",
	},
	{
		Name: "command-events", Description: "Resumes the workflow when SSM reports a node command finished",
		Env:      []string{EnvTableName, EnvLogLevel},
		MemoryMB: 256, TimeoutSeconds: 30,
	},
	{
		Name: "cleanup", Description: "Terminates a MEC's instances, then deletes its security group, node role and parameters (rollback and teardown)",
		Env:      []string{EnvTableName, EnvPollInterval, EnvNodeCorePolicyArn, EnvLogLevel},
		MemoryMB: 256, TimeoutSeconds: 60, Placeholder: "CleanupFunctionArn",
	},
	{
		Name: "record-status", Description: "Moves a MEC record to READY, FAILED, DELETING (stopping its provisioning or scale) or DELETED",
		Env:      []string{EnvTableName, EnvProvisionSMArn, EnvScaleSMArn, EnvRecordRetention, EnvLogLevel},
		MemoryMB: 256, TimeoutSeconds: 30, Placeholder: "RecordStatusFunctionArn",
	},
	{
		// More memory buys CPU for the API's p99 (JSON, DynamoDB transactions).
		Name: "api", Description: "The MEC resource API behind API Gateway (REST, IAM auth)",
		Env: []string{EnvTableName, EnvProvisionSMArn, EnvTeardownSMArn, EnvScaleSMArn, EnvAllowedRegions, EnvCheckSpecFunction,
			EnvOwnerOnly, EnvAdminRoleArns, EnvCommandTimeout, EnvLogLevel},
		MemoryMB: 512, TimeoutSeconds: 29,
	},
	{
		Name: "sweeper", Description: "Tears down expired MECs, reconciles stuck ones (restarts failed teardowns, rolls back dead provisionings) and repairs MECs with lost nodes (EventBridge schedule)",
		Env: []string{EnvTableName, EnvProvisionSMArn, EnvTeardownSMArn, EnvRollbackSMArn, EnvScaleSMArn, EnvSweepBatch,
			EnvNodeOnlineTimeout, EnvCommandTimeout, EnvPollInterval, EnvLogLevel},
		MemoryMB: 256, TimeoutSeconds: 120,
	},
	{
		// On the sweep schedule too: what a teardown could not see (an
		// instance EC2 listed only after the cleanup looked) is found by tag
		// in every region and deleted once its MEC is DELETED or unknown.
		Name: "reaper", Description: "Deletes the mecd-tagged resources of DELETED or unknown MECs after a grace period (EventBridge schedule)",
		Env:      []string{EnvTableName, EnvAllowedRegions, EnvNodeCorePolicyArn, EnvPollInterval, EnvSpareNodeRoles, EnvLogLevel},
		MemoryMB: 256, TimeoutSeconds: 300,
	},
}

// StateMachine is one ASL file under statemachine/.
type StateMachine struct {
	Name string // deployed name suffix, also the output key
	File string // path relative to the repository root
}

// StateMachines lists the workflows.
var StateMachines = []StateMachine{
	{Name: "provision", File: "statemachine/provision.asl.json"},
	{Name: "teardown", File: "statemachine/teardown.asl.json"},
	{Name: "rollback", File: "statemachine/rollback.asl.json"},
	{Name: "scale", File: "statemachine/scale.asl.json"},
}

// Resources are the deployed identifiers the environment is built from.
type Resources struct {
	TableName            string
	ProvisionSMArn       string
	TeardownSMArn        string
	RollbackSMArn        string
	ScaleSMArn           string
	NodeBoundaryArn      string
	NodeCorePolicyArn    string
	AllowedRegions       string
	CheckSpecFunction    string
	LogLevel             string
	RecordRetention      string
	SweepBatch           string
	NodeOnlineTimeout    string
	CommandTimeout       string
	PollInterval         string
	CheckWait            string
	SpareNodeRoles       string
	OwnerOnly            string
	AdminRoleArns        string
	FunctionArns         map[string]string // by Function.Name
	StateMachineArnsByID map[string]string // by StateMachine.Name
}

// EnvFrom returns the environment for f from r: exactly the variables f declares.
func (f Function) EnvFrom(r Resources) map[string]string {
	all := map[string]string{
		EnvTableName:         r.TableName,
		EnvProvisionSMArn:    r.ProvisionSMArn,
		EnvTeardownSMArn:     r.TeardownSMArn,
		EnvRollbackSMArn:     r.RollbackSMArn,
		EnvScaleSMArn:        r.ScaleSMArn,
		EnvNodeBoundaryArn:   r.NodeBoundaryArn,
		EnvNodeCorePolicyArn: r.NodeCorePolicyArn,
		EnvAllowedRegions:    r.AllowedRegions,
		EnvCheckSpecFunction: r.CheckSpecFunction,
		EnvLogLevel:          r.LogLevel,
		EnvRecordRetention:   r.RecordRetention,
		EnvSweepBatch:        r.SweepBatch,
		EnvNodeOnlineTimeout: r.NodeOnlineTimeout,
		EnvCommandTimeout:    r.CommandTimeout,
		EnvPollInterval:      r.PollInterval,
		EnvCheckWait:         r.CheckWait,
		EnvSpareNodeRoles:    r.SpareNodeRoles,
		EnvOwnerOnly:         r.OwnerOnly,
		EnvAdminRoleArns:     r.AdminRoleArns,
	}
	env := make(map[string]string, len(f.Env))
	for _, k := range f.Env {
		env[k] = all[k]
	}
	return env
}

// Substitutions maps every function placeholder to its ARN.
func Substitutions(functionArns map[string]string) map[string]string {
	subs := map[string]string{}
	for _, f := range Functions {
		if f.Placeholder != "" {
			subs[f.Placeholder] = functionArns[f.Name]
		}
	}
	return subs
}

var placeholderRe = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)

// Placeholders lists the ${Name} placeholders used in an ASL document.
func Placeholders(asl []byte) []string {
	seen := map[string]bool{}
	for _, m := range placeholderRe.FindAllSubmatch(asl, -1) {
		seen[string(m[1])] = true
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Substitute replaces every ${Name} in asl; it fails on a placeholder without a value.
func Substitute(asl []byte, subs map[string]string) ([]byte, error) {
	var missing []string
	out := placeholderRe.ReplaceAllFunc(asl, func(m []byte) []byte {
		name := string(m[2 : len(m)-1])
		v, ok := subs[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		return []byte(v)
	})
	if len(missing) > 0 {
		return nil, fmt.Errorf("substitute: no value for %v", missing)
	}
	return out, nil
}

// RepoRoot walks up from dir to the directory holding go.mod.
func RepoRoot(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("repo root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("repo root: no go.mod above %s", dir)
		}
		d = parent
	}
}

// EventRule routes EventBridge events matching Pattern to a function.
type EventRule struct {
	Name     string
	Pattern  string
	Function string // backend Function.Name
}

// EventRules lists the backend's rules on the default bus.
var EventRules = []EventRule{
	{
		Name:     "command-status",
		Function: "command-events",
		// Only mecd's own document: other SSM commands in the account (Patch
		// Manager, Run Command by people) never reach mecd.
		Pattern: `{"source":["aws.ssm"],"detail-type":["EC2 Command Invocation Status-change Notification"],` +
			`"detail":{"document-name":["mecd-NodeScript"],"status":["Success","Failed","TimedOut","Cancelled","Undeliverable","Terminated","DeliveryTimedOut","ExecutionTimedOut"]}}`,
	},
}

// APIResources are the REST API's resources. Each has one ANY method with a
// Lambda proxy integration to the "api" function (AWS_IAM auth on AWS), so
// the handler answers every route, including 404 and 405, in one JSON shape;
// the greedy resource catches paths outside the API.
var APIResources = []string{"/mecs", "/mecs/{id}", "/mecs/{id}/kubeconfig", "/{proxy+}"}

// APIStage is the deployed stage name.
const APIStage = "v1"

// NodeDocument is the SSM Command document mecd runs its node scripts
// with, created in every MEC region (the stack and its event forwarders).
// A document of mecd's own lets the command-status rule match mecd's
// commands only (the invocation event names the document, not the
// caller), and lets node-command's IAM policy name the one document it may
// send. The name is fixed so every region's document has it; a document
// name cannot start with aws, amazon or amzn.
var NodeDocument = struct{ Name, Content string }{
	Name: "mecd-NodeScript",
	// Schema 2.2, one aws:runShellScript step: the script comes in the
	// commands parameter (never a secret: node scripts read secrets from
	// Parameter Store), bounded by executionTimeout.
	Content: `{
  "schemaVersion": "2.2",
  "description": "mecd: runs one of mecd's node scripts (install, join, reset, finalize) as root on a MEC node",
  "parameters": {
    "commands": {"type": "StringList", "description": "The node script."},
    "executionTimeout": {"type": "String", "default": "3600", "description": "Seconds before the agent kills the script (1-172800).",
      "allowedPattern": "([1-9][0-9]{0,4})|(1[0-6][0-9]{4})|(17[0-1][0-9]{3})|(172[0-7][0-9]{2})|(172800)"}
  },
  "mainSteps": [{
    "action": "aws:runShellScript",
    "name": "runNodeScript",
    "precondition": {"StringEquals": ["platformType", "Linux"]},
    "inputs": {"runCommand": "{{ commands }}", "timeoutSeconds": "{{ executionTimeout }}"}
  }]
}`,
}
