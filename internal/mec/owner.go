package mec

import (
	"regexp"
	"strings"
)

// RoleOf is the IAM role a principal ARN stands for, as
// "arn:PARTITION:iam::ACCOUNT:role/NAME", or "" when it names no role. It
// takes an STS session of an assumed role
// ("arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION", what API Gateway
// reports for a caller using role credentials) or an IAM role ARN.
//
// The result never has a path: a session ARN does not carry its role's
// (IAM Identity Center's roles live under /aws-reserved/sso.amazonaws.com/,
// their sessions read assumed-role/AWSReservedSSO_.../user), so a role ARN
// with its path could never equal one derived from a session. Role names are
// unique in an account whatever their path, so the pathless ARN still names
// one role; it is for comparisons, and not always the ARN IAM shows.
func RoleOf(principal string) string {
	parts := strings.SplitN(principal, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[4] == "" {
		return ""
	}
	partition, service, account, resource := parts[1], parts[2], parts[4], parts[5]
	var name string
	switch {
	case service == "sts" && strings.HasPrefix(resource, "assumed-role/"):
		name, _, _ = strings.Cut(strings.TrimPrefix(resource, "assumed-role/"), "/")
	case service == "iam" && strings.HasPrefix(resource, "role/"):
		name = resource[strings.LastIndex(resource, "/")+1:]
	}
	if name == "" {
		return ""
	}
	return "arn:" + partition + ":iam::" + account + ":role/" + name
}

// SamePrincipal reports whether two principal ARNs are the same caller: the
// same ARN, or the same role (any session of it, or the role's own ARN).
func SamePrincipal(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	if a == b {
		return true
	}
	r := RoleOf(a)
	return r != "" && r == RoleOf(b)
}

// reRoleARN is an IAM role ARN, with or without a path.
var reRoleARN = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$`)

// ValidRoleARN reports whether s is an IAM role ARN (not a session of one).
func ValidRoleARN(s string) bool { return reRoleARN.MatchString(s) }
