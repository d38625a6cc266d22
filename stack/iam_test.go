package stack

import (
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mecd/mecd/internal/backend"
	"github.com/mecd/mecd/internal/mec"
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

// condOp is a condition's value(s) under one operator only.
func (st statement) condOp(op, key string) []string {
	var out []string
	for _, x := range list(st.conditions[op][key]) {
		out = append(out, flat(x))
	}
	return out
}

// Node roles are made at run time by launch-nodes; the stack makes their
// boundary, the one customer-managed policy of the stack.
const (
	coreARN         = "arn:<AWS::Partition>:iam::aws:policy/" + ssmCorePolicy
	nodeRolesARN    = "arn:<AWS::Partition>:iam::<AWS::AccountId>:role/mecd/mecd-node-*"
	nodeProfilesARN = "arn:<AWS::Partition>:iam::<AWS::AccountId>:instance-profile/mecd/mecd-node-*"
)

func (s *synthesized) nodeBoundary(t *testing.T) resource {
	t.Helper()
	return s.one(t, "AWS::IAM::ManagedPolicy")
}

// roleOf is the logical id of a backend function's role.
func (s *synthesized) roleOf(t *testing.T, name string) string {
	t.Helper()
	return refID(s.function(t, backend.Function{Name: name, Description: descriptionOf(s.defs, name)}).Props["Role"])
}

// The IAM actions a function may hold: the node roles' lifecycle, nothing
// that could touch a boundary, a managed policy, a trust policy or a user.
var nodeRoleActions = map[string]string{
	"iam:CreateRole": nodeRolesARN, "iam:PutRolePolicy": nodeRolesARN, "iam:AttachRolePolicy": nodeRolesARN, "iam:TagRole": nodeRolesARN,
	"iam:PassRole": nodeRolesARN, "iam:DeleteRolePolicy": nodeRolesARN, "iam:DetachRolePolicy": nodeRolesARN, "iam:DeleteRole": nodeRolesARN,
	"iam:CreateInstanceProfile": nodeProfilesARN, "iam:GetInstanceProfile": nodeProfilesARN, "iam:AddRoleToInstanceProfile": nodeProfilesARN,
	"iam:TagInstanceProfile": nodeProfilesARN, "iam:RemoveRoleFromInstanceProfile": nodeProfilesARN, "iam:DeleteInstanceProfile": nodeProfilesARN,
	// The reaper's listings (by PathPrefix): IAM's List actions on roles and
	// instance profiles take no resource, so "*" is their only form.
	"iam:ListRoles": "*", "iam:ListInstanceProfiles": "*",
}

// boundedRoleChange: actions on a role that must carry iam:PermissionsBoundary
// = the node boundary (StringEquals, not IfExists).
var boundedRoleChange = regexp.MustCompile(`^iam:(Create|Put|Attach|Delete[A-Za-z]*Policy|Detach)`)

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
	"apigateway.amazonaws.com": "arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
}

