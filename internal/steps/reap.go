package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/store"
)

// ReapGraceIntervals is the reaper's grace period in poll intervals (5
// minutes on AWS): longer than any step that may still be creating
// resources for a MEC whose teardown already ended (launch-nodes' Lambda
// timeout is 60 s), so the reaper never races the workflow that owns them.
const ReapGraceIntervals = 30

// ReapResult says what the reaper found and reaped.
type ReapResult struct {
	// Clusters are the cluster ids that own resources in AWS.
	Clusters int `json:"clusters"`
	// Orphans are the clusters whose resources were (or are being) reaped:
	// their MEC is DELETED, or unknown to the table.
	Orphans []string `json:"orphans,omitempty"`
	// Remaining counts orphans with resources left for the next run
	// (instances still shutting down, a group they still hold).
	Remaining int `json:"remaining"`
	// Skipped: another run held the lock.
	Skipped bool `json:"skipped,omitempty"`
}

// reaperLock names the reaper's lock.
const reaperLock = "reaper"

// hold takes lock name until the invocation's deadline (5 minutes without
// one): got is false while another holder has it. release gives it back.
func (s *Steps) hold(ctx context.Context, name string) (release func(), got bool, err error) {
	if s.Locks == nil {
		return func() {}, true, nil
	}
	owner := fmt.Sprintf("%s-%d", name, s.now().UnixNano())
	until := s.now().Add(5 * time.Minute)
	if d, ok := ctx.Deadline(); ok {
		until = d
	}
	if got, err = s.Locks.Lock(ctx, name, owner, until); err != nil || !got {
		return nil, got, err
	}
	return func() {
		if err := s.Locks.Unlock(context.WithoutCancel(ctx), name, owner); err != nil {
			s.Log.WarnContext(ctx, "release a lock", "lock", name, "error", err)
		}
	}, true, nil
}

// Locker keeps runs that must not overlap apart (store.Store).
type Locker interface {
	Lock(ctx context.Context, name, owner string, until time.Time) (bool, error)
	Unlock(ctx context.Context, name, owner string) error
}

// owned is what one cluster id owns in AWS.
type owned struct {
	regions map[string]bool // where it has instances, groups or parameters
	roles   map[string]bool // node roles or instance profiles, by name
}

// Reap is the orphan reaper, run by the sweep schedule: it deletes the
// mecd-tagged resources (instances, security groups, node roles and
// instance profiles, parameters) of clusters whose MEC is DELETED or not
// in the table, once the grace period has passed, logging each deletion.
// They are what a teardown could not see (an instance EC2 did not list yet
// when a DELETE raced the launch) or a record that expired first. It is
// idempotent and bounded by the regions and the clusters found.
//
// One run at a time: EventBridge delivers a scheduled event at least once
// (EventBridge User Guide, event delivery), and two runs that listed the
// same node role would both delete it; the second's calls on a role that
// no longer exists are refused (IAM authorizes them by an ARN it can no
// longer complete with the role's path).
func (s *Steps) Reap(ctx context.Context, _ json.RawMessage) (ReapResult, error) {
	release, got, err := s.hold(ctx, reaperLock)
	if err != nil {
		return ReapResult{}, err
	}
	if !got {
		s.Log.InfoContext(ctx, "another reaper run is under way: this one does nothing")
		return ReapResult{Skipped: true}, nil
	}
	defer release()
	found := map[string]*owned{}
	own := func(id string) *owned {
		o := found[id]
		if o == nil {
			o = &owned{regions: map[string]bool{}, roles: map[string]bool{}}
			found[id] = o
		}
		return o
	}
	note := func(id, region string) { own(id).regions[region] = true }
	noteRole := func(id, name string) { own(id).roles[name] = true }
	for _, region := range s.Env.AllowedRegions {
		if err := s.findRegional(ctx, region, note); err != nil {
			return ReapResult{}, err
		}
	}
	listed, err := s.findNodeRoles(ctx, noteRole)
	if err != nil {
		return ReapResult{}, err
	}
	res := ReapResult{Clusters: len(found)}
	grace := ReapGraceIntervals * s.Env.PollInterval
	for _, id := range slices.Sorted(maps.Keys(found)) {
		m, orphan, err := s.orphan(ctx, id, grace)
		if err != nil {
			return res, err
		}
		if !orphan {
			continue
		}
		res.Orphans = append(res.Orphans, id)
		left, err := s.reapCluster(ctx, m, found[id], listed)
		if err != nil {
			// One cluster's failure must not stop the others: the next run retries it.
			s.Log.ErrorContext(ctx, "reaping an orphan failed", "clusterId", id, "error", err)
			left = true
		}
		if left {
			res.Remaining++
		}
	}
	s.Log.InfoContext(ctx, "reaper done", "clusters", res.Clusters, "orphans", len(res.Orphans), "remaining", res.Remaining)
	return res, nil
}

