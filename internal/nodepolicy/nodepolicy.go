package nodepolicy

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mecd/mecd/internal/mec"
)

// InlineName is the name of the node role's inline policy.
const InlineName = "own-cluster-parameters"

// Trust lets EC2 (the instance profile) assume a node role.
const Trust = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`

// Stage is how far a MEC's build has come, as far as its nodes' Parameter
// Store rights go. Every node of a MEC shares one role; the statements tell
// its instances apart by ec2:SourceInstanceARN, which AWS puts in the request
// context of every call signed with EC2 instance role credentials ("an AWS
// global condition key", EC2 User Guide, Identity-based policies for Amazon
// EC2). The attack all stages stop: any pod with hostNetwork on a worker
// reaches IMDS and so holds the role's credentials (hop limit 1 does not stop
// it). With them it could read the cluster-admin kubeconfig, overwrite it with
// one pointing elsewhere, or read the join token and join a machine of its own
// as a control-plane node: all of which a worker joined with --worker
// otherwise cannot do.
type Stage int

const (
	// Sealed: no node may touch its cluster's parameters. A role is created
	// sealed (before any instance exists) and sealed again once the MEC is
	// READY, when the nodes have nothing left to do in Parameter Store.
	Sealed Stage = iota
	// Forming (install and joins): node 0 mints the join token and stores it;
	// only the joining nodes may read it. No node writes the kubeconfig.
	Forming
	// Joined (finalize): every node joined, so nobody reads or writes the
	// token; node 0 alone may store the kubeconfig, and only once.
	Joined
)

func (s Stage) String() string {
	switch s {
	case Forming:
		return "forming"
	case Joined:
		return "joined"
	}
	return "sealed"
}

// Phase is a stage with the instances it names.
type Phase struct {
	Stage Stage
	// Node0 and Joiners are instance ids (Forming and Joined).
	Node0   string
	Joiners []string
}

// readActions are every way to read a parameter's value.
var readActions = []string{"ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:GetParameterHistory"}

// changeActions change a parameter other than by PutParameter: no node needs them.
var changeActions = []string{"ssm:DeleteParameter", "ssm:DeleteParameters", "ssm:LabelParameterVersion", "ssm:UnlabelParameterVersion",
	"ssm:AddTagsToResource", "ssm:RemoveTagsFromResource"}

// allActions are every Parameter Store action a node's policies could grant.
var allActions = append(append(append([]string(nil), readActions...), "ssm:PutParameter"), changeActions...)

// Inline is the inline policy of a MEC's node role in phase p. Denies do the
// work: AWS's AmazonSSMManagedInstanceCore, which the SSM agent needs, allows
// ssm:GetParameter(s) on every parameter, and an explicit Deny is the only
// thing that overrides an Allow.
func Inline(clusterID, region string, p Phase) string {
	own := fmt.Sprintf("arn:%s:ssm:%s:*:parameter%s", Partition(region), region, mec.ParamPrefix(clusterID))
	token, kubeconfig := own+mec.TokenLeaf, own+mec.KubeconfigLeaf
	instances := func(ids ...string) []string {
		arns := make([]string, 0, len(ids))
		for _, id := range ids {
			// The account is "*": instance ids are unique, and the
			// functions that write this policy need not know the account.
			arns = append(arns, fmt.Sprintf("arn:%s:ec2:%s:*:instance/%s", Partition(region), region, id))
		}
		return arns
	}
	onlyFrom := func(ids ...string) map[string]any {
		// ArnNotLike is true when the key is absent (credentials that did
		// not come from an instance profile): the deny holds there too.
		// Instance credentials carry their instance's ARN wherever they
		// are used, so a worker's, taken elsewhere, are still the worker's.
		return map[string]any{"ArnNotLike": map[string]any{"ec2:SourceInstanceARN": instances(ids...)}}
	}
	st := []map[string]any{
		{"Sid": "NoOtherClusters", "Effect": "Deny", "Action": allActions, "NotResource": []string{own + "*"}},
		// No node ever needs the cluster-admin kubeconfig back (node 0 has
		// its own credentials); nor a listing, a history or a batch read.
		{"Sid": "NeverReadKubeconfig", "Effect": "Deny", "Action": readActions, "Resource": kubeconfig},
		{"Sid": "OnlyGetParameter", "Effect": "Deny", "Action": readActions[1:], "Resource": own + "*"},
		{"Sid": "NoDeletes", "Effect": "Deny", "Action": changeActions, "Resource": own + "*"},
	}
	// Node 0 stores the kubeconfig, once: in the install command, which
	// finishes the build once every node joined (Forming), or in the
	// finalize step after a join was retried (Joined).
	kubeconfigOnce := []map[string]any{
		{"Sid": "Node0StoresKubeconfig", "Effect": "Allow", "Action": "ssm:PutParameter", "Resource": kubeconfig},
		{"Sid": "OnlyNode0WritesKubeconfig", "Effect": "Deny", "Action": "ssm:PutParameter", "Resource": kubeconfig, "Condition": onlyFrom(p.Node0)},
		// Once: PutParameter's ssm:Overwrite key (Service Authorization
		// Reference, AWS Systems Manager) is "true" only on a request
		// that asks to replace an existing value.
		{"Sid": "KubeconfigOnce", "Effect": "Deny", "Action": "ssm:PutParameter", "Resource": kubeconfig,
			"Condition": map[string]any{"StringEquals": map[string]any{"ssm:Overwrite": "true"}}},
	}
	switch p.Stage {
	case Forming:
		st = append(st,
			map[string]any{"Sid": "Node0StoresToken", "Effect": "Allow", "Action": "ssm:PutParameter", "Resource": token},
			map[string]any{"Sid": "OnlyNode0WritesToken", "Effect": "Deny", "Action": "ssm:PutParameter", "Resource": token, "Condition": onlyFrom(p.Node0)},
			map[string]any{"Sid": "OnlyJoinersReadToken", "Effect": "Deny", "Action": "ssm:GetParameter", "Resource": token, "Condition": onlyFrom(p.Joiners...)},
		)
		st = append(st, kubeconfigOnce...)
	case Joined:
		st = append(st, kubeconfigOnce...)
		st = append(st,
			map[string]any{"Sid": "TokenSpent", "Effect": "Deny", "Action": []string{"ssm:GetParameter", "ssm:PutParameter"}, "Resource": token},
		)
	default:
		st = append(st, map[string]any{"Sid": "Sealed", "Effect": "Deny", "Action": allActions, "Resource": own + "*"})
	}
	b, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": st}) // maps of strings and slices always marshal
	return string(b)
}

// Unclaimed is the inline policy of a spare node role (mec.SpareRolePrefix)
// until a MEC takes it and Inline replaces it: no parameter at all. No
// instance runs with a spare before then, but AmazonSSMManagedInstanceCore
// alone would let it read every MEC's.
func Unclaimed() string {
	b, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []map[string]any{
		{"Sid": "Unclaimed", "Effect": "Deny", "Action": allActions, "Resource": "*"},
	}}) // maps of strings and slices always marshal
	return string(b)
}

// Partition is the ARN partition of a region.
func Partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// AgentActions are the actions of AWS's managed policy
// AmazonSSMManagedInstanceCore, all on "*" (AWS Managed Policy Reference):
// what the SSM agent on a node calls. Run Command is the only way mecd
// reaches a node.
var AgentActions = []string{
	"ssm:DescribeAssociation", "ssm:GetDeployablePatchSnapshotForInstance", "ssm:GetDocument", "ssm:DescribeDocument",
	"ssm:GetManifest", "ssm:GetParameter", "ssm:GetParameters", "ssm:ListAssociations", "ssm:ListInstanceAssociations",
	"ssm:PutInventory", "ssm:PutComplianceItems", "ssm:PutConfigurePackageResult", "ssm:UpdateAssociationStatus",
	"ssm:UpdateInstanceAssociationStatus", "ssm:UpdateInstanceInformation",
	"ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
	"ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage", "ec2messages:GetEndpoint",
	"ec2messages:GetMessages", "ec2messages:SendReply",
}

// AgentCore is AmazonSSMManagedInstanceCore's document, for whoever stands in
// for AWS's copy (the local runtime, the tests).
func AgentCore() string {
	b, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []map[string]any{
		{"Effect": "Allow", "Action": AgentActions, "Resource": "*"},
	}})
	return string(b)
}

// Boundary is the node roles' permissions boundary, as the stack writes it
// (stack.newNodeBoundary): the agent's actions, and writing parameters
// under /mecd/.
func Boundary(partition string) string {
	b, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []map[string]any{
		{"Effect": "Allow", "Action": AgentActions, "Resource": "*"},
		{"Effect": "Allow", "Action": "ssm:PutParameter", "Resource": "arn:" + partition + ":ssm:*:*:parameter" + mec.ParamRoot + "*"},
	}})
	return string(b)
}