func TestPoliciesAreLeastPrivilege(t *testing.T) {
	s, fwd := full(t)
	for _, x := range []*synthesized{s, fwd, core(t)} {
		boundary := ""
		if ps := x.resources("AWS::IAM::ManagedPolicy"); len(ps) == 1 {
			boundary = "<" + ps[0].ID + ">"
		}
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
					// The /mecd path itself: only its listing (GetParametersByPath is
					// authorised against the path asked for).
					mecdPath := a == "ssm:GetParametersByPath" && r == "arn:<AWS::Partition>:ssm:*:<AWS::AccountId>:parameter/mecd"
					if parameterAct.MatchString(a) && !ownParams.MatchString(r) && r != canonical && !mecdPath {
						t.Errorf("%s: %s on %s, want /mecd/* (or Canonical's public AMI parameters)", where, a, r)
					}
					if strings.HasPrefix(a, "iam:") {
						if want, ok := nodeRoleActions[a]; !ok || r != want {
							t.Errorf("%s: %s on %s: IAM only for the node roles' lifecycle (%v)", where, a, r, slices.Sorted(maps.Keys(nodeRoleActions)))
						}
						if boundedRoleChange.MatchString(a) && strings.Contains(r, ":role/") &&
							(boundary == "" || !slices.Equal(st.condOp("StringEquals", "iam:PermissionsBoundary"), []string{boundary})) {
							t.Errorf("%s: %s on %s without iam:PermissionsBoundary = the node boundary %s (%v)", where, a, r, boundary, st.conditions)
						}
					}
					switch a {
					case "iam:PassRole":
						// To EC2, or with no service named (AddRoleToInstanceProfile;
						// test/iamproof evaluates both).
						toEC2 := slices.Equal(st.condOp("StringEquals", "iam:PassedToService"), []string{"ec2.amazonaws.com"})
						noService := slices.Equal(st.condOp("Null", "iam:PassedToService"), []string{"true"})
						if r != nodeRolesARN || !(toEC2 || noService) {
							t.Errorf("%s: iam:PassRole on %s %v, want only the node roles, to EC2", where, r, st.conditions)
						}
					case "iam:AttachRolePolicy":
						if !slices.Equal(st.condOp("ArnEquals", "iam:PolicyARN"), []string{coreARN}) {
							t.Errorf("%s: iam:AttachRolePolicy %v, want iam:PolicyARN = %s only", where, st.conditions, coreARN)
						}
					case "iam:TagRole":
						if boundary == "" || !slices.Equal(st.cond("iam:PermissionsBoundary"), []string{boundary}) {
							t.Errorf("%s: iam:TagRole %v, want the node boundary condition", where, st.conditions)
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

// TestNodeRoleCannotReadAnotherClustersParameters: DESIGN 7 wants a node to
// reach its own cluster's parameters and no other's. (a) The stack grants
// nodes nothing itself; (b) launch-nodes can make a node role only under the
// boundary, attach only the SSM agent's policy and pass it only to EC2; (c)
// the inline policies it and the node steps write (internal/nodepolicy)
// limit the role to its own cluster: test/iamproof evaluates them.
func TestNodeRoleCannotReadAnotherClustersParameters(t *testing.T) {
	s, fwd := full(t)
	stmts := s.statements()
	// (a) No role EC2 assumes, no instance profile: nodes get nothing from the stack.
	for _, x := range []*synthesized{s, fwd, core(t)} {
		for _, r := range x.resources("AWS::IAM::Role") {
			if strings.Contains(flat(r.Props["AssumeRolePolicyDocument"]), `"ec2.amazonaws.com"`) {
				t.Errorf("role %s can be assumed by EC2: node roles are per cluster, made by launch-nodes", r.ID)
			}
		}
		if n := len(x.resources("AWS::IAM::InstanceProfile")); n != 0 {
			t.Errorf("%d instance profiles in the stack, want none (one per cluster, made by launch-nodes)", n)
		}
	}
	for _, st := range stmts {
		for _, a := range st.actions {
			if parameterAct.MatchString(a) {
				for _, role := range st.roles {
					if trust := flat(s.resource(role).Props["AssumeRolePolicyDocument"]); !strings.Contains(trust, `"lambda.amazonaws.com"`) {
						t.Errorf("role %s (%s) holds %s: only functions may", role, trust, a)
					}
				}
			}
		}
	}

	// (b) Only launch-nodes creates, shapes and passes node roles, only under the boundary.
	boundary := "<" + s.nodeBoundary(t).ID + ">"
	launch := s.roleOf(t, "launch-nodes")
	for _, st := range stmts {
		for _, a := range st.actions {
			switch a {
			case "iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PassRole":
				// The node steps move a node role through its stages (PutRolePolicy).
				may := []string{launch}
				if a == "iam:PutRolePolicy" {
					may = []string{launch, s.roleOf(t, "node-command"), s.roleOf(t, "command-events")}
				}
				if len(st.roles) != 1 || !slices.Contains(may, st.roles[0]) {
					t.Errorf("%s granted to %v, want one of %v", a, st.roles, may)
				}
				if a != "iam:PassRole" && !slices.Equal(st.condOp("StringEquals", "iam:PermissionsBoundary"), []string{boundary}) {
					t.Errorf("%s without iam:PermissionsBoundary = %s: %v", a, boundary, st.conditions)
				}
			}
		}
	}
	vars := s.function(t, backend.Function{Name: "launch-nodes", Description: descriptionOf(s.defs, "launch-nodes")}).Props["Environment"].(map[string]any)["Variables"].(map[string]any)
	if got := flat(vars[backend.EnvNodeBoundaryArn]); got != boundary {
		t.Errorf("launch-nodes %s = %s, want the boundary the policy demands (%s)", backend.EnvNodeBoundaryArn, got, boundary)
	}

	// (c) What a node may do at each stage of its MEC's build, with the
	// boundary as deployed, is proven by AWS's evaluation logic in
	// test/iamproof (and for the documents alone in test/iameval).
}

// TestNodeBoundaryAllowsOnlyTheAgentAndMecdParameters: the boundary is the
// SSM agent's actions (AmazonSSMManagedInstanceCore) and writing parameters
// under /mecd/, nothing else, attached to nothing in the stack.
func TestNodeBoundaryAllowsOnlyTheAgentAndMecdParameters(t *testing.T) {
	s, _ := full(t)
	b := s.nodeBoundary(t)
	if b.Props["Path"] != mec.NodeRolePath {
		t.Errorf("boundary path %v, want %s", b.Props["Path"], mec.NodeRolePath)
	}
	for _, k := range []string{"Roles", "Users", "Groups"} {
		if v := b.Props[k]; v != nil {
			t.Errorf("the boundary is attached (%s: %v): it only bounds node roles", k, v)
		}
	}
	var got []string
	for _, p := range parsePolicy(t, b.Props["PolicyDocument"]) {
		got = append(got, p.String())
	}
	agent := slices.Clone(ssmAgentActions)
	want := []string{
		"Allow " + strings.Join(agent, ",") + " *",
		"Allow ssm:PutParameter arn:<AWS::Partition>:ssm:*:<AWS::AccountId>:parameter/mecd/*",
	}
	if !slices.Equal(got, want) {
		t.Errorf("boundary\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The agent's actions, as AWS's policy lists them (brief: ssm, ssmmessages, ec2messages).
	slices.Sort(agent)
	wantAgent := []string{
		"ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage", "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply",
		"ssm:DescribeAssociation", "ssm:DescribeDocument", "ssm:GetDeployablePatchSnapshotForInstance", "ssm:GetDocument", "ssm:GetManifest", "ssm:GetParameter",
		"ssm:GetParameters", "ssm:ListAssociations", "ssm:ListInstanceAssociations", "ssm:PutComplianceItems", "ssm:PutConfigurePackageResult", "ssm:PutInventory",
		"ssm:UpdateAssociationStatus", "ssm:UpdateInstanceAssociationStatus", "ssm:UpdateInstanceInformation",
		"ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
	}
	if !slices.Equal(agent, wantAgent) {
		t.Errorf("agent actions %v, want %s's %v", agent, ssmCorePolicy, wantAgent)
	}
}

// TestNodeRoleNamesMatchTheWorkflow: the ARN patterns of the IAM statements
// cover exactly the names internal/steps gives node roles and profiles.
func TestNodeRoleNamesMatchTheWorkflow(t *testing.T) {
	name := mec.NodeRoleName("0123abcd")
	for _, pattern := range []string{nodeRolesARN, nodeProfilesARN} {
		kind := strings.TrimPrefix(pattern, "arn:<AWS::Partition>:iam::<AWS::AccountId>:")
		kind = kind[:strings.Index(kind, "/")]
		arn := "arn:<AWS::Partition>:iam::<AWS::AccountId>:" + kind + mec.NodeRolePath + name
		if !globMatch(pattern, arn) {
			t.Errorf("%s does not cover the workflow's %s", pattern, arn)
		}
		if globMatch(pattern, "arn:<AWS::Partition>:iam::<AWS::AccountId>:"+kind+"/"+name) {
			t.Errorf("%s covers %s outside %s", pattern, kind, mec.NodeRolePath)
		}
	}
}

type policyStatement struct {
	effect      string
	actions     []string
	resources   []string
	notResource bool // resources are NotResource
}

func (p policyStatement) String() string {
	res := strings.Join(p.resources, ",")
	if p.notResource {
		res = "NOT " + res
	}
	return p.effect + " " + strings.Join(p.actions, ",") + " " + res
}

// parsePolicy reads a policy document (JSON text or template value),
// flattening resources the way flat does.
func parsePolicy(t *testing.T, doc any) []policyStatement {
	t.Helper()
	if text, ok := doc.(string); ok {
		if err := json.Unmarshal([]byte(text), &doc); err != nil {
			t.Fatalf("policy %s: %v", text, err)
		}
	}
	var out []policyStatement
	for _, st := range list(doc.(map[string]any)["Statement"]) {
		sm := st.(map[string]any)
		if sm["Condition"] != nil || sm["NotAction"] != nil || sm["Principal"] != nil {
			t.Fatalf("statement %v: conditions, NotAction and principals are not modelled", sm)
		}
		p := policyStatement{effect: sm["Effect"].(string)}
		for _, a := range list(sm["Action"]) {
			p.actions = append(p.actions, a.(string))
		}
		res := sm["Resource"]
		if nr, ok := sm["NotResource"]; ok {
			res, p.notResource = nr, true
		}
		for _, r := range list(res) {
			p.resources = append(p.resources, flat(r))
		}
		out = append(out, p)
	}
	return out
}

// globMatch is IAM's matching: * any run of characters (slashes too), ? one.
func globMatch(pattern, s string) bool {
	re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(pattern)) + "$"
	return regexp.MustCompile(re).MatchString(s)
}

// TestFunctionPermissions is the least-privilege contract per function:
// what each calls (internal/steps, record, spec, sweep, api). A change to
// a function's AWS calls must change this table and stack/iam.go together.
func TestFunctionPermissions(t *testing.T) {
	want := map[string][]string{
		CheckSpecFunction: {"ec2:DescribeImages", "ec2:DescribeInstanceTypes", "ec2:DescribeRouteTables", "ec2:DescribeSubnets",
			"ec2:DescribeVpcs", "ssm:GetParameter"},
		"prepare": {"dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
			"ec2:DescribeRouteTables", "ec2:DescribeSubnets", "ec2:DescribeVpcs", "ssm:GetParameter"},
		"launch-nodes": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem", "ec2:AuthorizeSecurityGroupIngress", "ec2:CreateSecurityGroup",
			"ec2:CreateTags", "ec2:DescribeSecurityGroups", "ec2:RunInstances", "iam:AddRoleToInstanceProfile", "iam:AttachRolePolicy",
			"iam:CreateInstanceProfile", "iam:CreateRole", "iam:GetInstanceProfile", "iam:PassRole", "iam:PutRolePolicy",
			"iam:TagInstanceProfile", "iam:TagRole", "kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo"},
		"check-nodes": {"dynamodb:GetItem", "dynamodb:PutItem", "ec2:DescribeInstances", "ec2:GetEbsDefaultKmsKeyId", "ssm:DescribeInstanceInformation"},
		"node-command": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "iam:PutRolePolicy", "ssm:DeleteParameter", "ssm:GetCommandInvocation",
			"ssm:GetParameter", "ssm:ListCommandInvocations", "ssm:SendCommand", "states:SendTaskFailure", "states:SendTaskSuccess"},
		"command-events": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "iam:PutRolePolicy", "ssm:DeleteParameter", "ssm:GetCommandInvocation",
			"ssm:GetParameter", "states:SendTaskFailure", "states:SendTaskSuccess"},
		"cleanup": {"dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "ec2:DeleteSecurityGroup", "ec2:DescribeInstances", "ec2:DescribeSecurityGroups",
			"ec2:TerminateInstances", "iam:DeleteInstanceProfile", "iam:DeleteRole", "iam:DeleteRolePolicy", "iam:DetachRolePolicy",
			"iam:ListInstanceProfiles", "iam:ListRoles", "iam:RemoveRoleFromInstanceProfile", "ssm:DeleteParameters", "ssm:GetParametersByPath"},
		"record-status": {"dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "states:StopExecution"},
		APIFunction: {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "lambda:InvokeFunction", "ssm:GetParameter",
			"states:DescribeExecution", "states:StartExecution"},
		SweeperFunction: {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "ec2:DescribeInstances", "ssm:DescribeInstanceInformation", "states:DescribeExecution", "states:StartExecution"},
		ReaperFunction: {"dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "ec2:DeleteSecurityGroup", "ec2:DescribeInstances", "ec2:DescribeSecurityGroups",
			"ec2:TerminateInstances", "iam:DeleteInstanceProfile", "iam:DeleteRole", "iam:DeleteRolePolicy", "iam:DetachRolePolicy",
			"iam:ListInstanceProfiles", "iam:ListRoles", "iam:RemoveRoleFromInstanceProfile", "ssm:DeleteParameters", "ssm:GetParametersByPath"},
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

// TestNagIAM5SuppressionsAreExact: every AwsSolutions-IAM5 suppression names
// the wildcard resources it excuses, each one the role or policy really
// grants (no blanket or stale suppression), with a reason.
func TestNagIAM5SuppressionsAreExact(t *testing.T) {
	s, fwd := full(t)
	for _, x := range []*synthesized{s, fwd, core(t)} {
		granted := map[string]map[string]bool{} // logical id -> nag ids of its wildcard resources
		grant := func(ids []string, doc any) {
			for _, st := range list(doc.(map[string]any)["Statement"]) {
				sm := st.(map[string]any)
				if sm["Effect"] != "Allow" {
					continue
				}
				for _, r := range list(sm["Resource"]) {
					if res := flat(r); strings.Contains(res, "*") {
						for _, id := range ids {
							if granted[id] == nil {
								granted[id] = map[string]bool{}
							}
							granted[id]["Resource::"+res] = true
						}
					}
				}
			}
		}
		for _, p := range x.resources("AWS::IAM::Policy") {
			ids := []string{p.ID} // the role's suppressions reach its default policy
			for _, r := range list(p.Props["Roles"]) {
				ids = append(ids, refID(r))
			}
			grant(ids, p.Props["PolicyDocument"])
		}
		for _, p := range x.resources("AWS::IAM::ManagedPolicy") {
			grant([]string{p.ID}, p.Props["PolicyDocument"])
		}
		for _, r := range x.resources("AWS::IAM::Role") {
			for _, p := range list(r.Props["Policies"]) {
				grant([]string{r.ID}, p.(map[string]any)["PolicyDocument"])
			}
		}
		for id, raw := range x.json["Resources"].(map[string]any) {
			md, _ := raw.(map[string]any)["Metadata"].(map[string]any)
			nag, _ := md["cdk_nag"].(map[string]any)
			for _, rule := range list(nag["rules_to_suppress"]) {
				rm := rule.(map[string]any)
				if rm["id"] != "AwsSolutions-IAM5" {
					continue
				}
				if reason, _ := rm["reason"].(string); len(reason) < 20 {
					t.Errorf("%s: IAM5 suppression without a real reason: %q", id, reason)
				}
				applies := list(rm["applies_to"])
				if len(applies) == 0 {
					t.Errorf("%s: IAM5 suppressed for everything: name the wildcard resources", id)
				}
				for _, a := range applies {
					if name, ok := a.(string); !ok || !granted[id][name] {
						t.Errorf("%s: IAM5 suppression for %v, which it does not grant (grants %v)", id, a, slices.Sorted(maps.Keys(granted[id])))
					}
				}
			}
		}
	}
}

// EBS keys: only through EC2, grants only for AWS resources, and only keys
// tagged for mecd when the stack names none.
func TestEBSKeyGrantsAreScoped(t *testing.T) {
	s, _ := full(t)
	launch := s.roleOf(t, "launch-nodes")
	found := 0
	for _, st := range s.statements() {
		for _, a := range st.actions {
			if !strings.HasPrefix(a, "kms:") {
				continue
			}
			found++
			if !slices.Equal(st.roles, []string{launch}) {
				t.Errorf("%s granted to %v, want launch-nodes only", a, st.roles)
			}
			if !slices.Equal(st.condOp("StringLike", "kms:ViaService"), []string{"ec2.*.amazonaws.com"}) ||
				!slices.Equal(st.condOp("StringEquals", "aws:ResourceTag/"+ebsKeyTag), []string{"true"}) {
				t.Errorf("%s %v: want kms:ViaService ec2 and the %s tag", a, st.conditions, ebsKeyTag)
			}
			if a == "kms:CreateGrant" && !slices.Equal(st.condOp("Bool", "kms:GrantIsForAWSResource"), []string{"true"}) {
				t.Errorf("kms:CreateGrant %v without kms:GrantIsForAWSResource", st.conditions)
			}
		}
	}
	if found == 0 {
		t.Fatal("no kms statement: launches with a customer managed key would be refused")
	}
}
