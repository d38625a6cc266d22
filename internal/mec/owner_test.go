package mec

import "testing"

func TestRoleOf(t *testing.T) {
	for _, tc := range []struct{ arn, want string }{
		{"arn:aws:sts::123456789012:assumed-role/Deployer/alice", "arn:aws:iam::123456789012:role/Deployer"},
		{"arn:aws-us-gov:sts::123456789012:assumed-role/Deployer/i-0abc", "arn:aws-us-gov:iam::123456789012:role/Deployer"},
		// Identity Center: the session has no path, the role has one.
		{"arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0a1b/bob@example.com", "arn:aws:iam::123456789012:role/AWSReservedSSO_Admin_0a1b"},
		{"arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0a1b", "arn:aws:iam::123456789012:role/AWSReservedSSO_Admin_0a1b"},
		{"arn:aws:iam::123456789012:role/Deployer", "arn:aws:iam::123456789012:role/Deployer"},
		{"arn:aws:iam::123456789012:user/alice", ""},
		{"arn:aws:iam::123456789012:root", ""},
		{"arn:aws:sts::123456789012:federated-user/alice", ""},
		{"arn:aws:sts::123456789012:assumed-role/", ""},
		{"arn:aws:iam::123456789012:role/", ""},
		{"arn:aws:sts:::assumed-role/Deployer/alice", ""},
		{"AROAEXAMPLE:alice", ""},
		{"", ""},
	} {
		if got := RoleOf(tc.arn); got != tc.want {
			t.Errorf("RoleOf(%q) = %q, want %q", tc.arn, got, tc.want)
		}
	}
}

func TestSamePrincipal(t *testing.T) {
	const (
		alice    = "arn:aws:sts::123456789012:assumed-role/Deployer/alice"
		bob      = "arn:aws:sts::123456789012:assumed-role/Deployer/bob"
		other    = "arn:aws:sts::123456789012:assumed-role/Viewer/alice"
		deployer = "arn:aws:iam::123456789012:role/team/Deployer"
		user     = "arn:aws:iam::123456789012:user/alice"
	)
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{alice, alice, true},
		{alice, bob, true}, // sessions of one role are that role
		{alice, deployer, true},
		{alice, other, false},
		{alice, "arn:aws:sts::210987654321:assumed-role/Deployer/alice", false},
		{user, user, true},
		{user, "arn:aws:iam::123456789012:user/bob", false},
		{user, alice, false},
		{"", "", false},
		{alice, "", false},
	} {
		if got := SamePrincipal(tc.a, tc.b); got != tc.want {
			t.Errorf("SamePrincipal(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestValidRoleARN(t *testing.T) {
	for arn, want := range map[string]bool{
		"arn:aws:iam::123456789012:role/Admin":                            true,
		"arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/X": true,
		"arn:aws-cn:iam::123456789012:role/Admin":                         true,
		"arn:aws:sts::123456789012:assumed-role/Admin/alice":              false,
		"arn:aws:iam::123456789012:user/alice":                            false,
		"arn:aws:iam::123456789012:role/":                                 false,
		"Admin":                                                           false,
	} {
		if got := ValidRoleARN(arn); got != want {
			t.Errorf("ValidRoleARN(%q) = %v, want %v", arn, got, want)
		}
	}
}
