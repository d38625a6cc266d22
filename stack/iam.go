package stack

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/store"
)

// The tag every mecd resource carries (internal/steps sets it on create);
// mutating EC2 permissions are conditioned on it.
const (
	nodeDocument = "mecd-NodeScript" // backend.NodeDocument.Name; a constant for the ARN patterns below
	managedTag   = mec.TagManaged
	managedValue = "true"
)

// ARN patterns, written as Fn::Sub bodies: the same text renders the
// resource and, flattened, the cdk-nag finding it may cause (see nagID).
// MECs live in any allowed region, so region is "*" and every regional
// statement carries an aws:RequestedRegion condition instead. AWS-owned
// documents and public parameters are written with account "*", which also
// matches the empty account their ARNs have; the AWS- and /aws/ prefixes are
// reserved to AWS.
const (
	arnInstance   = "arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:instance/*"
	arnVolume     = "arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:volume/*"
	arnGroup      = "arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:security-group/*"
	arnENI        = "arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:network-interface/*"
	arnSubnet     = "arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:subnet/*"
	arnVPC        = "arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:vpc/*"
	arnImage      = "arn:${AWS::Partition}:ec2:*::image/*"
	arnNodeDoc    = "arn:${AWS::Partition}:ssm:*:${AWS::AccountId}:document/" + nodeDocument
	arnCanonical  = "arn:${AWS::Partition}:ssm:*:*:parameter/aws/service/canonical/*"
	arnParams     = "arn:${AWS::Partition}:ssm:*:${AWS::AccountId}:parameter" + mec.ParamRoot + "*"
	arnParamRoot  = "arn:${AWS::Partition}:ssm:*:${AWS::AccountId}:parameter" + mec.ParamPath
	arnJoinToken  = arnParams + "/" + mec.TokenLeaf
	arnKubeconfig = arnParams + "/" + mec.KubeconfigLeaf
	anyResource   = "*"
)

// access is one statement of a role's policy. Resources are ARN patterns
// (above), "*", or tokens of the stack's own resources.
type access struct {
	deny      bool
	actions   []string
	resources []string
	// conditions: operator -> key -> value(s).
	conditions map[string]map[string]any
	// regional adds aws:RequestedRegion = the allowed regions.
	regional bool
	// why a resource needs a wildcard: required for every wildcard, it
	// becomes the cdk-nag suppression's reason, next to what it excuses.
	why string
}

// tagged is the condition that a resource already carries the mecd tag.
func tagged(key string) map[string]map[string]any {
	return map[string]map[string]any{"StringEquals": {key: managedValue}}
}

// refs are the stack's own resources the policies point at.
type refs struct {
	table   string   // table ARN
	indexes []string // GSI ARNs
	// nodeBoundary is the node roles' permissions boundary (policy ARN).
	nodeBoundary string
	// stateMachines are the deployed names by backend name.
	stateMachines map[string]string
	// functions are the fixed names of the functions other functions call.
	functions map[string]string
	// ebsKeys are the KMS keys MEC volumes may use (none: keys tagged ebsKeyTag).
	ebsKeys []string
}

// stateMachineArn and executionsArn are ARN patterns of the stack's own
// workflows, built from their names (see NewMecdStack for why).
func stateMachineArn(name string) string {
	return "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:" + name
}

func executionsArn(name string) string {
	return "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:" + name + ":*"
}

// Reasons shared by several statements.
const (
	whyNoResourceLevel = "the Service Authorization Reference lists no resource type for these actions, so IAM accepts only \"*\"; they are read-only and limited to the allowed regions"
	whyTaskToken       = "SendTaskSuccess/SendTaskFailure accept no resource (Service Authorization Reference); the task token in the request is the capability, and only the workflow that parked it hands it out"
	whyAnyRegion       = "the MEC's region is chosen per request among the allowed regions: the ARN's region is \"*\" and aws:RequestedRegion narrows it"
	whyNodeRoles       = "each MEC's nodes get a role and instance profile of their own, /mecd/mecd-node-<clusterId>, and the cluster id is known only at run time"
)

