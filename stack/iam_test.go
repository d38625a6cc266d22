package stack

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mecd/mecd/internal/backend"
)

// statement is one IAM statement of the template, resources flattened the
// way cdk-nag shows them.
type statement struct {
	roles      []string // logical ids of the roles it applies to
	effect     string
	actions    []string
	resources  []string
	conditions map[string]map[string]any
}

// statements walks every AWS::IAM::Policy and every role's inline policies.
func (s *synthesized) statements() []statement {
	var out []statement
	add := func(roles []string, doc any) {
		for _, st := range list(doc.(map[string]any)["Statement"]) {
			sm := st.(map[string]any)
			x := statement{roles: roles, effect: sm["Effect"].(string), conditions: map[string]map[string]any{}}
			for _, a := range list(sm["Action"]) {
				x.actions = append(x.actions, a.(string))
			}
			for _, r := range list(sm["Resource"]) {
				x.resources = append(x.resources, flat(r))
			}
			if c, ok := sm["Condition"].(map[string]any); ok {
				for op, kv := range c {
					x.conditions[op] = kv.(map[string]any)
				}
			}
			out = append(out, x)
		}
	}
	for _, p := range s.resources("AWS::IAM::Policy") {
		var roles []string
		for _, r := range list(p.Props["Roles"]) {
			roles = append(roles, refID(r))
		}
		add(roles, p.Props["PolicyDocument"])
	}
	for _, r := range s.resources("AWS::IAM::Role") {
		for _, p := range list(r.Props["Policies"]) {
			add([]string{r.ID}, p.(map[string]any)["PolicyDocument"])
		}
	}
	return out
}

func (st statement) cond(key string) []string {
	var out []string
	for _, kv := range st.conditions {
		if v, ok := kv[key]; ok {
			for _, x := range list(v) {
				out = append(out, flat(x))
			}
		}
	}
	return out
}

