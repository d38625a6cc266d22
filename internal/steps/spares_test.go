package steps

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/smithy-go"
	"github.com/mecd/mecd/internal/config"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/nodepolicy"
	"github.com/mecd/mecd/internal/store"
)

// spareStore keeps spares as DynamoDB would, the claim conditional;
// stolen names the spares another MEC takes between the listing and the
// claim (the index is eventually consistent).
type spareStore struct {
	spares  []store.Spare
	stolen  map[string]bool
	listErr error
	claims  []string
}

func (f *spareStore) Spares(context.Context) ([]store.Spare, error) {
	return append([]store.Spare(nil), f.spares...), f.listErr
}
func (f *spareStore) PutSpare(context.Context, string) error           { return nil }
func (f *spareStore) SpareReady(context.Context, string, string) error { return nil }
func (f *spareStore) DeleteSpare(context.Context, string) error        { return nil }
func (f *spareStore) ClaimSpare(_ context.Context, name, id string) (bool, error) {
	f.claims = append(f.claims, name)
	for i, sp := range f.spares {
		if sp.Name != name {
			continue
		}
		if f.stolen[name] || sp.ClusterID != "" || sp.ProfileArn == "" {
			return false, nil
		}
		f.spares[i].ClusterID = id
		return true, nil
	}
	return false, nil
}

// tagIAM records the node role policies and tags written.
type tagIAM struct {
	policyIAM
	tagged map[string]map[string]string
}

func (p *tagIAM) TagRole(_ context.Context, in *iam.TagRoleInput, _ ...func(*iam.Options)) (*iam.TagRoleOutput, error) {
	tags := map[string]string{}
	for _, t := range in.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	p.tagged[aws.ToString(in.RoleName)] = tags
	return &iam.TagRoleOutput{}, nil
}

// spareAt is spare name (under the spare prefix), made age before t0,
// taken by cluster ("" free), with its profile when ready.
func spareAt(t0 time.Time, name string, age time.Duration, cluster string, ready bool) store.Spare {
	sp := store.Spare{Name: mec.SpareRolePrefix + name, ClusterID: cluster, CreatedAt: t0.Add(-age)}
	if ready {
		sp.ProfileArn = "arn:aws:iam::1:instance-profile/mecd/" + sp.Name
	}
	return sp
}

func TestClaimSpare(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	spare := func(name string, age time.Duration, cluster string, ready bool) store.Spare {
		return spareAt(t0, name, age, cluster, ready)
	}
	cases := []struct {
		name       string
		spares     []store.Spare
		stolen     string
		listErr    error
		want       string // "" = none: the MEC makes its own role
		wantClaims int
	}{
		{name: "the oldest ready free spare", spares: []store.Spare{spare("young", time.Minute, "", true), spare("old", time.Hour, "", true),
			spare("older-not-ready", 2*time.Hour, "", false), spare("oldest-taken", 3*time.Hour, "mec-other", true)}, want: "old", wantClaims: 1},
		{name: "one a crashed try took for this MEC is its own again", spares: []store.Spare{spare("free", time.Hour, "", true),
			spare("mine", time.Minute, "mec-1", true)}, want: "mine", wantClaims: 0},
		{name: "a spare another MEC took first: the next", spares: []store.Spare{spare("a", time.Hour, "", true), spare("b", time.Minute, "", true)},
			stolen: "a", want: "b", wantClaims: 2},
		{name: "none free", spares: []store.Spare{spare("taken", time.Hour, "mec-other", true), spare("making", time.Hour, "", false)}, want: "", wantClaims: 0},
		{name: "the listing fails", spares: []store.Spare{spare("a", time.Hour, "", true)}, listErr: errors.New("throttled"), want: "", wantClaims: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &mec.MEC{ID: "mec-1", Name: "edge", Region: "us-east-1", Status: mec.Creating}
			ss := &spareStore{spares: tc.spares, stolen: map[string]bool{mec.SpareRolePrefix + tc.stolen: tc.stolen != ""}, listErr: tc.listErr}
			ia := &tagIAM{tagged: map[string]map[string]string{}}
			s := &Steps{Store: &waitStore{m: m}, Spares: ss, IAM: ia, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return t0 }}
			name, arn, err := s.claimSpare(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			if len(ss.claims) != tc.wantClaims {
				t.Errorf("claims %v, want %d", ss.claims, tc.wantClaims)
			}
			if tc.want == "" {
				if name != "" || arn != "" || m.NodeRole != "" || len(ia.docs) > 0 {
					t.Fatalf("took %q (%q), record %q, policies %d: want none", name, arn, m.NodeRole, len(ia.docs))
				}
				return
			}
			want := mec.SpareRolePrefix + tc.want
			if name != want || arn == "" || m.NodeRole != want {
				t.Fatalf("took %q (%q), record names %q: want %s", name, arn, m.NodeRole, want)
			}
			// Fitted to the MEC: its own sealed policy and its tags.
			if len(ia.docs) != 1 || ia.docs[0] != nodepolicy.Inline(m.ID, m.Region, nodepolicy.Phase{Stage: nodepolicy.Sealed}) {
				t.Errorf("policies written %q, want the MEC's sealed one", ia.docs)
			}
			if ia.tagged[want][mec.TagClusterID] != m.ID {
				t.Errorf("tags %v, want the MEC's", ia.tagged[want])
			}
		})
	}
}

