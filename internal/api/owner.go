package api

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/mecd/mecd/internal/backend"
	"github.com/mecd/mecd/internal/mec"
)

// OwnerOnly is the stack's owner-only option. IAM decides which routes a
// caller may call, not whose MEC: when On, only a MEC's owner (the same
// principal, or any session of the same role) and the Admins may delete it
// or read its kubeconfig. Listing and reading records stay open to every
// caller IAM lets in.
type OwnerOnly struct {
	On bool
	// Admins are IAM role ARNs whose sessions may do both to every MEC.
	Admins []string
}

// OwnerOnlyFromEnv reads the option from the api function's environment.
func OwnerOnlyFromEnv(getenv func(string) string) (OwnerOnly, error) {
	var o OwnerOnly
	if v := getenv(backend.EnvOwnerOnly); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return o, fmt.Errorf("%s=%q: want true or false", backend.EnvOwnerOnly, v)
		}
		o.On = on
	}
	for _, a := range strings.Split(getenv(backend.EnvAdminRoleArns), ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if !mec.ValidRoleARN(a) {
			return o, fmt.Errorf("%s: %q is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)", backend.EnvAdminRoleArns, a)
		}
		o.Admins = append(o.Admins, a)
	}
	return o, nil
}

// allows reports whether caller (a principal ARN) may act on m as its owner.
func (o OwnerOnly) allows(caller string, m *mec.MEC) bool {
	if !o.On || mec.SamePrincipal(caller, m.Owner) {
		return true
	}
	return slices.ContainsFunc(o.Admins, func(a string) bool { return mec.SamePrincipal(caller, a) })
}

// checkOwner refuses with 403 what the owner-only option keeps from the
// caller; action completes "may ..." ("delete it").
func (h *Handler) checkOwner(r *request, m *mec.MEC, action string) error {
	caller := r.caller()
	if h.OwnerOnly.allows(caller, m) {
		return nil
	}
	var who string
	switch role := mec.RoleOf(m.Owner); {
	case m.Owner == "":
		who = fmt.Sprintf("MEC %s has no owner (it was not created through the API), so only an admin role may %s", m.ID, action)
	case role != "":
		who = fmt.Sprintf("only the owner of MEC %s (%s, or any session of %s) or an admin role may %s", m.ID, m.Owner, role, action)
	default:
		who = fmt.Sprintf("only the owner of MEC %s (%s) or an admin role may %s", m.ID, m.Owner, action)
	}
	admins := "none (mecd:adminRoleArns)"
	if len(h.OwnerOnly.Admins) > 0 {
		admins = strings.Join(h.OwnerOnly.Admins, ", ")
	}
	if caller == "" {
		caller = "unknown"
	}
	return &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: fmt.Sprintf(
		"the stack's owner-only option (mecd:ownerOnly) is on: %s; admin roles: %s; you called as %s", who, admins, caller)}
}
