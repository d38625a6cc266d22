package steps

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/nodepolicy"
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
	// A spare node role takes its MEC's tags when the MEC takes it.
	TagRole(ctx context.Context, in *iam.TagRoleInput, opts ...func(*iam.Options)) (*iam.TagRoleOutput, error)
	// The reaper finds node roles and profiles by their path.
	ListRoles(ctx context.Context, in *iam.ListRolesInput, opts ...func(*iam.Options)) (*iam.ListRolesOutput, error)
	ListInstanceProfiles(ctx context.Context, in *iam.ListInstanceProfilesInput, opts ...func(*iam.Options)) (*iam.ListInstanceProfilesOutput, error)
}

var _ IAMAPI = (*iam.Client)(nil)

// ensureNodeRole creates (or finds) the MEC's own node role and instance
// profile and returns the profile's ARN. Every call is idempotent.
func (s *Steps) ensureNodeRole(ctx context.Context, m *mec.MEC) (string, error) {
	// Sealed until the install step names the instances.
	return s.makeNodeRole(ctx, mec.NodeRoleName(m.ID), "mecd MEC "+m.ID+" nodes: the SSM agent and this cluster's parameters only",
		iamTags(m.Tags()), nodepolicy.Inline(m.ID, m.Region, nodepolicy.Phase{Stage: nodepolicy.Sealed}))
}

// makeNodeRole creates (or finds) node role name under the node boundary,
// with the SSM agent's policy and inline, and its instance profile, and
// returns the profile's ARN. Every call is idempotent.
func (s *Steps) makeNodeRole(ctx context.Context, name, description string, tags []iamtypes.Tag, inline string) (string, error) {
	_, err := s.IAM.CreateRole(ctx, &iam.CreateRoleInput{
		RoleName:                 aws.String(name),
		Path:                     aws.String(mec.NodeRolePath),
		AssumeRolePolicyDocument: aws.String(nodepolicy.Trust),
		PermissionsBoundary:      nonEmpty(s.Env.NodeBoundaryArn),
		Description:              aws.String(description),
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
	if _, err := s.IAM.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(nodepolicy.InlineName),
		PolicyDocument: aws.String(inline)}); err != nil {
		return "", fmt.Errorf("node role %s: inline policy: %w", name, err)
	}
	var arn string
	out, err := s.IAM.CreateInstanceProfile(ctx, &iam.CreateInstanceProfileInput{InstanceProfileName: aws.String(name), Path: aws.String(mec.NodeRolePath), Tags: tags})
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

// iamTags are tags as IAM takes them.
func iamTags(tags []mec.Tag) []iamtypes.Tag {
	out := make([]iamtypes.Tag, 0, len(tags))
	for _, t := range tags {
		out = append(out, iamtypes.Tag{Key: aws.String(t.Key), Value: aws.String(t.Value)})
	}
	return out
}

// setNodePhase rewrites the node role's inline policy for phase p (see
// nodepolicy.Stage): the install step opens the join token to the nodes
// that need it, finalize lets node 0 store the kubeconfig once, READY seals
// it. IAM applies a change within seconds (eventually consistent), and the
// script sent right after may be first: the node scripts retry an
// AccessDeniedException for a while (lib.sh, ssm).
func (s *Steps) setNodePhase(ctx context.Context, m *mec.MEC, p nodepolicy.Phase) error {
	if _, err := s.IAM.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(m.RoleName()), PolicyName: aws.String(nodepolicy.InlineName),
		PolicyDocument: aws.String(nodepolicy.Inline(m.ID, m.Region, p))}); err != nil {
		return fmt.Errorf("node role %s: %w", p.Stage, err)
	}
	return nil
}

// nodePhase is stage with m's node 0 and joiners.
func nodePhase(m *mec.MEC, stage nodepolicy.Stage) nodepolicy.Phase {
	p := nodepolicy.Phase{Stage: stage}
	for _, n := range m.Nodes {
		if n.Index == 0 {
			p.Node0 = n.InstanceID
		} else {
			p.Joiners = append(p.Joiners, n.InstanceID)
		}
	}
	return p
}

// deleteNodeRole removes the MEC's node role and instance profile, and any
// spare it took that its record does not name; absent pieces are fine (a
// rollback before they existed, a repeated teardown).
func (s *Steps) deleteNodeRole(ctx context.Context, m *mec.MEC) error {
	listed, err := s.listNodeRoles(ctx)
	if err != nil {
		return err
	}
	if err := s.deleteRole(ctx, m.ID, m.RoleName(), listed); err != nil {
		return err
	}
	return s.deleteClaimedSpares(ctx, m, listed)
}

// nodeRoles is one listing of the node roles and instance profiles.
type nodeRoles struct{ roles, profiles []string }

func (s *Steps) listNodeRoles(ctx context.Context) (nodeRoles, error) {
	roles, profiles, err := NodeRoleNames(ctx, s.IAM)
	return nodeRoles{roles, profiles}, err
}

// deleteRole removes node role roleName and its instance profile (of MEC
// clusterID, "" for a spare no MEC took), whichever of them exists. IAM
// authorizes a call on a role by its ARN, path included, which it cannot
// know for a role that does not exist: a delete of one already gone is
// refused (AccessDenied), not answered NoSuchEntity, since the stack allows
// node roles by path. So only what listed shows is deleted (each name once
// per listing), and a repeated cleanup calls IAM for nothing it deleted
// before.
func (s *Steps) deleteRole(ctx context.Context, clusterID, roleName string, listed nodeRoles) error {
	hasRole, hasProfile := slices.Contains(listed.roles, roleName), slices.Contains(listed.profiles, roleName)
	name := aws.String(roleName)
	steps := []struct {
		what string
		on   bool
		call func() error
	}{
		{"remove role from instance profile", hasProfile && hasRole, func() error {
			_, err := s.IAM.RemoveRoleFromInstanceProfile(ctx, &iam.RemoveRoleFromInstanceProfileInput{InstanceProfileName: name, RoleName: name})
			return err
		}},
		{"delete instance profile", hasProfile, func() error {
			_, err := s.IAM.DeleteInstanceProfile(ctx, &iam.DeleteInstanceProfileInput{InstanceProfileName: name})
			return err
		}},
		{"delete role policy", hasRole, func() error {
			_, err := s.IAM.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: name, PolicyName: aws.String(nodepolicy.InlineName)})
			return err
		}},
		{"detach role policy", hasRole && s.Env.NodeCorePolicyArn != "", func() error {
			_, err := s.IAM.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: name, PolicyArn: aws.String(s.Env.NodeCorePolicyArn)})
			return err
		}},
		{"delete role", hasRole, func() error {
			_, err := s.IAM.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: name})
			return err
		}},
	}
	deleted := false
	for _, st := range steps {
		if !st.on {
			continue
		}
		err := st.call()
		switch {
		case err == nil:
			deleted = true
		case apiCode(err) == "NoSuchEntity": // the inline policy, or the role not in the profile
		case apiCode(err) == "DeleteConflict":
			return stepErr("DependencyViolation", "node role %s: %s: still in use", *name, st.what)
		default:
			return fmt.Errorf("%s: %w", st.what, err)
		}
	}
	if deleted {
		s.Log.InfoContext(ctx, "node role and instance profile deleted", "clusterId", clusterID, "role", *name)
	}
	return nil
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