// The finalize step sends nothing, and opens no node right, when node 0
// finished the build in the install command; after a retried join it sends
// the finalize script with the kubeconfig writable once.
func TestFinalizeSendsOnlyWhatTheInstallLeft(t *testing.T) {
	for _, finished := range []bool{true, false} {
		m := &mec.MEC{ID: "mec-1", Region: "us-east-1", Nodes: []mec.Node{{Index: 0, InstanceID: "i-0"}, {Index: 1, InstanceID: "i-1"}}}
		if finished {
			m.KubeconfigParameter = mec.KubeconfigParam(m.ID)
		}
		pol := &policyIAM{}
		s := &Steps{IAM: pol, Log: slog.New(slog.DiscardHandler)}
		p, err := s.plan(context.Background(), m, mec.StepFinalize)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case finished && (p.skip == "" || len(p.targets) != 0 || len(pol.docs) != 0):
			t.Errorf("finished by the install: plan %+v, policies %d; want nothing sent or opened", p, len(pol.docs))
		case !finished && (p.script != "finalize" || len(p.targets) != 1 || len(pol.docs) != 1 ||
			pol.docs[0] != nodepolicy.Inline(m.ID, m.Region, nodePhase(m, nodepolicy.Joined))):
			t.Errorf("after a retried join: plan %+v, policies %q; want the finalize script on node 0, the kubeconfig writable", p, pol.docs)
		}
	}
}

// roleIAM holds node roles (each with its profile), lists them and
// deletes them, as IAM does for calls on roles that exist.
type roleIAM struct {
	tagIAM
	roles   map[string]bool
	deleted []string
}