// orphan reads id's record: an orphan's resources may go when its MEC has
// been DELETED for longer than grace, or when the table has no MEC of that
// id and the id (which carries its creation time) is older than grace.
func (s *Steps) orphan(ctx context.Context, id string, grace time.Duration) (*mec.MEC, bool, error) {
	m, err := s.Store.Get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		made, ok := mec.IDTime(id)
		if !ok {
			s.Log.WarnContext(ctx, "resources tagged with a cluster id mecd does not make; left alone", "clusterId", id)
			return nil, false, nil
		}
		return &mec.MEC{ID: id}, s.now().Sub(made) > grace, nil
	case err != nil:
		return nil, false, err
	case m.Status == mec.Deleted && m.DeletedAt != nil:
		return m, s.now().Sub(*m.DeletedAt) > grace, nil
	}
	return m, false, nil
}

// reapCluster deletes what o says cluster m.ID owns and reports whether
// something is left for the next run.
func (s *Steps) reapCluster(ctx context.Context, m *mec.MEC, o *owned, listed nodeRoles) (bool, error) {
	alive := 0
	for _, region := range slices.Sorted(maps.Keys(o.regions)) {
		rm := *m
		rm.Region = region
		rm.Nodes = nil // gone from the record's view: found by tag
		if region != m.Region {
			rm.SecurityGroupID = "" // the record's group is in its own region: elsewhere, found by tag
		}
		c := s.AWS.EC2(region)
		n, err := s.terminate(ctx, c, &rm)
		if err != nil {
			return true, err
		}
		if alive += n; n > 0 {
			continue // the group and profile are held until the instances are gone
		}
		if err := s.deleteGroups(ctx, c, &rm); err != nil {
			if e := (*Error)(nil); errors.As(err, &e) && e.Name == "DependencyViolation" {
				alive++
				continue
			}
			return true, err
		}
		if err := s.deleteParameters(ctx, &rm); err != nil {
			return true, err
		}
	}
	if alive > 0 {
		return true, nil
	}
	// The roles found, by name (every spare it took among them): the record
	// may name another (a spare it took after a crashed launch began its
	// own), or none (unknown).
	for _, name := range slices.Sorted(maps.Keys(o.roles)) {
		if err := s.deleteRole(ctx, m.ID, name, listed); err != nil {
			if e := (*Error)(nil); errors.As(err, &e) && e.Name == "DependencyViolation" {
				return true, nil
			}
			return true, err
		}
	}
	if len(o.roles) > 0 {
		if err := s.forgetSpares(ctx, m.ID, func(string) error { return nil }); err != nil {
			return true, err
		}
	}
	return false, nil
}

// findRegional notes the clusters owning live instances, security groups or
// parameters in region.
func (s *Steps) findRegional(ctx context.Context, region string, note func(id, region string)) error {
	c := s.AWS.EC2(region)
	err := eachInstance(ctx, c, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + mec.TagManaged), Values: []string{"true"}},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped", "shutting-down"}},
	}}, func(in ec2types.Instance) {
		if id := tagValue(in.Tags, mec.TagClusterID); id != "" {
			note(id, region)
		}
	})
	if err != nil {
		return fmt.Errorf("%s: %w", region, err)
	}
	groups := ec2.NewDescribeSecurityGroupsPaginator(c, &ec2.DescribeSecurityGroupsInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + mec.TagManaged), Values: []string{"true"}},
	}})
	for groups.HasMorePages() {
		page, err := groups.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("%s: describe security groups: %w", region, err)
		}
		for _, g := range page.SecurityGroups {
			if id := tagValue(g.Tags, mec.TagClusterID); id != "" {
				note(id, region)
			}
		}
	}
	// Names only: the reaper never decrypts a SecureString.
	params := ssm.NewGetParametersByPathPaginator(s.AWS.SSM(region), &ssm.GetParametersByPathInput{
		Path: aws.String(mec.ParamRoot), Recursive: aws.Bool(true), WithDecryption: aws.Bool(false)})
	for params.HasMorePages() {
		page, err := params.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("%s: list parameters: %w", region, err)
		}
		for _, p := range page.Parameters {
			if id, _, ok := strings.Cut(strings.TrimPrefix(aws.ToString(p.Name), mec.ParamRoot), "/"); ok && id != "" {
				note(id, region)
			}
		}
	}
	return nil
}

