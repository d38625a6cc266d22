package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/nodepolicy"
	"github.com/mecd/mecd/internal/store"
	"github.com/mecd/mecd/test/localrt"
)

// A MEC launched while a spare node role is free takes it (its instance
// profile has long propagated to EC2), fitted to the MEC: its sealed policy
// and its tags. The spare goes with the MEC, and the pool is made up again.
// Not parallel: the other tests' MECs would take the spares it waits for.
func TestSpareNodeRoleIsTakenAndGoesWithItsMEC(t *testing.T) {
	rt := localrt.Get(t)
	ctx := context.Background()
	ic := iam.NewFromConfig(rt.AWSConfig(""))

	// The first launch makes the pool up (the runtime keeps 2 spares).
	first := accepted(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":1}`, localrt.UniqueName("pool")))
	waitStatus(t, rt, first.ID, mec.Ready, 90*time.Second)
	free := func() []string { return freeSpares(t, rt) }
	deadline := time.Now().Add(30 * time.Second)
	for len(free()) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if len(free()) == 0 {
		t.Fatal("no spare node role was made after a launch")
	}

	m := accepted(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":1,"tags":{"team":"spares"}}`, localrt.UniqueName("spare")))
	m = waitStatus(t, rt, m.ID, mec.Ready, 90*time.Second)
	if !strings.HasPrefix(m.NodeRole, mec.SpareRolePrefix) {
		t.Fatalf("node role %q, want a spare (%s...) while one was free", m.NodeRole, mec.SpareRolePrefix)
	}
	if st := m.Step(mec.StepNodeRole); st == nil || !strings.Contains(st.Detail, "spare") {
		t.Errorf("node role step %+v does not say a spare was taken", st)
	}
	spares, err := (&store.Store{DB: rt.Clients("").DynamoDB, Table: localrt.TableName}).Spares(ctx)
	if err != nil {
		t.Fatal(err)
	}
	taken := false
	for _, sp := range spares {
		taken = taken || (sp.Name == m.NodeRole && sp.ClusterID == m.ID)
	}
	if !taken {
		t.Errorf("no spare item records %s as taken by %s", m.NodeRole, m.ID)
	}
	role, err := ic.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(m.NodeRole)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, tg := range role.Role.Tags {
		got[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if got[mec.TagClusterID] != m.ID || got["team"] != "spares" {
		t.Errorf("the taken role's tags %v are not the MEC's", got)
	}
	pol, err := ic.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(m.NodeRole), PolicyName: aws.String(nodepolicy.InlineName)})
	if err != nil {
		t.Fatal(err)
	}
	// IAM returns policy documents URL-encoded (GetRolePolicy).
	doc, _ := url.QueryUnescape(aws.ToString(pol.PolicyDocument))
	if want := nodepolicy.Inline(m.ID, m.Region, nodepolicy.Phase{Stage: nodepolicy.Sealed}); doc != want {
		t.Errorf("the taken role's policy is not the MEC's sealed one:\n%s", aws.ToString(pol.PolicyDocument))
	}

	deleteClean(t, rt, m.ID)
	deleteClean(t, rt, first.ID)
	_, err = ic.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(m.NodeRole)})
	if ae := (smithy.APIError)(nil); !errors.As(err, &ae) || ae.ErrorCode() != "NoSuchEntity" {
		t.Errorf("the spare %s the MEC took still exists after its teardown (GetRole: %v)", m.NodeRole, err)
	}
	if len(free()) == 0 {
		t.Error("the pool was not made up again after the spare was taken")
	}
}

// freeSpares names the spare node roles ready and free.
func freeSpares(t *testing.T, rt *localrt.Runtime) []string {
	t.Helper()
	spares, err := (&store.Store{DB: rt.Clients("").DynamoDB, Table: localrt.TableName}).Spares(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, sp := range spares {
		if sp.ClusterID == "" && sp.ProfileArn != "" {
			out = append(out, sp.Name)
		}
	}
	return out
}

// drainSpares takes every free spare for an unknown cluster made long ago,
// so the next launch makes a role of its own; the reaper deletes them after
// the test. Only for tests that run alone (not parallel): another test's
// launch would make the pool up again meanwhile.
func drainSpares(t *testing.T, rt *localrt.Runtime) {
	t.Helper()
	owner := mec.NewID(time.Now().Add(-time.Hour))
	st := &store.Store{DB: rt.Clients("").DynamoDB, Table: localrt.TableName}
	for _, name := range freeSpares(t, rt) {
		if _, err := st.ClaimSpare(context.Background(), name, owner); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { reapUntilClean(t, rt, owner) })
}
