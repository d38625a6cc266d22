package mec

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Parameter Store: every MEC's parameters live under its own prefix, so the
// node role and the functions can be scoped to it.
const (
	// ParamPath is the path every mecd parameter lives under, and ParamRoot
	// the prefix of their names.
	ParamPath = "/mecd"
	ParamRoot = ParamPath + "/"
	// TokenLeaf and KubeconfigLeaf name a MEC's two SecureStrings.
	TokenLeaf      = "join-token"
	KubeconfigLeaf = "kubeconfig"
)

// ParamPrefix is where a MEC's parameters live: /mecd/<id>/.
func ParamPrefix(clusterID string) string { return ParamRoot + clusterID + "/" }

// TokenParam is the MEC's join token (deleted once every node joined).
func TokenParam(clusterID string) string { return ParamPrefix(clusterID) + TokenLeaf }

// KubeconfigParam is the MEC's cluster-admin kubeconfig.
func KubeconfigParam(clusterID string) string { return ParamPrefix(clusterID) + KubeconfigLeaf }

// IAM: each MEC's nodes get a role and an instance profile of their own,
// <NodeRolePath><NodeRolePrefix><clusterId>, which the functions that manage
// them (and the stack's policies) are scoped to.
const (
	NodeRolePath   = "/mecd/"
	NodeRolePrefix = "mecd-node-"
)

// NodeRoleName names the node role and instance profile a MEC makes for
// itself.
func NodeRoleName(clusterID string) string { return NodeRolePrefix + clusterID }

// SpareRolePrefix starts the names of spare node roles: made ahead of any
// MEC, so that IAM has propagated their instance profile to EC2 when a
// launch takes one (a new profile is refused by RunInstances for about
// 10 s). Under NodeRolePrefix, so the stack's policies cover them as they are.
const SpareRolePrefix = NodeRolePrefix + "spare-"

// SpareRoleName names a new spare node role and its instance profile: the
// id part carries when it was made (SpareTime).
func SpareRoleName(now time.Time) string { return SpareRolePrefix + NewID(now) }

// SpareTime is when the spare named name was made (false: not a spare's name).
func SpareTime(name string) (time.Time, bool) {
	id, ok := strings.CutPrefix(name, SpareRolePrefix)
	if !ok {
		return time.Time{}, false
	}
	return IDTime(id)
}

// RoleName names m's node role and instance profile.
func (m *MEC) RoleName() string {
	if m.NodeRole != "" {
		return m.NodeRole
	}
	return NodeRoleName(m.ID)
}

// SecurityGroupName names a MEC's security group.
func SecurityGroupName(clusterID string) string { return "mecd-" + clusterID }

// Tags every mecd resource carries; mutating IAM actions are conditioned on
// TagManaged, and cleanup finds a MEC's resources by TagClusterID.
const (
	TagClusterID = "mecd:cluster-id"
	TagManaged   = "mecd:managed"
	TagName      = "mecd:name"
)

// Tag is one resource tag.
type Tag struct{ Key, Value string }

// Tags are what every AWS resource of m carries: the user's tags (sorted by
// key), then mecd's own and a Name.
func (m *MEC) Tags() []Tag {
	keys := make([]string, 0, len(m.Spec.Tags))
	for k := range m.Spec.Tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	tags := make([]Tag, 0, len(keys)+4)
	for _, k := range keys {
		tags = append(tags, Tag{k, m.Spec.Tags[k]})
	}
	return append(tags,
		Tag{TagClusterID, m.ID},
		Tag{TagManaged, "true"},
		Tag{TagName, m.Name},
		Tag{"Name", "mecd-" + m.Name},
	)
}

// ProvisionExecution is the name of a MEC's provisioning execution: the
// cluster id, so a retried start can never make a second run.
func ProvisionExecution(clusterID string) string { return clusterID }

// TeardownExecution is the name of a MEC's teardown: fixed, so the API and
// the sweeper can never run two at once. Names are unique for 90 days, so
// after a teardown that ended without deleting the MEC (failed, aborted,
// timed out) the next attempt is numbered: teardown-<id>-2, -3, ...
func TeardownExecution(clusterID string, attempt int) string {
	if attempt <= 1 {
		return "teardown-" + clusterID
	}
	return "teardown-" + clusterID + "-" + strconv.Itoa(attempt)
}

// RollbackExecution is the name of a MEC's rollback by the reconciler:
// fixed, so two reconciler runs cannot start two.
func RollbackExecution(clusterID string) string { return "rollback-" + clusterID }

// ScaleExecution is the name of a MEC's operation number n: the record's
// operation count makes it, so a repeated start finds the run going, and
// two operations on one MEC can never share a run.
func ScaleExecution(clusterID string, n int) string {
	return "scale-" + clusterID + "-" + strconv.Itoa(n)
}

// ExecutionArn derives an execution's ARN from its state machine's and its
// name ("" if stateMachineArn is not a state machine ARN).
func ExecutionArn(stateMachineArn, name string) string {
	before, after, ok := strings.Cut(stateMachineArn, ":stateMachine:")
	if !ok {
		return ""
	}
	return before + ":execution:" + after + ":" + name
}
