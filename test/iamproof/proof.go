// Package iamproof proves the stack's IAM policies against what the
// functions really call: every authorization the local runtime recorded for
// a function's AWS calls (localrt.AuthLog: the IAM action, the resource ARN
// and the condition keys AWS would put in the request context) is evaluated
// with AWS's evaluation logic (test/iameval) against that function's role
// policies in the synthesized template, and must be allowed; a list of what
// must never be allowed (nodes and functions reaching beyond their job) must
// be denied. kumo enforces no IAM, so without this a green local run would
// say nothing of a first deploy's AccessDenied.
package iamproof

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/nodepolicy"
	"github.com/mecd/mecd/test/iameval"
	"github.com/mecd/mecd/test/localrt"
)

// Report is the proof's outcome.
type Report struct {
	Functions map[string]*FunctionReport `json:"functions"`
	// Nodes are the must-denies of node roles.
	NodeMustDeny int `json:"nodeMustDenyProven"`
	// OnGone are calls on EC2 resources already deleted, which the policies
	// deny (their tags are gone with them) and mecd treats as gone.
	OnGone []string `json:"deniedOnResourcesGone,omitempty"`
	// Failures are calls not allowed and must-denies allowed.
	Failures []string `json:"failures,omitempty"`
}

// FunctionReport is one function's part.
type FunctionReport struct {
	APICalls []string `json:"apiCalls"`
	// Allowed counts the distinct authorizations (action, resource,
	// context) proven allowed; Actions are their distinct IAM actions.
	Allowed  int      `json:"authorizationsAllowed"`
	Actions  []string `json:"actions"`
	MustDeny int      `json:"mustDenyProven"`
}

// Prove evaluates calls and the must-denies. aliases rewrite condition
// values the local runtime has in place of AWS's (its stand-in for an
// AWS-managed policy's ARN).
func Prove(ctx context.Context, ev *iameval.Evaluator, pol *Policies, d Deployed, calls []localrt.AuthCall, aliases map[string]string) (*Report, error) {
	rep := &Report{Functions: map[string]*FunctionReport{}}
	fr := func(fn string) *FunctionReport {
		if rep.Functions[fn] == nil {
			rep.Functions[fn] = &FunctionReport{}
		}
		return rep.Functions[fn]
	}
	for _, c := range calls {
		p, ok := pol.Functions[c.Function]
		if !ok {
			rep.Failures = append(rep.Failures, fmt.Sprintf("%s called %s but the stack has no role for it", c.Function, c.API))
			continue
		}
		ctxKeys := map[string][]string{}
		for k, vs := range c.Context {
			for _, v := range vs {
				if a, ok := aliases[v]; ok {
					v = a
				}
				ctxKeys[k] = append(ctxKeys[k], v)
			}
		}
		ans, err := ev.Evaluate(ctx, p, iameval.Request{Principal: functionPrincipal(d, c.Function), Action: c.Action, Resource: c.Resource,
			Account: d.Account, Context: ctxKeys, ResourcePolicy: resourcePolicy(d, c.Action)})
		if err != nil {
			return nil, fmt.Errorf("%s %s on %s: %w", c.Function, c.Action, c.Resource, err)
		}
		r := fr(c.Function)
		if !slices.Contains(r.APICalls, c.API) {
			r.APICalls = append(r.APICalls, c.API)
		}
		if ans.Decision != iameval.Allowed && c.Gone {
			rep.OnGone = append(rep.OnGone, fmt.Sprintf("%s: %s on %s", c.Function, c.Action, c.Resource))
			continue
		}
		if ans.Decision != iameval.Allowed {
			rep.Failures = append(rep.Failures, fmt.Sprintf("%s: %s needs %s on %s (context %v): %s by the stack's policies",
				c.Function, c.API, c.Action, c.Resource, ctxKeys, ans.Decision))
			continue
		}
		r.Allowed++
		if !slices.Contains(r.Actions, c.Action) {
			r.Actions = append(r.Actions, c.Action)
		}
	}
	for _, m := range mustDeny(d) {
		p, principal := pol.Functions[m.function], functionPrincipal(d, m.function)
		if m.function == "" {
			p = iameval.Principal{Identity: m.node, Boundary: []iameval.Policy{pol.NodeBoundary}}
			principal = fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", d.Account, mec.NodeRoleName(m.cluster), m.instance)
		}
		ans, err := ev.Evaluate(ctx, p, iameval.Request{Principal: principal, Action: m.action, Resource: m.resource, Account: d.Account, Context: m.context,
			ResourcePolicy: resourcePolicy(d, m.action)})
		if err != nil {
			return nil, fmt.Errorf("must-deny %q: %w", m.what, err)
		}
		if ans.Decision == iameval.Allowed {
			rep.Failures = append(rep.Failures, fmt.Sprintf("must be denied, but is allowed: %s (%s on %s)", m.what, m.action, m.resource))
			continue
		}
		if m.function == "" {
			rep.NodeMustDeny++
		} else {
			fr(m.function).MustDeny++
		}
	}
	for _, r := range rep.Functions {
		sort.Strings(r.APICalls)
		sort.Strings(r.Actions)
	}
	return rep, nil
}