// findNodeRoles notes the clusters owning a node role or instance profile
// (IAM is global), with its name, and returns the listing it read.
func (s *Steps) findNodeRoles(ctx context.Context, note func(id, name string)) (nodeRoles, error) {
	listed, err := s.listNodeRoles(ctx)
	if err != nil {
		return listed, err
	}
	var spares []string
	for _, name := range append(slices.Clone(listed.roles), listed.profiles...) {
		if strings.HasPrefix(name, mec.SpareRolePrefix) {
			spares = append(spares, name)
			continue
		}
		if id, ok := strings.CutPrefix(name, mec.NodeRolePrefix); ok && id != "" {
			note(id, name)
		}
	}
	return listed, s.reapSpares(ctx, spares, listed, note)
}

// reaperClaim takes a spare for the reaper to delete (no MEC has this id).
const reaperClaim = "reaper"

// reapSpares notes the spares a MEC took as that MEC's, and deletes the
// ones left half made once spareGrace has passed since they were made (an
// item still without its profile, or a role without an item: makeSpare
// writes the item first) and the free ones beyond SPARE_NODE_ROLES (all of
// them once it is 0: how a stack is emptied before it is destroyed, as the
// spares' boundary is the stack's).
func (s *Steps) reapSpares(ctx context.Context, names []string, listed nodeRoles, note func(id, name string)) error {
	if s.Spares == nil {
		return nil
	}
	spares, err := s.Spares.Spares(ctx)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	var left []string
	// The oldest free spares are kept: launches running at once may each
	// have made one, and the pool shrinks back to SPARE_NODE_ROLES here.
	slices.SortFunc(spares, func(a, b store.Spare) int { return a.CreatedAt.Compare(b.CreatedAt) })
	keep := s.Env.SpareNodeRoles
	for _, sp := range spares {
		known[sp.Name] = true
		switch {
		case sp.ClusterID == "" && sp.ProfileArn != "":
			if keep--; keep >= 0 {
				continue
			}
			// Taken first, so a launch cannot take it while it goes.
			if ok, err := s.Spares.ClaimSpare(ctx, sp.Name, reaperClaim); err != nil || !ok {
				continue
			}
			left = append(left, sp.Name)
		case sp.ClusterID == reaperClaim:
			left = append(left, sp.Name) // an earlier run stopped half way
		case sp.ClusterID != "":
			// Its role may be gone already (a cleanup that stopped before
			// it forgot the item): deleting it again finds nothing.
			note(sp.ClusterID, sp.Name)
		case sp.ProfileArn == "" && s.now().Sub(sp.CreatedAt) > spareGrace:
			left = append(left, sp.Name)
		}
	}
	for _, name := range names {
		if made, ok := mec.SpareTime(name); ok && !known[name] && s.now().Sub(made) > spareGrace && !slices.Contains(left, name) {
			left = append(left, name)
		}
	}
	for _, name := range left {
		if err := s.deleteRole(ctx, "", name, listed); err != nil {
			s.Log.ErrorContext(ctx, "reaping a spare node role failed", "role", name, "error", err)
			continue
		}
		if known[name] {
			if err := s.Spares.DeleteSpare(ctx, name); err != nil {
				s.Log.ErrorContext(ctx, "forgetting a spare node role failed", "role", name, "error", err)
			}
		}
		s.Log.InfoContext(ctx, "spare node role reaped", "role", name)
	}
	return nil
}

// NodeRoleLister lists IAM roles and instance profiles.
type NodeRoleLister interface {
	iam.ListRolesAPIClient
	iam.ListInstanceProfilesAPIClient
}

// NodeRoleNames lists the node roles and instance profiles under mecd's
// path, every page (a profile whose role is gone is only in the second).
func NodeRoleNames(ctx context.Context, c NodeRoleLister) (roles, profiles []string, err error) {
	err = eachPage(ctx, iam.NewListRolesPaginator(c, &iam.ListRolesInput{PathPrefix: aws.String(mec.NodeRolePath)}), func(o *iam.ListRolesOutput) {
		for _, r := range o.Roles {
			roles = append(roles, aws.ToString(r.RoleName))
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list node roles: %w", err)
	}
	err = eachPage(ctx, iam.NewListInstanceProfilesPaginator(c, &iam.ListInstanceProfilesInput{PathPrefix: aws.String(mec.NodeRolePath)}), func(o *iam.ListInstanceProfilesOutput) {
		for _, p := range o.InstanceProfiles {
			profiles = append(profiles, aws.ToString(p.InstanceProfileName))
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list node instance profiles: %w", err)
	}
	return roles, profiles, nil
}

// pager is an SDK paginator.
type pager[O any, Opt any] interface {
	HasMorePages() bool
	NextPage(ctx context.Context, optFns ...func(Opt)) (O, error)
}

// eachPage calls fn on every page p gives.
func eachPage[O any, Opt any](ctx context.Context, p pager[O, Opt], fn func(O)) error {
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		fn(page)
	}
	return nil
}

func tagValue(tags []ec2types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}