// boundTo is the condition that the role acted on has the node boundary as
// its permissions boundary (for CreateRole: is created with it).
func boundTo(r refs) map[string]map[string]any {
	return map[string]map[string]any{"StringEquals": {"iam:PermissionsBoundary": r.nodeBoundary}}
}

// nodeRoleAccess is what launch-nodes needs to give a MEC its node role and
// instance profile (internal/steps ensureNodeRole): a role only under the
// boundary, with no managed policy but the SSM agent's, and passed to EC2
// only. Nothing here may change a boundary or a managed policy.
func nodeRoleAccess(r refs) []access {
	return []access{
		{actions: []string{"iam:CreateRole", "iam:PutRolePolicy"}, resources: []string{arnNodeRoles},
			conditions: boundTo(r), why: whyNodeRoles + "; only created and given inline policies under the node boundary (iam:PermissionsBoundary)"},
		{actions: []string{"iam:AttachRolePolicy"}, resources: []string{arnNodeRoles},
			conditions: map[string]map[string]any{
				"StringEquals": {"iam:PermissionsBoundary": r.nodeBoundary},
				"ArnEquals":    {"iam:PolicyARN": arnCorePolicy},
			},
			why: whyNodeRoles + "; only roles under the node boundary, and only " + ssmCorePolicy + " (iam:PolicyARN)"},
		// CreateRole with tags also authorises TagRole. The Service
		// Authorization Reference lists iam:PermissionsBoundary for the role
		// mutations above but not for TagRole: IfExists keeps the boundary
		// check where IAM supplies the key without denying where it does not
		// (a tag grants no permission; the name and path still bind it).
		{actions: []string{"iam:TagRole"}, resources: []string{arnNodeRoles},
			conditions: map[string]map[string]any{"StringEqualsIfExists": {"iam:PermissionsBoundary": r.nodeBoundary}},
			why:        whyNodeRoles + "; tags of node roles only"},
		{actions: []string{"iam:CreateInstanceProfile", "iam:GetInstanceProfile", "iam:AddRoleToInstanceProfile", "iam:TagInstanceProfile"},
			resources: []string{arnNodeProfiles}, why: whyNodeRoles},
		// RunInstances with the profile passes the role to EC2.
		{actions: []string{"iam:PassRole"}, resources: []string{arnNodeRoles},
			conditions: map[string]map[string]any{"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
			why:        whyNodeRoles + "; passed to EC2 only (iam:PassedToService)"},
		// AddRoleToInstanceProfile needs iam:PassRole on the role too (IAM API
		// Reference), and AWS documents iam:AssociatedResourceArn for it
		// ("arn:aws:ec2:*:<account>:instance/*") but not iam:PassedToService,
		// which the statement above requires. This one covers a request
		// without that key, and whatever AssociatedResourceArn it carries must
		// be an instance of this account. It widens nothing: it names only
		// node roles, whose trust policy admits ec2.amazonaws.com alone, and a
		// pass to any service that sends iam:PassedToService is the statement
		// above's to decide.
		{actions: []string{"iam:PassRole"}, resources: []string{arnNodeRoles},
			conditions: map[string]map[string]any{
				"Null":            {"iam:PassedToService": "true"},
				"ArnLikeIfExists": {"iam:AssociatedResourceArn": "arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:instance/*"},
			},
			why: whyNodeRoles + "; for AddRoleToInstanceProfile, which sends no iam:PassedToService"},
	}
}

// commandEnd is what ending a node command takes (internal/steps
// finishCommand, run by command-events, or by node-command when it finds the
// command already ended): the join token (node 0 makes it) read back to
// redact outputs and deleted once every node joined, the workflow resumed,
// and the node role moved to its next stage.
func commandEnd(r refs) []access {
	return []access{
		{actions: []string{"ssm:GetParameter", "ssm:DeleteParameter"}, resources: []string{arnJoinToken}, regional: true,
			why: whyAnyRegion + "; a MEC's parameters are /mecd/<clusterId>/..., and the cluster id is known only at run time"},
		{actions: []string{"states:SendTaskSuccess", "states:SendTaskFailure"}, resources: []string{anyResource}, why: whyTaskToken},
		nodePhaseAccess(r),
	}
}

// ebsKeyTag marks the customer managed keys MEC volumes may use when the
// stack names none (EBSKeyArns).
const ebsKeyTag = "mecd:ebs-key"

// ebsKeyAccess is what RunInstances needs of a customer managed key its
// volumes are encrypted with (spec ebsKmsKeyId, or the region's EBS default):
// EC2 uses the key as the launching role, creating a grant for the volume
// ("Requirements for Amazon EBS encryption", EBS User Guide). Only through
// EC2 (kms:ViaService), the grant only for an AWS resource
// (kms:GrantIsForAWSResource), and only the keys the stack names, or else
// keys tagged for mecd.
func ebsKeyAccess(r refs) []access {
	keys, cond := r.ebsKeys, map[string]any{}
	why := "the keys named by " + CtxEBSKeyArns
	if len(keys) == 0 {
		keys = []string{"arn:${AWS::Partition}:kms:*:${AWS::AccountId}:key/*"}
		cond = map[string]any{"aws:ResourceTag/" + ebsKeyTag: "true"}
		why = "a MEC's ebsKmsKeyId is chosen per request, in its region: only keys tagged " + ebsKeyTag + "=true (aws:ResourceTag), only through EC2 (kms:ViaService)"
	}
	via := map[string]any{"kms:ViaService": "ec2.*.amazonaws.com"}
	eq := func(extra map[string]any) map[string]map[string]any {
		c := map[string]map[string]any{"StringLike": via}
		if len(cond) > 0 {
			c["StringEquals"] = cond
		}
		for k, v := range extra {
			c[k] = v.(map[string]any)
		}
		return c
	}
	return []access{
		{actions: []string{"kms:CreateGrant"}, resources: keys, regional: true,
			conditions: eq(map[string]any{"Bool": map[string]any{"kms:GrantIsForAWSResource": "true"}}), why: why + "; grants for EC2's volumes only"},
		// ReEncrypt: an AMI whose snapshot another key encrypts.
		{actions: []string{"kms:GenerateDataKeyWithoutPlaintext", "kms:Decrypt", "kms:DescribeKey", "kms:ReEncryptFrom", "kms:ReEncryptTo"}, resources: keys, regional: true,
			conditions: eq(nil), why: why},
	}
}

// nodePhaseAccess: node-command and command-events move a MEC's node role
// through the stages of its build (internal/nodepolicy), rewriting its
// inline policy.
func nodePhaseAccess(r refs) access {
	return access{actions: []string{"iam:PutRolePolicy"}, resources: []string{arnNodeRoles}, conditions: boundTo(r),
		why: whyNodeRoles + "; the inline policy of roles under the node boundary only (iam:PermissionsBoundary), which caps whatever it says"}
}

// nodeRoleCleanup removes a MEC's node role and instance profile
// (internal/steps deleteNodeRole).
func nodeRoleCleanup(r refs) []access {
	return []access{
		{actions: []string{"iam:ListRoles", "iam:ListInstanceProfiles"}, resources: []string{anyResource},
			why: "IAM's List actions take no resource (Service Authorization Reference); node roles are listed with PathPrefix " + mec.NodeRolePath +
				" before a delete, since IAM refuses a call on a role that does not exist (it authorizes by the role's ARN, path included)"},
		{actions: []string{"iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile"}, resources: []string{arnNodeProfiles}, why: whyNodeRoles},
		{actions: []string{"iam:DeleteRolePolicy", "iam:DetachRolePolicy"}, resources: []string{arnNodeRoles},
			conditions: boundTo(r), why: whyNodeRoles + "; only roles under the node boundary (iam:PermissionsBoundary)"},
		{actions: []string{"iam:DeleteRole"}, resources: []string{arnNodeRoles},
			why: whyNodeRoles + "; DeleteRole takes no iam:PermissionsBoundary condition (Service Authorization Reference), and IAM refuses it while the role has policies or a profile"},
	}
}

// deleteMEC is what deleting a MEC's resources takes (cleanup, reaper):
// each mutation only on what mecd tagged or named.
func deleteMEC(r refs, describe func(...string) access) []access {
	return append([]access{
		describe("ec2:DescribeInstances", "ec2:DescribeSecurityGroups"),
		{actions: []string{"ec2:TerminateInstances"}, resources: []string{arnInstance}, regional: true,
			conditions: tagged("ec2:ResourceTag/" + managedTag), why: whyAnyRegion + "; only instances tagged by mecd"},
		{actions: []string{"ec2:DeleteSecurityGroup"}, resources: []string{arnGroup}, regional: true,
			conditions: tagged("ec2:ResourceTag/" + managedTag), why: whyAnyRegion + "; only groups tagged by mecd"},
		{actions: []string{"ssm:GetParametersByPath", "ssm:DeleteParameters"}, resources: []string{arnParams}, regional: true,
			why: whyAnyRegion + "; parameters under /mecd/<clusterId>/ only, whose id is known only at run time"},
	}, nodeRoleCleanup(r)...)
}

func dynamo(r refs, actions ...string) access {
	full := make([]string, len(actions))
	for i, a := range actions {
		full[i] = "dynamodb:" + a
	}
	return access{actions: full, resources: []string{r.table}}
}

// sparesIndex is the index that lists the spare node roles
// (internal/store Spares), and no other.
func sparesIndex(r refs) access {
	return access{actions: []string{"dynamodb:Query"}, resources: []string{r.table + "/index/" + store.SparesIndex}}
}

// functionAccess is, per backend function, exactly what its code calls
// (internal/steps, internal/record, internal/spec). TransactWriteItems is
// no IAM action: a transaction needs the Put/Delete/ConditionCheck of its items.
func functionAccess(name string, r refs) ([]access, bool) {
	describe := func(actions ...string) access {
		return access{actions: actions, resources: []string{anyResource}, regional: true, why: whyNoResourceLevel}
	}
	switch name {
	case CheckSpecFunction:
		// Resolves a spec in its region for the API, creating nothing.
		return []access{
			describe("ec2:DescribeInstanceTypes", "ec2:DescribeImages", "ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeRouteTables"),
			{actions: []string{"ssm:GetParameter"}, resources: []string{arnCanonical}, regional: true,
				why: "Canonical publishes the Ubuntu AMI ids as public parameters under /aws/service/canonical/ (one per release and architecture); public parameters have no account and are read-only"},
		}, true
	case "prepare":
		// Reads and creates the record (a transaction with the name claim),
		// then resolves architecture, AMI and network; a spec the region
		// refuses marks the record FAILED and gives its name back (DeleteItem
		// of the claim, in the same transaction).
		return []access{
			dynamo(r, "GetItem", "PutItem", "DeleteItem"),
			describe("ec2:DescribeInstanceTypes", "ec2:DescribeImages", "ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeRouteTables"),
			{actions: []string{"ssm:GetParameter"}, resources: []string{arnCanonical}, regional: true,
				why: "Canonical publishes the Ubuntu AMI ids as public parameters under /aws/service/canonical/ (one per release and architecture); public parameters have no account and are read-only"},
		}, true
	case "launch-nodes":
		// UpdateItem and the byKind index: spare node roles, taken and made.
		return append([]access{
			dynamo(r, "GetItem", "PutItem", "UpdateItem"),
			sparesIndex(r),
			describe("ec2:DescribeSecurityGroups"),
			// The new group must be tagged at creation...
			{actions: []string{"ec2:CreateSecurityGroup"}, resources: []string{arnGroup}, regional: true,
				conditions: tagged("aws:RequestTag/" + managedTag), why: whyAnyRegion + "; the group does not exist before the call, so only the request's tags can be checked"},
			// ...in the user's VPC (default or given), which carries no mecd tag.
			{actions: []string{"ec2:CreateSecurityGroup"}, resources: []string{arnVPC}, regional: true,
				why: "CreateSecurityGroup also authorises the VPC it goes into: the user's (default or given), which mecd neither creates nor tags; the group itself must carry the mecd tag (statement above)"},
			{actions: []string{"ec2:AuthorizeSecurityGroupIngress"}, resources: []string{arnGroup}, regional: true,
				conditions: tagged("ec2:ResourceTag/" + managedTag), why: whyAnyRegion + "; only groups tagged by mecd"},
			// Instances and volumes are created tagged, IMDSv2-only and encrypted.
			{actions: []string{"ec2:RunInstances"}, resources: []string{arnInstance}, regional: true,
				conditions: map[string]map[string]any{"StringEquals": {"aws:RequestTag/" + managedTag: managedValue, "ec2:MetadataHttpTokens": "required"}},
				why:        whyAnyRegion + "; instances do not exist before the call, so the request's tags (and IMDSv2) are checked"},
			{actions: []string{"ec2:RunInstances"}, resources: []string{arnVolume}, regional: true,
				conditions: map[string]map[string]any{"StringEquals": {"aws:RequestTag/" + managedTag: managedValue}, "Bool": {"ec2:Encrypted": "true"}},
				why:        whyAnyRegion + "; volumes do not exist before the call, so the request's tags (and encryption) are checked"},
			{actions: []string{"ec2:RunInstances"}, resources: []string{arnGroup}, regional: true,
				conditions: tagged("ec2:ResourceTag/" + managedTag), why: whyAnyRegion + "; only the group mecd created and tagged"},
			{actions: []string{"ec2:RunInstances"}, resources: []string{arnSubnet, arnENI, arnImage}, regional: true,
				why: "RunInstances also authorises the user's subnet, the AMI (Canonical's or the user's) and the network interface it creates: none can carry the mecd tag at that point; what is created is covered by the tagged statements"},
			{actions: []string{"ec2:CreateTags"}, resources: []string{arnInstance, arnVolume, arnGroup}, regional: true,
				conditions: map[string]map[string]any{"StringEquals": {"ec2:CreateAction": []string{"RunInstances", "CreateSecurityGroup"}}},
				why:        whyAnyRegion + "; tagging only as part of the creating call (ec2:CreateAction), never of existing resources"},
		}, append(nodeRoleAccess(r), ebsKeyAccess(r)...)...), true
	case "check-nodes":
		return []access{
			dynamo(r, "GetItem", "PutItem"),
			// GetEbsDefaultKmsKeyId names the key in the cause of a node EC2 ended at launch.
			describe("ec2:DescribeInstances", "ssm:DescribeInstanceInformation", "ec2:GetEbsDefaultKmsKeyId"),
		}, true
	case "node-command":
		return append([]access{
			dynamo(r, "GetItem", "PutItem", "UpdateItem"),
			{actions: []string{"ssm:SendCommand"}, resources: []string{arnNodeDoc}, regional: true,
				why: whyAnyRegion + "; mecd's own node document, the same name in every MEC region; the target instances are limited by tag (next statement)"},
			{actions: []string{"ssm:SendCommand"}, resources: []string{arnInstance}, regional: true,
				conditions: tagged("ssm:resourceTag/" + managedTag), why: whyAnyRegion + "; only instances tagged by mecd"},
			describe("ssm:ListCommandInvocations", "ssm:GetCommandInvocation"),
			{actions: []string{"ssm:DeleteParameter"}, resources: []string{arnKubeconfig}, regional: true,
				why: whyAnyRegion + "; a repair of the endpoint's node deletes the kubeconfig that points at it before the new node 0 stores it again"},
		}, commandEnd(r)...), true
	case "command-events":
		return append([]access{
			dynamo(r, "GetItem", "PutItem", "UpdateItem"),
			describe("ssm:GetCommandInvocation"),
		}, commandEnd(r)...), true
	case "cleanup":
		// DeleteItem: the MEC's command waits go with its nodes.
		// The byKind index: the spare node roles the MEC took.
		return append([]access{dynamo(r, "GetItem", "PutItem", "DeleteItem"), sparesIndex(r)}, deleteMEC(r, describe)...), true
	case "record-status":
		// Moving to DELETED releases the name claim in the same transaction;
		// moving a CREATING MEC to DELETING stops its provisioning.
		acc := []access{dynamo(r, "GetItem", "PutItem", "DeleteItem")}
		if name, ok := r.stateMachines[ProvisionMachine]; ok {
			acc = append(acc, access{actions: []string{"states:StopExecution"}, resources: []string{executionsArn(name)},
				why: "executions of the provision workflow only; each is named by its cluster id, known only at run time"})
		}
		if name, ok := r.stateMachines[ScaleMachine]; ok {
			acc = append(acc, access{actions: []string{"states:StopExecution"}, resources: []string{executionsArn(name)},
				why: "executions of the scale workflow only (a DELETE stops a running scale); each is named by its cluster id and operation, known only at run time"})
		}
		return acc, true
	case APIFunction:
		// Create (record, name claim and idempotency item in one
		// transaction), get, list (GSIs), delete (start the teardown, or
		// look at the one already running), kubeconfig (in the MEC's region).
		acc := []access{
			dynamo(r, "GetItem", "PutItem"),
			{actions: []string{"dynamodb:Query"}, resources: r.indexes},
			{actions: []string{"ssm:GetParameter"}, resources: []string{arnKubeconfig}, regional: true,
				why: whyAnyRegion + "; it reads a READY MEC's /mecd/<clusterId>/kubeconfig, whose id is known only at run time"},
		}
		if name, ok := r.functions[CheckSpecFunction]; ok {
			acc = append(acc, access{actions: []string{"lambda:InvokeFunction"},
				resources: []string{"arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:" + name}})
		}
		return append(append(acc, startExecution(r, ProvisionMachine, TeardownMachine, ScaleMachine)...), describeTeardowns(r)...), true
	case ReaperFunction:
		// Finds mecd's resources by tag and path in every allowed region,
		// reads their MEC, and deletes what cleanup deletes.
		return append([]access{
			// DeleteItem and the byKind index: spare node roles left half
			// made; PutItem and DeleteItem: its lock (one run at a time).
			dynamo(r, "GetItem", "PutItem", "DeleteItem"),
			sparesIndex(r),
			// GetParametersByPath is authorised against the path asked for,
			// not the parameters returned (Systems Manager User Guide, How
			// Parameter Store authorizes parameter retrieval): the reaper lists /mecd/.
			{actions: []string{"ssm:GetParametersByPath"}, resources: []string{arnParamRoot}, regional: true,
				why: whyAnyRegion + "; the listing of " + mec.ParamRoot + " itself, whose MECs the reaper then checks"},
		}, deleteMEC(r, describe)...), true
	case SweeperFunction:
		// MECs past their expiry (byExpiry index), then their teardown,
		// whose execution ARN goes into the record; stuck MECs (byStatus
		// index): a failed teardown restarted, a dead provisioning (described
		// by its execution) rolled back; READY and DEGRADED MECs' nodes as
		// EC2 and SSM see them, and a repair (the scale workflow) for lost ones.
		acc := []access{
			dynamo(r, "GetItem", "PutItem"),
			{actions: []string{"dynamodb:Query"}, resources: r.indexes},
			describe("ec2:DescribeInstances", "ssm:DescribeInstanceInformation"),
		}
		if name, ok := r.stateMachines[ProvisionMachine]; ok {
			acc = append(acc, access{actions: []string{"states:DescribeExecution"}, resources: []string{executionsArn(name)},
				why: "executions of the provision workflow only; each is named by its cluster id, known only at run time"})
		}
		if name, ok := r.stateMachines[ScaleMachine]; ok {
			acc = append(acc, access{actions: []string{"states:DescribeExecution"}, resources: []string{executionsArn(name)},
				why: "executions of the scale workflow only (an operation that ended without recording its outcome is undone); each is named by its cluster id and operation, known only at run time"})
		}
		return append(append(acc, startExecution(r, TeardownMachine, RollbackMachine, ScaleMachine)...), describeTeardowns(r)...), true
	}
	return nil, false
}

// describeTeardowns: starting a teardown whose name is taken looks at that
// execution to decide between answering with it and the next name.
func describeTeardowns(r refs) []access {
	name, ok := r.stateMachines[TeardownMachine]
	if !ok {
		return nil
	}
	return []access{{actions: []string{"states:DescribeExecution"}, resources: []string{executionsArn(name)},
		why: "executions of the teardown workflow only; each is named after its cluster id, known only at run time"}}
}

func startExecution(r refs, machines ...string) []access {
	var arns []string
	for _, m := range machines {
		if name, ok := r.stateMachines[m]; ok {
			arns = append(arns, stateMachineArn(name))
		}
	}
	if len(arns) == 0 {
		return nil
	}
	return []access{{actions: []string{"states:StartExecution"}, resources: arns}}
}

// statement renders one access; regions is the aws:RequestedRegion list.
func (a access) statement(regions []string) awsiam.PolicyStatement {
	conds := map[string]any{}
	for op, kv := range a.conditions {
		m := map[string]any{}
		for k, v := range kv {
			if arn, ok := v.(string); ok && strings.HasPrefix(arn, "arn:${") {
				v = awscdk.Fn_Sub(jsii.String(arn), nil) // an ARN pattern (above)
			}
			m[k] = v
		}
		conds[op] = m
	}
	if a.regional {
		eq, _ := conds["StringEquals"].(map[string]any)
		if eq == nil {
			eq = map[string]any{}
			conds["StringEquals"] = eq
		}
		eq["aws:RequestedRegion"] = regions
	}
	effect := awsiam.Effect_ALLOW
	if a.deny {
		effect = awsiam.Effect_DENY
	}
	props := &awsiam.PolicyStatementProps{
		Effect:    effect,
		Actions:   jsii.Strings(a.actions...),
		Resources: renderResources(a.resources),
	}
	if len(conds) > 0 {
		props.Conditions = &conds
	}
	return awsiam.NewPolicyStatement(props)
}

func renderResources(rs []string) *[]*string {
	out := make([]*string, len(rs))
	for i, r := range rs {
		if strings.HasPrefix(r, "arn:${") {
			out[i] = awscdk.Fn_Sub(jsii.String(r), nil)
		} else {
			out[i] = jsii.String(r)
		}
	}
	return &out
}

// nagID is how cdk-nag names a wildcard resource finding (it flattens
// Fn::Sub's ${X} to <X>).
func nagID(resource string) string {
	return "Resource::" + strings.NewReplacer("${", "<", "}", ">").Replace(resource)
}

// grantTo attaches accesses to a role and suppresses AwsSolutions-IAM5 for
// exactly the wildcard resources they name (see suppressWildcards).
func grantTo(role awsiam.Role, accesses []access, regions []string, extraWildcards map[string]string) {
	for _, a := range accesses {
		role.AddToPrincipalPolicy(a.statement(regions))
	}
	suppressWildcards(role, accesses, extraWildcards)
}

// suppressWildcards suppresses AwsSolutions-IAM5 on a role or policy for
// exactly the wildcard resources accesses name, each with its statement's
// reason. extraWildcards are "*" resources CDK adds itself (X-Ray, log
// delivery), with their reason.
func suppressWildcards(on constructs.IConstruct, accesses []access, extraWildcards map[string]string) {
	reasons := map[string][]string{} // nag finding -> reasons
	for _, a := range accesses {
		if a.deny {
			continue
		}
		for _, r := range a.resources {
			if !strings.Contains(r, "*") || strings.Contains(r, "${Token[") {
				continue
			}
			id := nagID(r)
			why := a.why
			if why == "" {
				panic(fmt.Sprintf("stack: %v on %s needs a reason for its wildcard", a.actions, r))
			}
			reasons[id] = appendUnique(reasons[id], strings.Join(a.actions, ", ")+": "+why)
		}
	}
	for _, actions := range slices.Sorted(maps.Keys(extraWildcards)) {
		reasons[nagID(anyResource)] = appendUnique(reasons[nagID(anyResource)], actions+": "+extraWildcards[actions])
	}
	ids := make([]string, 0, len(reasons))
	for id := range reasons {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var sup []*cdknag.NagPackSuppression
	for _, id := range ids {
		sup = append(sup, &cdknag.NagPackSuppression{
			Id:        jsii.String("AwsSolutions-IAM5"),
			Reason:    jsii.String(strings.Join(reasons[id], " | ")),
			AppliesTo: &[]any{id},
		})
	}
	if len(sup) > 0 {
		cdknag.NagSuppressions_AddResourceSuppressions(on, &sup, jsii.Bool(true))
	}
}

func appendUnique(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
