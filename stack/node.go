package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/nodepolicy"
)

// Node roles. Each MEC's nodes run with a role and instance profile of their
// own, which launch-nodes creates (internal/steps ensureNodeRole) and
// cleanup deletes: the path and name prefix below are mec.NodeRolePath
// and mec.NodeRoleName's (the stack tests check they agree). A node
// role carries the SSM agent's managed policy plus an inline policy limited
// to its own cluster's parameters, and is created under the permissions
// boundary built here, so that whatever launch-nodes writes into a node role
// can never exceed the agent's actions and writing parameters under /mecd/.
const (
	ssmCorePolicy = "AmazonSSMManagedInstanceCore"
	// arnCorePolicy is the AWS-managed policy launch-nodes attaches
	// (NODE_CORE_POLICY_ARN) and the only one it may attach.
	arnCorePolicy = "arn:${AWS::Partition}:iam::aws:policy/" + ssmCorePolicy
	// The node roles and instance profiles: <path>mecd-node-<clusterId>.
	arnNodeRoles    = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role" + mec.NodeRolePath + mec.NodeRolePrefix + "*"
	arnNodeProfiles = "arn:${AWS::Partition}:iam::${AWS::AccountId}:instance-profile" + mec.NodeRolePath + mec.NodeRolePrefix + "*"
)

// ssmAgentActions are the actions of AmazonSSMManagedInstanceCore: what the
// SSM agent on a node calls (Run Command is the only way mecd reaches a node).
var ssmAgentActions = nodepolicy.AgentActions

// nodeBoundaryAccess is the permissions boundary of every node role: the
// most a node may ever do. It grants nothing by itself; a node's effective
// permissions are what both its own policies and this allow.
func nodeBoundaryAccess() []access {
	return []access{
		{actions: ssmAgentActions, resources: []string{anyResource},
			why: "the SSM agent's actions, exactly those of AWS's " + ssmCorePolicy + ", which grants them on \"*\" (most accept no resource); " +
				"as a permissions boundary this grants nothing, it caps node roles at the agent, and each node role's own policy denies every parameter outside its cluster's"},
		{actions: []string{"ssm:PutParameter"}, resources: []string{arnParams},
			why: "node 0 writes its cluster's kubeconfig, /mecd/<clusterId>/kubeconfig; node roles are per cluster but this boundary is shared, " +
				"so it caps at /mecd/* and each node role's own policy narrows it to its cluster (internal/nodepolicy.Inline)"},
	}
}

// newNodeBoundary creates the customer-managed policy launch-nodes must set
// as the permissions boundary of every node role (NODE_BOUNDARY_ARN).
func newNodeBoundary(scope constructs.Construct, id string) awsiam.ManagedPolicy {
	accesses := nodeBoundaryAccess()
	policy := awsiam.NewManagedPolicy(scope, jsii.String(id), &awsiam.ManagedPolicyProps{
		Description: jsii.String("mecd: permissions boundary of every MEC node role (the SSM agent, and writing parameters under /mecd/)"),
		Path:        jsii.String(mec.NodeRolePath),
	})
	for _, a := range accesses {
		policy.AddStatements(a.statement(nil))
	}
	suppressWildcards(policy, accesses, nil)
	return policy
}
