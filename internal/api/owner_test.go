package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/spec"
)

const (
	acct     = "123456789012"
	alice    = "arn:aws:sts::" + acct + ":assumed-role/Dev/alice"
	aliceToo = "arn:aws:sts::" + acct + ":assumed-role/Dev/alice-laptop"
	carol    = "arn:aws:sts::" + acct + ":assumed-role/Ops/carol"
	bob      = "arn:aws:iam::" + acct + ":user/bob"
	admin    = "arn:aws:sts::" + acct + ":assumed-role/MecdAdmin/dave"
	// The admin role as configured: with a path its sessions do not show.
	adminRole = "arn:aws:iam::" + acct + ":role/platform/MecdAdmin"
)

// The API records who created a MEC and shows it on every answer.
func TestCreateRecordsTheCallerAsOwner(t *testing.T) {
	e := newEnv(t)
	r := post(`{"name":"edge-owned"}`)
	r.caller = alice
	resp := e.do(t, r)
	if m := mecOf(t, resp); resp.StatusCode != http.StatusAccepted || m.Owner != alice {
		t.Fatalf("create: %d owner %q", resp.StatusCode, m.Owner)
	}
	id := mecOf(t, resp).ID
	for _, r := range []req{get("/mecs/" + id), {method: "GET", path: "/mecs"}} {
		r.caller = bob
		if resp := e.do(t, r); resp.StatusCode != http.StatusOK || !strings.Contains(resp.Body, `"owner":"`+alice+`"`) {
			t.Fatalf("%s %s: %d %s", r.method, r.path, resp.StatusCode, resp.Body)
		}
	}
	if got, err := e.st.Get(context.Background(), id); err != nil || got.Owner != alice {
		t.Fatalf("stored owner %q (%v)", got.Owner, err)
	}
}

func TestOwnerOnly(t *testing.T) {
	e := newEnv(t)
	// Every case gets a MEC of its own: a permitted DELETE changes it.
	seq := 0
	seed := func(t *testing.T, owner string) *mec.MEC {
		t.Helper()
		seq++
		sp, err := spec.Parse([]byte(fmt.Sprintf(`{"name":"edge-own-%d"}`, seq)), e.h.defaults())
		if err != nil {
			t.Fatal(err)
		}
		m := mec.New(sp, "test", e.h.now())
		m.Owner = owner
		if err := e.st.Create(context.Background(), m, nil); err != nil {
			t.Fatal(err)
		}
		return m
	}
	on := OwnerOnly{On: true, Admins: []string{adminRole}}
	// A permitted kubeconfig read of a CREATING MEC is a 409 NotReady: past the owner check.
	const kube = "/kubeconfig"
	for _, tc := range []struct {
		name   string
		opt    OwnerOnly
		owner  string
		caller string
		method string
		suffix string
		want   int
	}{
		{"off: anyone deletes", OwnerOnly{}, alice, bob, "DELETE", "", http.StatusAccepted},
		{"off: anyone asks for the kubeconfig", OwnerOnly{}, alice, bob, "GET", kube, http.StatusConflict},
		{"owner deletes", on, alice, alice, "DELETE", "", http.StatusAccepted},
		{"owner asks for the kubeconfig", on, alice, alice, "GET", kube, http.StatusConflict},
		{"another session of the owner's role", on, alice, aliceToo, "DELETE", "", http.StatusAccepted},
		{"an admin role's session deletes", on, alice, admin, "DELETE", "", http.StatusAccepted},
		{"an admin role's session asks for the kubeconfig", on, bob, admin, "GET", kube, http.StatusConflict},
		{"owner user", on, bob, bob, "GET", kube, http.StatusConflict},
		{"another role may not delete", on, alice, carol, "DELETE", "", http.StatusForbidden},
		{"another role may not read the kubeconfig", on, alice, carol, "GET", kube, http.StatusForbidden},
		{"another user", on, bob, "arn:aws:iam::" + acct + ":user/bobby", "DELETE", "", http.StatusForbidden},
		{"the same role in another account", on, alice, "arn:aws:sts::210987654321:assumed-role/Dev/alice", "DELETE", "", http.StatusForbidden},
		{"no caller identity", on, alice, "", "DELETE", "", http.StatusForbidden},
		{"no owner: not even its creator's peers", on, "", alice, "DELETE", "", http.StatusForbidden},
		{"no owner: an admin", on, "", admin, "DELETE", "", http.StatusAccepted},
		{"no admin roles", OwnerOnly{On: true}, alice, admin, "GET", kube, http.StatusForbidden},
		{"reading the record stays open", on, alice, carol, "GET", "", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.h.OwnerOnly = tc.opt
			m := seed(t, tc.owner)
			resp := e.do(t, req{method: tc.method, path: "/mecs/" + m.ID + tc.suffix, caller: tc.caller})
			if resp.StatusCode != tc.want {
				t.Fatalf("%d %s, want %d", resp.StatusCode, resp.Body, tc.want)
			}
			if tc.want != http.StatusForbidden {
				return
			}
			er := errOf(t, resp)
			if er.Code != CodeForbidden || !strings.Contains(er.Message, "owner-only") {
				t.Fatalf("refusal %+v: want code Forbidden naming the owner-only option", er)
			}
			// The message says who may: the owner and the admin roles.
			for _, want := range append([]string{tc.owner}, tc.opt.Admins...) {
				if !strings.Contains(er.Message, want) {
					t.Errorf("refusal %q does not name %q", er.Message, want)
				}
			}
			if got, _ := e.st.Get(context.Background(), m.ID); got.Status != mec.Creating || got.TeardownExecutionArn != "" {
				t.Errorf("refused, yet the MEC is %s with teardown %q", got.Status, got.TeardownExecutionArn)
			}
		})
	}
	// Listing stays open too.
	if resp := e.do(t, req{method: "GET", path: "/mecs", caller: carol}); resp.StatusCode != http.StatusOK {
		t.Fatalf("list: %d %s", resp.StatusCode, resp.Body)
	}
}

func TestOwnerOnlyFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    OwnerOnly
		wantErr string
	}{
		{name: "unset", want: OwnerOnly{}},
		{name: "off", env: map[string]string{"OWNER_ONLY": "false", "ADMIN_ROLE_ARNS": ""}, want: OwnerOnly{}},
		{name: "on with admins", env: map[string]string{"OWNER_ONLY": "true", "ADMIN_ROLE_ARNS": adminRole + ", arn:aws:iam::" + acct + ":role/Ops"},
			want: OwnerOnly{On: true, Admins: []string{adminRole, "arn:aws:iam::" + acct + ":role/Ops"}}},
		{name: "not a bool", env: map[string]string{"OWNER_ONLY": "yes"}, wantErr: "OWNER_ONLY"},
		{name: "a session is no role", env: map[string]string{"ADMIN_ROLE_ARNS": admin}, wantErr: "not an IAM role ARN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := OwnerOnlyFromEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got.On != tc.want.On || strings.Join(got.Admins, " ") != strings.Join(tc.want.Admins, " ") {
				t.Fatalf("%+v %v, want %+v", got, err, tc.want)
			}
		})
	}
}
