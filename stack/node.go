package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// NodeRole is the role every MEC node runs with, and its instance profile.
type NodeRole struct {
	constructs.Construct
	Role    awsiam.Role
	Profile awsiam.InstanceProfile
}

const ssmCorePolicy = "AmazonSSMManagedInstanceCore"

func newNodeRole(scope constructs.Construct, id string, regions []string) *NodeRole {
	c := constructs.NewConstruct(scope, jsii.String(id))
	role := awsiam.NewRole(c, jsii.String("Role"), &awsiam.RoleProps{
		AssumedBy:       awsiam.NewServicePrincipal(jsii.String("ec2.amazonaws.com"), nil),
		Description:     jsii.String("mecd MEC nodes: the SSM agent, plus the join token (read) and kubeconfig (write) under /mecd/"),
		ManagedPolicies: &[]awsiam.IManagedPolicy{awsiam.ManagedPolicy_FromAwsManagedPolicyName(jsii.String(ssmCorePolicy))},
	})
	grantTo(role, nodeAccess(), regions, nil)
	cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM4"),
		Reason: jsii.String("DESIGN section 7: nodes run the SSM agent, whose permissions AWS maintains in " + ssmCorePolicy +
			" (Run Command is the only way mecd reaches a node: no SSH); its ssm:GetParameter on \"*\" is denied for kubeconfigs by this role's own policy"),
		AppliesTo: &[]any{"Policy::arn:<AWS::Partition>:iam::aws:policy/" + ssmCorePolicy},
	}}, jsii.Bool(true))
	profile := awsiam.NewInstanceProfile(c, jsii.String("Profile"), &awsiam.InstanceProfileProps{Role: role})
	return &NodeRole{Construct: c, Role: role, Profile: profile}
}
