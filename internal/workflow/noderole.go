package workflow

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/mecd/mecd/internal/record"
)

// IAMAPI is the part of IAM the steps call: each MEC's nodes get a role of
// their own, so a node can reach its own cluster's parameters and no other's
// (IAM cannot tie one shared role to the calling instance's cluster tag).
type IAMAPI interface {
	CreateRole(ctx context.Context, in *iam.CreateRoleInput, opts ...func(*iam.Options)) (*iam.CreateRoleOutput, error)
	AttachRolePolicy(ctx context.Context, in *iam.AttachRolePolicyInput, opts ...func(*iam.Options)) (*iam.AttachRolePolicyOutput, error)
	PutRolePolicy(ctx context.Context, in *iam.PutRolePolicyInput, opts ...func(*iam.Options)) (*iam.PutRolePolicyOutput, error)
	CreateInstanceProfile(ctx context.Context, in *iam.CreateInstanceProfileInput, opts ...func(*iam.Options)) (*iam.CreateInstanceProfileOutput, error)
	GetInstanceProfile(ctx context.Context, in *iam.GetInstanceProfileInput, opts ...func(*iam.Options)) (*iam.GetInstanceProfileOutput, error)
	AddRoleToInstanceProfile(ctx context.Context, in *iam.AddRoleToInstanceProfileInput, opts ...func(*iam.Options)) (*iam.AddRoleToInstanceProfileOutput, error)
	RemoveRoleFromInstanceProfile(ctx context.Context, in *iam.RemoveRoleFromInstanceProfileInput, opts ...func(*iam.Options)) (*iam.RemoveRoleFromInstanceProfileOutput, error)
	DeleteInstanceProfile(ctx context.Context, in *iam.DeleteInstanceProfileInput, opts ...func(*iam.Options)) (*iam.DeleteInstanceProfileOutput, error)
	DeleteRolePolicy(ctx context.Context, in *iam.DeleteRolePolicyInput, opts ...func(*iam.Options)) (*iam.DeleteRolePolicyOutput, error)
	DetachRolePolicy(ctx context.Context, in *iam.DetachRolePolicyInput, opts ...func(*iam.Options)) (*iam.DetachRolePolicyOutput, error)
	DeleteRole(ctx context.Context, in *iam.DeleteRoleInput, opts ...func(*iam.Options)) (*iam.DeleteRoleOutput, error)
}

var _ IAMAPI = (*iam.Client)(nil)

// NodeRolePath holds every node role and instance profile (IAM policies of
// the functions that manage them are scoped to it).
const NodeRolePath = "/mecd/"

// NodeRoleName names a MEC's node role and instance profile.
func NodeRoleName(clusterID string) string { return "mecd-node-" + clusterID }

// nodePolicyName is the inline policy scoping a node role to its cluster.
const nodePolicyName = "own-cluster-parameters"