// nodeRole is the role EC2 assumes.
func (s *synthesized) nodeRole(t *testing.T) resource {
	t.Helper()
	var found []resource
	for _, r := range s.resources("AWS::IAM::Role") {
		if strings.Contains(flat(r.Props["AssumeRolePolicyDocument"]), `"ec2.amazonaws.com"`) {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d roles EC2 can assume, want 1", len(found))
	}
	return found[0]
}

var (
	mutatingEC2   = regexp.MustCompile(`^ec2:(Create|Run|Terminate|Delete|Authorize|Revoke|Modify|Attach|Detach|Associate|Disassociate|Start|Stop|Reboot|Replace)`)
	parameterAct  = regexp.MustCompile(`^ssm:(Get|Put|Delete|Label|Unlabel)Parameter`)
	ownParams     = regexp.MustCompile(`^arn:<AWS::Partition>:ssm:\*:<AWS::AccountId>:parameter/mecd/`)
	canonical     = "arn:<AWS::Partition>:ssm:*:*:parameter/aws/service/canonical/*"
	readOnly      = regexp.MustCompile(`^[a-z0-9-]+:(Describe|Get|List)[A-Za-z]*$`)
	taggedTypes   = regexp.MustCompile(`:(instance|volume|security-group)/\*$`)
	resourceType  = regexp.MustCompile(`:([a-z-]+)/[^/]*$`)
	managedTagKey = []string{"aws:RequestTag/" + managedTag, "ec2:ResourceTag/" + managedTag, "ssm:resourceTag/" + managedTag}
)

// untaggable are the (action, resource type) pairs AWS checks on resources
// mecd does not own, so no mecd tag can be required of them.
var untaggable = map[string][]string{
	"ec2:RunInstances":        {"subnet", "network-interface", "image"},
	"ec2:CreateSecurityGroup": {"vpc"},
}

// Actions "*" may carry: nothing that changes anything, except completing a
// task whose token the caller holds.
var onAnyResource = map[string]bool{
	"xray:PutTraceSegments": true, "xray:PutTelemetryRecords": true,
	"logs:CreateLogDelivery": true, "logs:UpdateLogDelivery": true, "logs:DeleteLogDelivery": true, "logs:PutResourcePolicy": true,
	"states:SendTaskSuccess": true, "states:SendTaskFailure": true,
}

// managedPolicies are the only AWS-managed policies a role may carry, by
// the service that assumes it.
var managedPolicies = map[string]string{
	"ec2.amazonaws.com":        "arn:<AWS::Partition>:iam::aws:policy/" + ssmCorePolicy,
	"apigateway.amazonaws.com": "arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
}

func TestPoliciesAreLeastPrivilege(t *testing.T) {
	s, fwd := full(t)
	node := s.nodeRole(t)
	for _, x := range []*synthesized{s, fwd, core(t)} {
		for _, r := range x.resources("AWS::IAM::Role") {
			for _, m := range list(r.Props["ManagedPolicyArns"]) {
				trust := flat(r.Props["AssumeRolePolicyDocument"])
				ok := false
				for svc, arn := range managedPolicies {
					ok = ok || (strings.Contains(trust, `"`+svc+`"`) && flat(m) == arn)
				}
				if !ok {
					t.Errorf("role %s (%s) carries the managed policy %s", r.ID, trust, flat(m))
				}
			}
		}
		for _, st := range x.statements() {
			where := strings.Join(st.roles, ",") + " " + strings.Join(st.actions, ",")
			for _, a := range st.actions {
				if strings.Contains(a, "*") {
					t.Errorf("%s: wildcard action %q", where, a)
				}
			}
			if st.effect != "Allow" {
				continue
			}
			for _, a := range st.actions {
				for _, r := range st.resources {
					if r == "*" && !readOnly.MatchString(a) && !onAnyResource[a] {
						t.Errorf("%s: %s on \"*\"", where, a)
					}
					if mutatingEC2.MatchString(a) {
						typ := ""
						if m := resourceType.FindStringSubmatch(r); m != nil {
							typ = m[1]
						}
						tagged := slices.ContainsFunc(managedTagKey, func(k string) bool { return slices.Contains(st.cond(k), managedValue) }) ||
							(a == "ec2:CreateTags" && len(st.cond("ec2:CreateAction")) > 0)
						switch {
						case r == "*" && !tagged:
							t.Errorf("%s: %s on \"*\" without a tag condition", where, a)
						case taggedTypes.MatchString(r) && !tagged:
							t.Errorf("%s: %s on %s without the %s tag condition", where, a, r, managedTag)
						case !taggedTypes.MatchString(r) && !slices.Contains(untaggable[a], typ):
							t.Errorf("%s: %s on %s: not a resource mecd tags, nor one AWS requires for it", where, a, r)
						}
					}
					if parameterAct.MatchString(a) && !ownParams.MatchString(r) && r != canonical {
						t.Errorf("%s: %s on %s, want /mecd/* (or Canonical's public AMI parameters)", where, a, r)
					}
					if a == "iam:PassRole" {
						if r != "<"+node.ID+".Arn>" || !slices.Equal(st.cond("iam:PassedToService"), []string{"ec2.amazonaws.com"}) {
							t.Errorf("%s: iam:PassRole on %s %v, want only the node role, to EC2", where, r, st.conditions)
						}
					}
				}
				// MECs live in the allowed regions only.
				if (strings.HasPrefix(a, "ec2:") || strings.HasPrefix(a, "ssm:")) && x != fwd {
					if got := st.cond("aws:RequestedRegion"); len(got) == 0 || (x == s && !slices.Equal(got, []string{homeRegion, mecRegion})) {
						t.Errorf("%s: %s without aws:RequestedRegion = the allowed regions (%v)", where, a, got)
					}
				}
			}
		}
	}
}

func TestNodeRoleReachesOnlyTheTokenAndKubeconfigParameters(t *testing.T) {
	s, _ := full(t)
	node := s.nodeRole(t)
	managed := list(node.Props["ManagedPolicyArns"])
	if len(managed) != 1 || flat(managed[0]) != "arn:<AWS::Partition>:iam::aws:policy/"+ssmCorePolicy {
		t.Errorf("node role managed policies %v, want only %s", managed, ssmCorePolicy)
	}
	const params = "arn:<AWS::Partition>:ssm:*:<AWS::AccountId>:parameter/mecd/*/"
	var allows, denies []string
	for _, st := range s.statements() {
		if !slices.Contains(st.roles, node.ID) {
			continue
		}
		entry := st.effect + " " + strings.Join(st.actions, ",") + " " + strings.Join(st.resources, ",")
		if st.effect == "Allow" {
			allows = append(allows, entry)
		} else {
			denies = append(denies, entry)
		}
	}
	slices.Sort(allows)
	wantAllows := []string{
		"Allow ssm:GetParameter " + params + "join-token",
		"Allow ssm:PutParameter " + params + "kubeconfig",
	}
	if !slices.Equal(allows, wantAllows) {
		t.Errorf("node role allows\n%s\nwant\n%s", strings.Join(allows, "\n"), strings.Join(wantAllows, "\n"))
	}
	// The SSM core policy allows ssm:GetParameter(s) on "*": no node may
	// read a kubeconfig (its own included: node 0 only writes it).
	wantDeny := "Deny ssm:GetParameter,ssm:GetParameters,ssm:GetParametersByPath,ssm:GetParameterHistory " + params + "kubeconfig"
	if !slices.Equal(denies, []string{wantDeny}) {
		t.Errorf("node role denies %v, want %v", denies, wantDeny)
	}
}

// TestFunctionPermissions is the least-privilege contract per function:
// what each calls (internal/workflow, record, spec, sweep, api). A change to
// a function's AWS calls must change this table and stack/iam.go together.
func TestFunctionPermissions(t *testing.T) {
	want := map[string][]string{
		"prepare": {"dynamodb:GetItem", "dynamodb:PutItem", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
			"ec2:DescribeRouteTables", "ec2:DescribeSubnets", "ec2:DescribeVpcs", "ssm:GetParameter"},
		"launch-nodes": {"dynamodb:GetItem", "dynamodb:PutItem", "ec2:AuthorizeSecurityGroupIngress", "ec2:CreateSecurityGroup",
			"ec2:CreateTags", "ec2:DescribeSecurityGroups", "ec2:RunInstances", "iam:PassRole"},
		"check-nodes": {"dynamodb:GetItem", "dynamodb:PutItem", "ec2:DescribeInstances", "ssm:DescribeInstanceInformation"},
		"node-command": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "ssm:DeleteParameter", "ssm:GetCommandInvocation",
			"ssm:GetParameter", "ssm:ListCommandInvocations", "ssm:PutParameter", "ssm:SendCommand", "states:SendTaskFailure", "states:SendTaskSuccess"},
		"command-events": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "ssm:DeleteParameter", "ssm:GetCommandInvocation",
			"ssm:GetParameter", "states:SendTaskFailure", "states:SendTaskSuccess"},
		"cleanup": {"dynamodb:GetItem", "dynamodb:PutItem", "ec2:DeleteSecurityGroup", "ec2:DescribeInstances", "ec2:DescribeSecurityGroups",
			"ec2:TerminateInstances", "ssm:DeleteParameters", "ssm:GetParametersByPath"},
		"record-status": {"dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "states:StopExecution"},
		APIFunction: {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "ssm:GetParameter", "states:DescribeExecution",
			"states:StartExecution"},
		SweeperFunction: {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "states:DescribeExecution", "states:StartExecution"},
	}
	s, _ := full(t)
	stmts := s.statements()
	for _, f := range s.defs.Functions {
		fn := s.function(t, f)
		role := refID(fn.Props["Role"])
		var got []string
		for _, st := range stmts {
			if !slices.Contains(st.roles, role) || st.effect != "Allow" {
				continue
			}
			for _, a := range st.actions {
				switch {
				case strings.HasPrefix(a, "xray:"):
				case a == "logs:CreateLogStream" || a == "logs:PutLogEvents":
					// Only to its own log group.
					lg := refID(fn.Props["LoggingConfig"].(map[string]any)["LogGroup"])
					if !slices.Equal(st.resources, []string{"<" + lg + ".Arn>"}) {
						t.Errorf("%s: %s on %v, want its own log group only", f.Name, a, st.resources)
					}
				default:
					if !slices.Contains(got, a) {
						got = append(got, a)
					}
				}
			}
		}
		slices.Sort(got)
		w, ok := want[f.Name]
		if !ok {
			t.Errorf("%s: no expected permissions in this test: add the function's contract", f.Name)
			continue
		}
		if !slices.Equal(got, w) {
			t.Errorf("%s: permissions\n got %v\nwant %v", f.Name, got, w)
		}
	}
}

func TestEveryBackendFunctionHasAPolicy(t *testing.T) {
	for _, f := range withLifecycle(BackendDefinitions()).Functions {
		if _, ok := functionAccess(f.Name, refs{stateMachines: map[string]string{}}); !ok {
			t.Errorf("function %s has no IAM policy in functionAccess", f.Name)
		}
	}
	if _, ok := functionAccess("no-such-function", refs{}); ok {
		t.Error("an unknown function got a policy")
	}
	var names []string
	for _, f := range backend.Functions {
		names = append(names, f.Name)
	}
	if len(names) == 0 {
		t.Error("backend.Functions is empty")
	}
}
