package iameval

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/nodepolicy"
)

// What a MEC's nodes may do in Parameter Store at each stage of its build,
// decided by AWS's evaluation logic over the node role's real policies:
// AmazonSSMManagedInstanceCore (which allows ssm:GetParameter on "*"), the
// inline policy and the permissions boundary.
func TestNodeRoleStages(t *testing.T) {
	ev, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	const (
		region  = "eu-central-1"
		account = "123456789012"
		id      = "mec-aaa"
	)
	node0, worker, other := "i-0000000000000000a", "i-0000000000000000b", "i-0000000000000000c"
	param := func(cluster, leaf string) string {
		return "arn:aws:ssm:" + region + ":" + account + ":parameter" + mec.ParamPrefix(cluster) + leaf
	}
	forming := nodepolicy.Phase{Stage: nodepolicy.Forming, Node0: node0, Joiners: []string{worker}}
	joined := nodepolicy.Phase{Stage: nodepolicy.Joined, Node0: node0, Joiners: []string{worker}}
	sealed := nodepolicy.Phase{Stage: nodepolicy.Sealed}
	cases := []struct {
		name      string
		phase     nodepolicy.Phase
		instance  string // "" : the role's credentials used off any instance
		action    string
		resource  string
		overwrite string
		want      string
	}{
		{"node 0 stores the token", forming, node0, "ssm:PutParameter", param(id, mec.TokenLeaf), "true", Allowed},
		{"a worker reads the token to join", forming, worker, "ssm:GetParameter", param(id, mec.TokenLeaf), "", Allowed},
		{"a worker cannot write the token", forming, worker, "ssm:PutParameter", param(id, mec.TokenLeaf), "true", ExplicitlyDenied},
		{"another instance with the role cannot read the token", forming, other, "ssm:GetParameter", param(id, mec.TokenLeaf), "", ExplicitlyDenied},
		{"credentials off the instance cannot read the token", forming, "", "ssm:GetParameter", param(id, mec.TokenLeaf), "", ExplicitlyDenied},
		{"node 0 stores the kubeconfig once every node joined", forming, node0, "ssm:PutParameter", param(id, mec.KubeconfigLeaf), "false", Allowed},
		{"node 0 cannot overwrite the kubeconfig while forming", forming, node0, "ssm:PutParameter", param(id, mec.KubeconfigLeaf), "true", ExplicitlyDenied},
		{"a worker cannot write the kubeconfig while forming", forming, worker, "ssm:PutParameter", param(id, mec.KubeconfigLeaf), "false", ExplicitlyDenied},
		{"no other cluster's token", forming, worker, "ssm:GetParameter", param("mec-bbb", mec.TokenLeaf), "", ExplicitlyDenied},
		{"no other parameter at all", forming, worker, "ssm:GetParameter", "arn:aws:ssm:" + region + ":" + account + ":parameter/prod/db-password", "", ExplicitlyDenied},
		{"no listing of the cluster's path", forming, worker, "ssm:GetParametersByPath", param(id, ""), "", ExplicitlyDenied},

		{"a joined worker cannot read the token", joined, worker, "ssm:GetParameter", param(id, mec.TokenLeaf), "", ExplicitlyDenied},
		{"node 0 stores the kubeconfig", joined, node0, "ssm:PutParameter", param(id, mec.KubeconfigLeaf), "false", Allowed},
		{"node 0 stores it once only", joined, node0, "ssm:PutParameter", param(id, mec.KubeconfigLeaf), "true", ExplicitlyDenied},
		{"a worker cannot write the kubeconfig", joined, worker, "ssm:PutParameter", param(id, mec.KubeconfigLeaf), "false", ExplicitlyDenied},
		{"no node reads the kubeconfig", joined, node0, "ssm:GetParameter", param(id, mec.KubeconfigLeaf), "", ExplicitlyDenied},
		{"a worker reads no kubeconfig", joined, worker, "ssm:GetParameter", param(id, mec.KubeconfigLeaf), "", ExplicitlyDenied},
		{"no history of the kubeconfig", joined, worker, "ssm:GetParameterHistory", param(id, mec.KubeconfigLeaf), "", ExplicitlyDenied},
		{"no deletes", joined, node0, "ssm:DeleteParameter", param(id, mec.KubeconfigLeaf), "", ExplicitlyDenied},

		{"ready: node 0 reads nothing", sealed, node0, "ssm:GetParameter", param(id, mec.KubeconfigLeaf), "", ExplicitlyDenied},
		{"ready: node 0 writes nothing", sealed, node0, "ssm:PutParameter", param(id, mec.KubeconfigLeaf), "false", ExplicitlyDenied},
		{"ready: a worker reads no token", sealed, worker, "ssm:GetParameter", param(id, mec.TokenLeaf), "", ExplicitlyDenied},
		{"ready: the SSM agent still works", sealed, worker, "ssm:UpdateInstanceInformation", "arn:aws:ec2:" + region + ":" + account + ":instance/" + worker, "", Allowed},
		{"nodes never call IAM", sealed, node0, "iam:PassRole", "arn:aws:iam::" + account + ":role/mecd/mecd-node-" + id, "", ImplicitlyDenied},
		{"nodes never launch instances", forming, node0, "ec2:RunInstances", "arn:aws:ec2:" + region + ":" + account + ":instance/*", "", ImplicitlyDenied},
		{"nodes never start workflows", forming, node0, "states:StartExecution", "arn:aws:states:" + region + ":" + account + ":stateMachine:mecd-provision", "", ImplicitlyDenied},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := Principal{
				Identity: []Policy{
					{Name: "AmazonSSMManagedInstanceCore", Document: json.RawMessage(nodepolicy.AgentCore())},
					{Name: nodepolicy.InlineName, Document: json.RawMessage(nodepolicy.Inline(id, region, tc.phase))},
				},
				Boundary: []Policy{{Name: "mecd-node-boundary", Document: json.RawMessage(nodepolicy.Boundary("aws"))}},
			}
			r := Request{Principal: "arn:aws:sts::" + account + ":assumed-role/mecd-node-" + id + "/" + tc.instance,
				Action: tc.action, Resource: tc.resource, Account: account, Context: map[string][]string{}}
			if tc.instance != "" {
				r.Context["ec2:SourceInstanceARN"] = []string{"arn:aws:ec2:" + region + ":" + account + ":instance/" + tc.instance}
			}
			if tc.overwrite != "" {
				r.Context["ssm:Overwrite"] = []string{tc.overwrite}
			}
			got, err := ev.Evaluate(context.Background(), p, r)
			if err != nil {
				t.Fatal(err)
			}
			if got.Decision != tc.want {
				t.Fatalf("%s %s by %q in %s: %s, want %s (ignored keys %v)", tc.action, tc.resource, tc.instance, tc.phase.Stage, got.Decision, tc.want, got.Ignored)
			}
		})
	}
}