func (r *roleIAM) ListRoles(_ context.Context, _ *iam.ListRolesInput, _ ...func(*iam.Options)) (*iam.ListRolesOutput, error) {
	out := &iam.ListRolesOutput{}
	for name := range r.roles {
		out.Roles = append(out.Roles, iamtypes.Role{RoleName: aws.String(name)})
	}
	return out, nil
}
func (r *roleIAM) ListInstanceProfiles(_ context.Context, _ *iam.ListInstanceProfilesInput, _ ...func(*iam.Options)) (*iam.ListInstanceProfilesOutput, error) {
	out := &iam.ListInstanceProfilesOutput{}
	for name := range r.roles {
		out.InstanceProfiles = append(out.InstanceProfiles, iamtypes.InstanceProfile{InstanceProfileName: aws.String(name)})
	}
	return out, nil
}
func (r *roleIAM) RemoveRoleFromInstanceProfile(context.Context, *iam.RemoveRoleFromInstanceProfileInput, ...func(*iam.Options)) (*iam.RemoveRoleFromInstanceProfileOutput, error) {
	return &iam.RemoveRoleFromInstanceProfileOutput{}, nil
}
func (r *roleIAM) DeleteInstanceProfile(context.Context, *iam.DeleteInstanceProfileInput, ...func(*iam.Options)) (*iam.DeleteInstanceProfileOutput, error) {
	return &iam.DeleteInstanceProfileOutput{}, nil
}
func (r *roleIAM) DeleteRolePolicy(context.Context, *iam.DeleteRolePolicyInput, ...func(*iam.Options)) (*iam.DeleteRolePolicyOutput, error) {
	return &iam.DeleteRolePolicyOutput{}, nil
}
func (r *roleIAM) DeleteRole(_ context.Context, in *iam.DeleteRoleInput, _ ...func(*iam.Options)) (*iam.DeleteRoleOutput, error) {
	name := aws.ToString(in.RoleName)
	if !r.roles[name] {
		// IAM authorizes by the ARN, path included: unknown for a role that
		// does not exist, so a path-scoped policy refuses the call.
		return nil, &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized on resource: role " + name}
	}
	delete(r.roles, name)
	r.deleted = append(r.deleted, name)
	return &iam.DeleteRoleOutput{}, nil
}

// The reaper shrinks the pool back to SPARE_NODE_ROLES (keeping the oldest,
// and taking each spare before it deletes it, so no launch takes it
// meanwhile), deletes spares left half made, notes the taken ones as their
// MEC's, and calls IAM on no role that is gone.
func TestReaperKeepsThePoolAtItsSize(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	sp := func(name string, age time.Duration, cluster string, ready bool) store.Spare {
		return spareAt(t0, name, age, cluster, ready)
	}
	ss := &spareStore{stolen: map[string]bool{}, spares: []store.Spare{
		sp("oldest", 3*time.Hour, "", true), sp("old", 2*time.Hour, "", true), sp("young", time.Hour, "", true), sp("youngest", time.Minute, "", true),
		sp("half-made", time.Hour, "", false), sp("taken", time.Hour, "mec-1", true), sp("gone", time.Hour, "mec-2", true),
	}}
	ia := &roleIAM{tagIAM: tagIAM{tagged: map[string]map[string]string{}}, roles: map[string]bool{}}
	for _, s := range ss.spares {
		if !strings.HasSuffix(s.Name, "gone") && !strings.HasSuffix(s.Name, "half-made") {
			ia.roles[s.Name] = true
		}
	}
	ia.roles[mec.SpareRolePrefix+mec.NewID(t0.Add(-time.Hour))] = true // no item: left over
	s := &Steps{Spares: ss, IAM: ia, Env: config.Env{SpareNodeRoles: 2}, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return t0 }}
	noted := map[string][]string{}
	roles, profiles, err := NodeRoleNames(context.Background(), ia)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.reapSpares(context.Background(), append(roles, profiles...), nodeRoles{roles, profiles}, func(id, name string) { noted[id] = append(noted[id], name) }); err != nil {
		t.Fatal(err)
	}
	for _, keep := range []string{"oldest", "old", "taken"} {
		if !ia.roles[mec.SpareRolePrefix+keep] {
			t.Errorf("spare %s was deleted", keep)
		}
	}
	if len(ia.deleted) != 3 {
		t.Errorf("deleted %v, want the two youngest free spares and the one without an item", ia.deleted)
	}
	for _, name := range []string{"young", "youngest"} {
		if !slices.Contains(ss.claims, mec.SpareRolePrefix+name) {
			t.Errorf("spare %s deleted without taking it first (claims %v)", name, ss.claims)
		}
	}
	if len(noted["mec-1"]) != 1 || len(noted["mec-2"]) != 1 {
		t.Errorf("noted %v, want the taken spares as their MECs'", noted)
	}
}
