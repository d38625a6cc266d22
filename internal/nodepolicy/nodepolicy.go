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

// Inline is the inline policy of a MEC's node role: read its own join
// token, write its own kubeconfig, and nothing else in Parameter Store. The
// Deny matters: the SSM agent's managed policy allows ssm:GetParameter(s) on
// every parameter.
func Inline(clusterID, region string) string {
	own := fmt.Sprintf("arn:%s:ssm:%s:*:parameter%s", Partition(region), region, mec.ParamPrefix(clusterID))
	doc := map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{
			{"Sid": "ReadJoinToken", "Effect": "Allow", "Action": "ssm:GetParameter", "Resource": own + mec.TokenLeaf},
			{"Sid": "WriteKubeconfig", "Effect": "Allow", "Action": "ssm:PutParameter", "Resource": own + mec.KubeconfigLeaf},
			{"Sid": "NoOtherParameters", "Effect": "Deny",
				"Action":      []string{"ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:GetParameterHistory", "ssm:PutParameter", "ssm:DeleteParameter", "ssm:DeleteParameters"},
				"NotResource": []string{own + "*"}},
		},
	}
	b, _ := json.Marshal(doc) // a map of strings and slices always marshals
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
