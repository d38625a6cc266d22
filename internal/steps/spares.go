package steps

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/nodepolicy"
	"github.com/mecd/mecd/internal/store"
)

// SpareStore keeps the spare node roles: made ahead of any MEC, so that a
// launch does not wait for IAM to propagate a new instance profile to EC2
// (RunInstances refuses one for about 10 s, 20 s in the slow tail; IAM User
// Guide, "Changes that I make are not always immediately visible").
type SpareStore interface {
	Spares(ctx context.Context) ([]store.Spare, error)
	PutSpare(ctx context.Context, name string) error
	SpareReady(ctx context.Context, name, profileArn string) error
	ClaimSpare(ctx context.Context, name, clusterID string) (bool, error)
	DeleteSpare(ctx context.Context, name string) error
}

var _ SpareStore = (*store.Store)(nil)

// maxSparesPerLaunch bounds the spares one launch makes, so a launch after
// a long idle spell (or a raised SPARE_NODE_ROLES) stays short.
const maxSparesPerLaunch = 2

// claimSpare gives m a spare node role if one is ready and free, fitted to
// m (its sealed inline policy, its tags), and returns the role's name and
// its profile's ARN; "" when there is none (m then makes its own). A spare
// an earlier, crashed invocation took for m is m's again.
func (s *Steps) claimSpare(ctx context.Context, m *mec.MEC) (string, string, error) {
	if s.Spares == nil {
		return "", "", nil
	}
	spares, err := s.Spares.Spares(ctx)
	if err != nil {
		// Spares only save time: the MEC makes its own role.
		s.Log.WarnContext(ctx, "list spare node roles", "clusterId", m.ID, "error", err)
		return "", "", nil
	}
	// The oldest first: IAM has propagated it longest.
	slices.SortFunc(spares, func(a, b store.Spare) int { return a.CreatedAt.Compare(b.CreatedAt) })
	var took *store.Spare
	for i, sp := range spares {
		if sp.ClusterID == m.ID && sp.ProfileArn != "" {
			took = &spares[i]
			break
		}
	}
	for i := 0; took == nil && i < len(spares); i++ {
		sp := spares[i]
		if sp.ClusterID != "" || sp.ProfileArn == "" {
			continue
		}
		// The index is eventually consistent: the conditional write decides.
		ok, err := s.Spares.ClaimSpare(ctx, sp.Name, m.ID)
		if err != nil {
			s.Log.WarnContext(ctx, "take a spare node role", "clusterId", m.ID, "role", sp.Name, "error", err)
			return "", "", nil
		}
		if ok {
			took = &spares[i]
		}
	}
	if took == nil {
		return "", "", nil
	}
	// On the record at once: a cleanup after a failure below deletes this
	// role, not a MEC-named one that was never made.
	if _, err := s.Store.Update(ctx, m.ID, func(r *mec.MEC) error { r.NodeRole = took.Name; return nil }); err != nil {
		return "", "", err
	}
	fitted := *m
	fitted.NodeRole = took.Name
	// The spare denied every parameter; now m's own, sealed until the
	// install names the instances. IAM applies it within seconds, long
	// before a node reaches for a parameter (after its MicroK8s install).
	if err := s.setNodePhase(ctx, &fitted, nodepolicy.Phase{Stage: nodepolicy.Sealed}); err != nil {
		return "", "", err
	}
	// The role shows whose it is; its instance profile keeps the spare's
	// mecd:managed tag (nothing reads a profile's tags: the spare's item
	// and the record name the MEC).
	if _, err := s.IAM.TagRole(ctx, &iam.TagRoleInput{RoleName: aws.String(took.Name), Tags: iamTags(m.Tags())}); err != nil {
		return "", "", fmt.Errorf("tag spare node role %s: %w", took.Name, err)
	}
	s.Log.InfoContext(ctx, "took a spare node role", "clusterId", m.ID, "role", took.Name, "madeAt", took.CreatedAt)
	return took.Name, took.ProfileArn, nil
}

// replenishSpares makes spare node roles until Env.SpareNodeRoles are free
// (at most maxSparesPerLaunch at a time). It runs after a launch, off the
// path of the MEC that launched; a failure is logged, not the launch's.
// Launches running at once may each make one: the pool then holds a few
// more, which the next MECs take.
func (s *Steps) replenishSpares(ctx context.Context) {
	if s.Spares == nil || s.Env.SpareNodeRoles <= 0 {
		return
	}
	spares, err := s.Spares.Spares(ctx)
	if err != nil {
		s.Log.WarnContext(ctx, "list spare node roles", "error", err)
		return
	}
	free := 0
	for _, sp := range spares {
		if sp.ClusterID == "" {
			free++
		}
	}
	for made := 0; free < s.Env.SpareNodeRoles && made < maxSparesPerLaunch; made++ {
		if err := s.makeSpare(ctx); err != nil {
			s.Log.WarnContext(ctx, "make a spare node role", "error", err)
			return
		}
		free++
	}
}

// makeSpare makes one spare: its item first, so a role under the spare
// prefix without one is known to be left over (the reaper deletes it).
func (s *Steps) makeSpare(ctx context.Context) error {
	name := mec.SpareRoleName(s.now())
	if err := s.Spares.PutSpare(ctx, name); err != nil {
		return err
	}
	arn, err := s.makeNodeRole(ctx, name, "mecd spare node role: no MEC's parameters until a MEC takes it",
		iamTags([]mec.Tag{{Key: mec.TagManaged, Value: "true"}}), nodepolicy.Unclaimed())
	if err != nil {
		return err
	}
	if err := s.Spares.SpareReady(ctx, name, arn); err != nil {
		return err
	}
	s.Log.InfoContext(ctx, "spare node role made", "role", name)
	return nil
}

// spareGrace is how long a spare may stay half made (its item without a
// profile, or its role without an item) before the reaper takes it for
// left over: far longer than makeSpare takes.
const spareGrace = 10 * time.Minute

// deleteClaimedSpares deletes the spares MEC m took that its record does
// not name (a launch that crashed between the claim and the record), and
// forgets every spare it took.
func (s *Steps) deleteClaimedSpares(ctx context.Context, m *mec.MEC, listed nodeRoles) error {
	return s.forgetSpares(ctx, m.ID, func(name string) error {
		if name == m.NodeRole {
			return nil // deleted as the MEC's own
		}
		return s.deleteRole(ctx, m.ID, name, listed)
	})
}

// forgetSpares deletes the items of the spares cluster id took, each after
// del deleted its role.
func (s *Steps) forgetSpares(ctx context.Context, id string, del func(name string) error) error {
	if s.Spares == nil {
		return nil
	}
	spares, err := s.Spares.Spares(ctx)
	if err != nil {
		return err
	}
	for _, sp := range spares {
		if sp.ClusterID != id {
			continue
		}
		if err := del(sp.Name); err != nil {
			return err
		}
		if err := s.Spares.DeleteSpare(ctx, sp.Name); err != nil {
			return err
		}
	}
	return nil
}