// resourcePolicy is the policy of the resource an action acts on, where AWS
// requires one: a customer managed KMS key is the user's, and IAM policies
// grant on it only if its key policy lets them. This is KMS's default key
// policy, which does ("Default key policy", AWS KMS Developer Guide): the
// README asks for it, or an equivalent statement.
func resourcePolicy(d Deployed, action string) json.RawMessage {
	if !strings.HasPrefix(action, "kms:") {
		return nil
	}
	return json.RawMessage(fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow",`+
		`"Principal":{"AWS":"arn:aws:iam::%s:root"},"Action":"kms:*","Resource":"*"}]}`, d.Account))
}

func functionPrincipal(d Deployed, fn string) string {
	return fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s-%s-role/%s", d.Account, d.StackName, fn, fn)
}

// denial is one must-deny: a function's (function set) or a node's request.
type denial struct {
	what     string
	function string
	// node: the node role's identity policies (function == "").
	node              []iameval.Policy
	cluster, instance string
	action, resource  string
	context           map[string][]string
}

// mustDeny is what must never be allowed, whatever the recorded calls.
func mustDeny(d Deployed) []denial {
	const cluster, other = "mec-proof", "mec-other"
	node0, worker, intruder := "i-0000000000000000a", "i-0000000000000000b", "i-0000000000000000c"
	region := d.Region
	param := func(c, leaf string) string {
		return fmt.Sprintf("arn:aws:ssm:%s:%s:parameter%s%s", region, d.Account, mec.ParamPrefix(c), leaf)
	}
	inst := func(id string) map[string][]string {
		return map[string][]string{"ec2:SourceInstanceARN": {fmt.Sprintf("arn:aws:ec2:%s:%s:instance/%s", region, d.Account, id)}, "aws:RequestedRegion": {region}}
	}
	node := func(stage nodepolicy.Stage) []iameval.Policy {
		p := nodepolicy.Phase{Stage: stage, Node0: node0, Joiners: []string{worker}}
		return []iameval.Policy{
			{Name: "AmazonSSMManagedInstanceCore", Document: json.RawMessage(nodepolicy.AgentCore())},
			{Name: nodepolicy.InlineName, Document: json.RawMessage(nodepolicy.Inline(cluster, region, p))},
		}
	}
	// Whatever a node role's own policies said, the boundary holds.
	anything := []iameval.Policy{{Name: "everything", Document: json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`)}}
	var out []denial
	for _, st := range []nodepolicy.Stage{nodepolicy.Sealed, nodepolicy.Forming, nodepolicy.Joined} {
		for _, who := range []string{node0, worker} {
			out = append(out,
				denial{what: fmt.Sprintf("a node (%s, %s) reads another cluster's token", who, st), node: node(st), cluster: cluster, instance: who,
					action: "ssm:GetParameter", resource: param(other, mec.TokenLeaf), context: inst(who)},
				denial{what: fmt.Sprintf("a node (%s, %s) reads another cluster's kubeconfig", who, st), node: node(st), cluster: cluster, instance: who,
					action: "ssm:GetParameter", resource: param(other, mec.KubeconfigLeaf), context: inst(who)},
				denial{what: fmt.Sprintf("a node (%s, %s) reads its own kubeconfig", who, st), node: node(st), cluster: cluster, instance: who,
					action: "ssm:GetParameter", resource: param(cluster, mec.KubeconfigLeaf), context: inst(who)},
			)
		}
	}
	out = append(out,
		denial{what: "any node reads the kubeconfig after READY", node: node(nodepolicy.Sealed), cluster: cluster, instance: node0,
			action: "ssm:GetParameter", resource: param(cluster, mec.KubeconfigLeaf), context: inst(node0)},
		denial{what: "any node writes the kubeconfig after READY", node: node(nodepolicy.Sealed), cluster: cluster, instance: node0,
			action: "ssm:PutParameter", resource: param(cluster, mec.KubeconfigLeaf), context: inst(node0)},
		denial{what: "a worker reads the join token after joining", node: node(nodepolicy.Joined), cluster: cluster, instance: worker,
			action: "ssm:GetParameter", resource: param(cluster, mec.TokenLeaf), context: inst(worker)},
		denial{what: "a worker writes the kubeconfig", node: node(nodepolicy.Joined), cluster: cluster, instance: worker,
			action: "ssm:PutParameter", resource: param(cluster, mec.KubeconfigLeaf), context: inst(worker)},
		denial{what: "node 0 overwrites the kubeconfig", node: node(nodepolicy.Joined), cluster: cluster, instance: node0,
			action: "ssm:PutParameter", resource: param(cluster, mec.KubeconfigLeaf), context: mergeCtx(inst(node0), "ssm:Overwrite", "true")},
		denial{what: "a worker writes the kubeconfig while the MEC forms", node: node(nodepolicy.Forming), cluster: cluster, instance: worker,
			action: "ssm:PutParameter", resource: param(cluster, mec.KubeconfigLeaf), context: inst(worker)},
		denial{what: "node 0 overwrites the kubeconfig while the MEC forms", node: node(nodepolicy.Forming), cluster: cluster, instance: node0,
			action: "ssm:PutParameter", resource: param(cluster, mec.KubeconfigLeaf), context: mergeCtx(inst(node0), "ssm:Overwrite", "true")},
		denial{what: "another instance with the role reads the token while the MEC forms", node: node(nodepolicy.Forming), cluster: cluster, instance: intruder,
			action: "ssm:GetParameter", resource: param(cluster, mec.TokenLeaf), context: inst(intruder)},
	)
	for _, a := range []struct{ action, resource string }{
		{"iam:CreateRole", fmt.Sprintf("arn:aws:iam::%s:role/x", d.Account)},
		{"iam:PassRole", fmt.Sprintf("arn:aws:iam::%s:role/mecd/%s", d.Account, mec.NodeRoleName(cluster))},
		{"iam:PutRolePolicy", fmt.Sprintf("arn:aws:iam::%s:role/mecd/%s", d.Account, mec.NodeRoleName(cluster))},
		{"ec2:RunInstances", fmt.Sprintf("arn:aws:ec2:%s:%s:instance/*", region, d.Account)},
		{"ec2:TerminateInstances", fmt.Sprintf("arn:aws:ec2:%s:%s:instance/%s", region, d.Account, worker)},
		{"states:StartExecution", fmt.Sprintf("arn:aws:states:%s:%s:stateMachine:%s-provision", region, d.Account, d.StackName)},
		{"states:SendTaskSuccess", "*"},
		{"ssm:SendCommand", fmt.Sprintf("arn:aws:ssm:%s:%s:document/%s", region, d.Account, "mecd-NodeScript")},
		{"ssm:PutParameter", fmt.Sprintf("arn:aws:ssm:%s:%s:parameter/app/secret", region, d.Account)},
		{"dynamodb:GetItem", d.TableArn},
		{"kms:Decrypt", fmt.Sprintf("arn:aws:kms:%s:%s:key/x", region, d.Account)},
	} {
		out = append(out,
			denial{what: "a node calls " + a.action, node: node(nodepolicy.Forming), cluster: cluster, instance: node0, action: a.action, resource: a.resource, context: inst(node0)},
			denial{what: "a node role with any policy calls " + a.action + " (the boundary)", node: anything, cluster: cluster, instance: node0, action: a.action, resource: a.resource, context: inst(node0)},
		)
	}
	role := func(path, name string) string { return fmt.Sprintf("arn:aws:iam::%s:role%s%s", d.Account, path, name) }
	regional := map[string][]string{"aws:RequestedRegion": {region}}
	for _, a := range []struct{ action, resource string }{
		{"ec2:RunInstances", fmt.Sprintf("arn:aws:ec2:%s:%s:instance/*", region, d.Account)},
		{"ec2:TerminateInstances", fmt.Sprintf("arn:aws:ec2:%s:%s:instance/i-0123456789abcdef0", region, d.Account)},
		{"ec2:DescribeInstances", "*"},
		{"ec2:CreateSecurityGroup", fmt.Sprintf("arn:aws:ec2:%s:%s:security-group/*", region, d.Account)},
		{"iam:CreateRole", role("/mecd/", mec.NodeRoleName(cluster))},
		{"iam:PassRole", role("/mecd/", mec.NodeRoleName(cluster))},
		{"iam:PutRolePolicy", role("/mecd/", mec.NodeRoleName(cluster))},
		{"iam:DeleteRole", role("/mecd/", mec.NodeRoleName(cluster))},
		{"ssm:SendCommand", fmt.Sprintf("arn:aws:ssm:%s:%s:document/AWS-RunShellScript", region, d.Account)},
		{"ssm:GetParameter", param(cluster, mec.TokenLeaf)},
		{"ssm:PutParameter", param(cluster, mec.KubeconfigLeaf)},
	} {
		out = append(out, denial{what: "the api function calls " + a.action, function: "api", action: a.action, resource: a.resource, context: regional})
	}
	// Each function holds only its own job: none of the others'.
	instance := fmt.Sprintf("arn:aws:ec2:%s:%s:instance/*", region, d.Account)
	tagged := map[string][]string{"aws:RequestedRegion": {region}, "aws:RequestTag/" + mec.TagManaged: {"true"}, "ec2:ResourceTag/" + mec.TagManaged: {"true"},
		"ssm:resourceTag/" + mec.TagManaged: {"true"}, "ec2:MetadataHttpTokens": {"required"}}
	for fn, actions := range map[string][][2]string{
		"check-spec":     {{"ec2:RunInstances", instance}, {"dynamodb:PutItem", d.TableArn}, {"states:StartExecution", "*"}},
		"check-nodes":    {{"ec2:TerminateInstances", instance}, {"ssm:SendCommand", instance}, {"iam:PassRole", role("/mecd/", mec.NodeRoleName(cluster))}},
		"prepare":        {{"ec2:RunInstances", instance}, {"ssm:GetParameter", param(cluster, mec.KubeconfigLeaf)}, {"iam:CreateRole", role("/mecd/", mec.NodeRoleName(cluster))}},
		"command-events": {{"ssm:SendCommand", instance}, {"ssm:GetParameter", param(cluster, mec.KubeconfigLeaf)}, {"ec2:TerminateInstances", instance}},
		"record-status":  {{"states:StartExecution", fmt.Sprintf("arn:aws:states:%s:%s:stateMachine:%s-provision", region, d.Account, d.StackName)}, {"ec2:TerminateInstances", instance}, {"ssm:GetParameter", param(cluster, mec.KubeconfigLeaf)}},
		"sweeper":        {{"ec2:TerminateInstances", instance}, {"iam:DeleteRole", role("/mecd/", mec.NodeRoleName(cluster))}, {"ssm:GetParameter", param(cluster, mec.KubeconfigLeaf)}},
		"cleanup":        {{"ec2:RunInstances", instance}, {"ssm:GetParameter", param(cluster, mec.KubeconfigLeaf)}, {"states:StartExecution", "*"}},
		"reaper":         {{"ec2:RunInstances", instance}, {"ssm:GetParameter", param(cluster, mec.KubeconfigLeaf)}, {"iam:CreateRole", role("/mecd/", mec.NodeRoleName(cluster))}},
	} {
		for _, a := range actions {
			out = append(out, denial{what: fmt.Sprintf("%s calls %s", fn, a[0]), function: fn, action: a[0], resource: a[1], context: tagged})
		}
	}
	// GetParametersByPath is authorised against the path asked for: every
	// ancestor of a node's parameters must be denied too.
	for _, path := range []string{"/mecd", "/mecd/" + cluster} {
		out = append(out, denial{what: "a node lists " + path, node: node(nodepolicy.Forming), cluster: cluster, instance: worker,
			action: "ssm:GetParametersByPath", resource: fmt.Sprintf("arn:aws:ssm:%s:%s:parameter%s", region, d.Account, path), context: inst(worker)})
	}
	boundary := map[string][]string{"iam:PermissionsBoundary": {d.BoundaryArn}}
	key := fmt.Sprintf("arn:aws:kms:%s:%s:key/1234abcd-12ab-34cd-56ef-1234567890ab", region, d.Account)
	out = append(out,
		denial{what: "launch-nodes passes a node role to Lambda", function: "launch-nodes", action: "iam:PassRole", resource: role("/mecd/", mec.NodeRoleName(cluster)),
			context: map[string][]string{"iam:PassedToService": {"lambda.amazonaws.com"}}},
		denial{what: "launch-nodes passes a role that is not a node role", function: "launch-nodes", action: "iam:PassRole", resource: role("/", "admin"),
			context: map[string][]string{"iam:PassedToService": {"ec2.amazonaws.com"}}},
		denial{what: "launch-nodes creates a role without the node boundary", function: "launch-nodes", action: "iam:CreateRole", resource: role("/mecd/", mec.NodeRoleName(cluster))},
		denial{what: "launch-nodes attaches AdministratorAccess", function: "launch-nodes", action: "iam:AttachRolePolicy", resource: role("/mecd/", mec.NodeRoleName(cluster)),
			context: mergeCtx(boundary, "iam:PolicyARN", "arn:aws:iam::aws:policy/AdministratorAccess")},
		denial{what: "launch-nodes launches an untagged instance", function: "launch-nodes", action: "ec2:RunInstances", resource: fmt.Sprintf("arn:aws:ec2:%s:%s:instance/*", region, d.Account),
			context: mergeCtx(regional, "ec2:MetadataHttpTokens", "required")},
		denial{what: "launch-nodes launches an instance with IMDSv1", function: "launch-nodes", action: "ec2:RunInstances", resource: fmt.Sprintf("arn:aws:ec2:%s:%s:instance/*", region, d.Account),
			context: mergeCtx(mergeCtx(regional, "ec2:MetadataHttpTokens", "optional"), "aws:RequestTag/"+mec.TagManaged, "true")},
		denial{what: "launch-nodes uses a KMS key not tagged for mecd", function: "launch-nodes", action: "kms:CreateGrant", resource: key,
			context: map[string][]string{"aws:RequestedRegion": {region}, "kms:ViaService": {"ec2." + region + ".amazonaws.com"}, "kms:GrantIsForAWSResource": {"true"}}},
		denial{what: "launch-nodes decrypts with a mecd key itself, not through EC2", function: "launch-nodes", action: "kms:Decrypt", resource: key,
			context: map[string][]string{"aws:RequestedRegion": {region}, "aws:ResourceTag/mecd:ebs-key": {"true"}}},
		denial{what: "launch-nodes creates a grant for itself (not for an AWS resource)", function: "launch-nodes", action: "kms:CreateGrant", resource: key,
			context: map[string][]string{"aws:RequestedRegion": {region}, "aws:ResourceTag/mecd:ebs-key": {"true"}, "kms:ViaService": {"ec2." + region + ".amazonaws.com"}}},
		denial{what: "node-command rewrites a role without the node boundary", function: "node-command", action: "iam:PutRolePolicy", resource: role("/", "admin")},
		denial{what: "node-command runs AWS-RunShellScript", function: "node-command", action: "ssm:SendCommand", resource: fmt.Sprintf("arn:aws:ssm:%s:%s:document/AWS-RunShellScript", region, d.Account), context: regional},
		denial{what: "cleanup terminates an instance mecd did not tag", function: "cleanup", action: "ec2:TerminateInstances",
			resource: fmt.Sprintf("arn:aws:ec2:%s:%s:instance/i-0123456789abcdef0", region, d.Account), context: regional},
		denial{what: "the reaper deletes a role outside the node path", function: "reaper", action: "iam:DeleteRole", resource: role("/", "admin")},
		denial{what: "a function works outside the allowed regions", function: "launch-nodes", action: "ec2:RunInstances",
			resource: fmt.Sprintf("arn:aws:ec2:%s:%s:instance/*", "sa-east-1", d.Account),
			context:  map[string][]string{"aws:RequestedRegion": {"sa-east-1"}, "aws:RequestTag/" + mec.TagManaged: {"true"}, "ec2:MetadataHttpTokens": {"required"}}},
	)
	return out
}

func mergeCtx(base map[string][]string, k, v string) map[string][]string {
	out := map[string][]string{k: {v}}
	for bk, bv := range base {
		if bk != k {
			out[bk] = bv
		}
	}
	return out
}

// Summary is the report in a few lines.
func (r *Report) Summary() string {
	var b strings.Builder
	for _, n := range slices.Sorted(maps.Keys(r.Functions)) {
		f := r.Functions[n]
		fmt.Fprintf(&b, "%-15s %2d API calls, %3d authorizations allowed (%d actions), %2d must-denies denied\n", n, len(f.APICalls), f.Allowed, len(f.Actions), f.MustDeny)
	}
	fmt.Fprintf(&b, "%-15s %d must-denies denied\n", "nodes", r.NodeMustDeny)
	return b.String()
}