const ec2Trust = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`

// NodePolicy is the inline policy of a MEC's node role: read its own join
// token, write its own kubeconfig, and nothing else in Parameter Store. The
// Deny matters: the SSM agent's managed policy allows ssm:GetParameter(s) on
// every parameter.
func NodePolicy(clusterID, region string) string {
	own := fmt.Sprintf("arn:%s:ssm:%s:*:parameter%s", Partition(region), region, paramPrefix(clusterID))
	doc := map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{
			{"Sid": "ReadJoinToken", "Effect": "Allow", "Action": "ssm:GetParameter", "Resource": own + "join-token"},
			{"Sid": "WriteKubeconfig", "Effect": "Allow", "Action": "ssm:PutParameter", "Resource": own + "kubeconfig"},
			{"Sid": "NoOtherParameters", "Effect": "Deny",
				"Action":      []string{"ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:GetParameterHistory", "ssm:PutParameter", "ssm:DeleteParameter", "ssm:DeleteParameters"},
				"NotResource": []string{own + "*"}},
		},
	}
	b, _ := json.Marshal(doc) // a map of strings and slices always marshals
	return string(b)
}

// ensureNodeRole creates (or finds) the MEC's node role and instance
// profile and returns the profile's ARN. Every call is idempotent.
func (s *Steps) ensureNodeRole(ctx context.Context, m *record.MEC) (string, error) {
	name := NodeRoleName(m.ID)
	var tags []iamtypes.Tag
	for _, t := range s.tags(m) {
		tags = append(tags, iamtypes.Tag{Key: t.Key, Value: t.Value})
	}
	_, err := s.IAM.CreateRole(ctx, &iam.CreateRoleInput{
		RoleName:                 aws.String(name),
		Path:                     aws.String(NodeRolePath),
		AssumeRolePolicyDocument: aws.String(ec2Trust),
		PermissionsBoundary:      nonEmpty(s.Env.NodeBoundaryArn),
		Description:              aws.String("mecd MEC " + m.ID + " nodes: the SSM agent and this cluster's parameters only"),
		Tags:                     tags,
	})
	if err != nil && apiCode(err) != "EntityAlreadyExists" {
		return "", fmt.Errorf("create node role: %w", err)
	}
	if s.Env.NodeCorePolicyArn != "" {
		if _, err := s.IAM.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(name), PolicyArn: aws.String(s.Env.NodeCorePolicyArn)}); err != nil {
			return "", fmt.Errorf("attach the SSM agent policy: %w", err)
		}
	}
	if _, err := s.IAM.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(nodePolicyName),
		PolicyDocument: aws.String(NodePolicy(m.ID, m.Region))}); err != nil {
		return "", fmt.Errorf("scope the node role: %w", err)
	}
	var arn string
	out, err := s.IAM.CreateInstanceProfile(ctx, &iam.CreateInstanceProfileInput{InstanceProfileName: aws.String(name), Path: aws.String(NodeRolePath), Tags: tags})
	switch {
	case err == nil:
		arn = aws.ToString(out.InstanceProfile.Arn)
	case apiCode(err) == "EntityAlreadyExists":
		got, gerr := s.IAM.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(name)})
		if gerr != nil {
			return "", fmt.Errorf("get instance profile: %w", gerr)
		}
		arn = aws.ToString(got.InstanceProfile.Arn)
	default:
		return "", fmt.Errorf("create instance profile: %w", err)
	}
	if _, err := s.IAM.AddRoleToInstanceProfile(ctx, &iam.AddRoleToInstanceProfileInput{InstanceProfileName: aws.String(name), RoleName: aws.String(name)}); err != nil &&
		apiCode(err) != "LimitExceeded" { // an instance profile holds one role: already added
		return "", fmt.Errorf("add role to instance profile: %w", err)
	}
	return arn, nil
}

// deleteNodeRole removes the MEC's node role and instance profile; absent
// pieces are fine (a rollback before they existed, a repeated teardown).
func (s *Steps) deleteNodeRole(ctx context.Context, m *record.MEC) error {
	name := aws.String(NodeRoleName(m.ID))
	steps := []struct {
		what string
		call func() error
	}{
		{"remove role from instance profile", func() error {
			_, err := s.IAM.RemoveRoleFromInstanceProfile(ctx, &iam.RemoveRoleFromInstanceProfileInput{InstanceProfileName: name, RoleName: name})
			return err
		}},
		{"delete instance profile", func() error {
			_, err := s.IAM.DeleteInstanceProfile(ctx, &iam.DeleteInstanceProfileInput{InstanceProfileName: name})
			return err
		}},
		{"delete role policy", func() error {
			_, err := s.IAM.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: name, PolicyName: aws.String(nodePolicyName)})
			return err
		}},
		{"detach role policy", func() error {
			if s.Env.NodeCorePolicyArn == "" {
				return nil
			}
			_, err := s.IAM.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: name, PolicyArn: aws.String(s.Env.NodeCorePolicyArn)})
			return err
		}},
		{"delete role", func() error {
			_, err := s.IAM.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: name})
			return err
		}},
	}
	for _, st := range steps {
		if err := st.call(); err != nil && apiCode(err) != "NoSuchEntity" {
			if apiCode(err) == "DeleteConflict" {
				return stepErr("DependencyViolation", "node role %s: %s: still in use", *name, st.what)
			}
			return fmt.Errorf("%s: %w", st.what, err)
		}
	}
	return nil
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

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

// isProfilePropagation tells the one RunInstances error a fresh instance
// profile causes until IAM has propagated it: retried, not fatal.
func isProfilePropagation(err error) bool {
	return apiCode(err) == "InvalidParameterValue" && strings.Contains(strings.ToLower(err.Error()), "instance profile")
}
