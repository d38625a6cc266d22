package mec

import (
	"sort"
	"time"

	"github.com/mecd/mecd/internal/spec"
)

// Step outcomes.
const (
	OutcomeRunning   = "running"
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
)

// Step is the progress of one workflow step.
type Step struct {
	Name      string     `json:"name"`
	Outcome   string     `json:"outcome"`
	StartedAt time.Time  `json:"startedAt"`
	EndedAt   *time.Time `json:"endedAt,omitempty"`
	// Seconds is the step's duration once it ended.
	Seconds float64 `json:"seconds,omitempty"`
	Attempt int     `json:"attempt,omitempty"`
	Detail  string  `json:"detail,omitempty"`
	// CommandID is the SSM command of a node step's current attempt.
	CommandID string `json:"commandId,omitempty"`
}

// Node is one EC2 instance of a MEC. A node that is gone stays in the
// record as history: terminated, without its public address.
type Node struct {
	Index      int    `json:"index"`
	InstanceID string `json:"instanceId"`
	Role       string `json:"role"`
	PrivateIP  string `json:"privateIp,omitempty"`
	PublicIP   string `json:"publicIp,omitempty"`
	Joined     bool   `json:"joined,omitempty"`
	// Removed: an operation took the node out of the cluster (remove-node);
	// its instance ends next.
	Removed bool `json:"removed,omitempty"`
	// State is "" while the node is part of the MEC, NodeLeaving once an
	// operation chose to remove it (until its instance is gone), and
	// NodeTerminated after.
	State string `json:"state,omitempty"`
	// Operation is the number of the operation that added the node (0: the
	// provisioning).
	Operation int `json:"operation,omitempty"`
	// LaunchedAt and JoinedAt say when the node's instance was launched and
	// when it joined the cluster.
	LaunchedAt *time.Time `json:"launchedAt,omitempty"`
	JoinedAt   *time.Time `json:"joinedAt,omitempty"`
	// EndedAt and Reason say when and why a node left.
	EndedAt *time.Time `json:"endedAt,omitempty"`
	Reason  string     `json:"reason,omitempty"`
}

// Node states.
const (
	// NodeLeaving: an operation removes the node (drained, out of the
	// cluster, its instance terminating).
	NodeLeaving = "leaving"
	// NodeTerminated: the node's instance is gone.
	NodeTerminated = "terminated"
)

// Live reports whether the node is still part of its MEC (a leaving node
// is, until its instance is gone).
func (n Node) Live() bool { return n.State != NodeTerminated }

// Member reports whether the node is, or is to be, part of the cluster: live
// and not leaving.
func (n Node) Member() bool { return n.State == "" }

// IsNode0 reports whether n holds m's endpoint.
func (m *MEC) IsNode0(n Node) bool { return n.Index == m.EndpointNode }

// LiveNodes are the nodes still part of the MEC.
func (m *MEC) LiveNodes() []Node {
	var out []Node
	for _, n := range m.Nodes {
		if n.Live() {
			out = append(out, n)
		}
	}
	return out
}

// EndNodes marks every live node terminated, for why (its public address
// is given back with the instance).
func (m *MEC) EndNodes(why string, now time.Time) {
	for i := range m.Nodes {
		if n := &m.Nodes[i]; n.Live() {
			end := now
			n.State, n.EndedAt, n.Reason, n.PublicIP = NodeTerminated, &end, why, ""
		}
	}
}

// Resolved holds what the spec leaves to the region, fixed once before
// anything is created so every later step (and every retry) uses the same.
type Resolved struct {
	Architecture string `json:"architecture"` // arm64 or x86_64
	AmiID        string `json:"amiId"`
	// RootDevice is the AMI's root device name: only a block device mapping
	// of that name sizes and encrypts the root volume.
	RootDevice       string `json:"rootDevice,omitempty"`
	VpcID            string `json:"vpcId"`
	SubnetID         string `json:"subnetId"`
	AvailabilityZone string `json:"availabilityZone,omitempty"`
	SubnetCIDR       string `json:"subnetCidr,omitempty"`
	VpcCIDR          string `json:"vpcCidr,omitempty"`
}

// SpecCheck is what a MEC's region makes of its spec (the check-spec
// function's answer to the API): the resolution, or the fields the region
// refuses with what would be valid.
type SpecCheck struct {
	Resolved *Resolved         `json:"resolved,omitempty"`
	Fields   map[string]string `json:"fields,omitempty"`
}

// MEC is the cluster record. It never holds a secret: the join token and
// the kubeconfig live only in Parameter Store.
type MEC struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status Status `json:"status"`
	Region string `json:"region"`
	// Owner is the IAM principal that created the MEC through the API, as
	// API Gateway's SigV4 check reported it (requestContext.identity.userArn):
	// a user ARN, or an STS session ARN for role credentials (see RoleOf).
	// It is empty when the MEC came through a console run of the state
	// machine, which has no API caller, or before owners were recorded.
	Owner              string    `json:"owner,omitempty"`
	Spec               spec.Spec `json:"spec"`
	Resolved           *Resolved `json:"resolved,omitempty"`
	SecurityGroupID    string    `json:"securityGroupId,omitempty"`
	InstanceProfileArn string    `json:"instanceProfileArn,omitempty"`
	// NodeRole names the nodes' role and instance profile when the MEC took
	// a spare made ahead of it (SpareRoleName); "" is NodeRoleName(ID).
	NodeRole string `json:"nodeRole,omitempty"`
	Nodes    []Node `json:"nodes,omitempty"`
	// EndpointNode is the index of the node the endpoint and the kubeconfig
	// point at ("node 0"): 0 until a repair replaced that node, when the
	// oldest healthy control-plane node takes it over.
	EndpointNode int    `json:"endpointNode,omitempty"`
	Endpoint     string `json:"endpoint,omitempty"`
	// DegradedCause says why a MEC is DEGRADED: which nodes are lost, and
	// why a repair did not or could not mend it.
	DegradedCause       string `json:"degradedCause,omitempty"`
	KubeconfigParameter string `json:"kubeconfigParameter,omitempty"`
	JoinCheck           string `json:"joinCheck,omitempty"` // node 0's certificate hash prefix (public)
	// Addons say how far each addon of the spec got, in the spec's order:
	// "enabled" (microk8s enable succeeded) for MicroK8s' own, "ready" for
	// mecd's once its rollouts, jobs and pings said so.
	Addons []AddonState `json:"addonStates,omitempty"`
	Steps  []Step       `json:"steps,omitempty"`
	// Operations are the changes asked of the MEC after its provisioning
	// (a scale), oldest first; the last is the one running while the
	// status is SCALING.
	Operations []Operation `json:"operations,omitempty"`
	// Lease is held by a step that may create resources (launch-nodes,
	// node-command) while it runs: a cleanup waits for it, so nothing is
	// made after the cleanup looked.
	Lease *Lease `json:"lease,omitempty"`
	// CommandIDs are every SSM command sent to the MEC's nodes (each step's
	// every attempt), so the cleanup removes their command waits.
	CommandIDs           []string   `json:"commandIds,omitempty"`
	FailedStep           string     `json:"failedStep,omitempty"`
	FailureCause         string     `json:"failureCause,omitempty"`
	ExecutionArn         string     `json:"executionArn,omitempty"`
	TeardownExecutionArn string     `json:"teardownExecutionArn,omitempty"`
	CreatedAt            time.Time  `json:"createdAt"`
	UpdatedAt            time.Time  `json:"updatedAt"`
	ReadyAt              *time.Time `json:"readyAt,omitempty"`
	DeletedAt            *time.Time `json:"deletedAt,omitempty"`
	ExpiresAt            *time.Time `json:"expiresAt,omitempty"`
	Version              int        `json:"version"`
	// Progress is computed from Steps and the plan for answers; it is
	// never stored.
	Progress *Progress `json:"progress,omitempty"`
}

// Lease says a step is running that may still create resources, until
// Until at the latest (its Lambda invocation's deadline).
type Lease struct {
	Step  string    `json:"step"`
	Until time.Time `json:"until"`
}

// Leased reports whether a step holds a lease at now.
func (m *MEC) Leased(now time.Time) bool { return m.Lease != nil && now.Before(m.Lease.Until) }

// New makes the record of a new MEC from a parsed spec: the one door every
// MEC comes through (the API, and console runs of the state machine). how
// says which door, for the record's first step. The API then sets Owner;
// a console run has no caller to record.
func New(sp spec.Spec, how string, now time.Time) *MEC {
	m := &MEC{ID: NewID(now), Name: sp.Name, Status: Creating, Region: sp.Region, Spec: sp, ExpiresAt: sp.ExpiresAt}
	m.StartStep(StepRecord, now)
	m.EndStep(StepRecord, OutcomeSucceeded, how, now)
	return m
}

// HoldsName reports whether m keeps its name from other MECs: every MEC that
// is not DELETED, but one that failed to resolve (it never created anything
// and never will, so its name goes back at once).
func (m *MEC) HoldsName() bool {
	return m.Status.Live() && !(m.Status == Failed && m.FailedStep == StepResolve)
}

// SetResolved records the spec's resolution in its region as the resolve step.
func (m *MEC) SetResolved(res Resolved, now time.Time) {
	m.Resolved = &res
	m.StartStep(StepResolve, now)
	m.EndStep(StepResolve, OutcomeSucceeded, res.Architecture+" "+res.AmiID+" in "+res.SubnetID, now)
}

// Fail moves a CREATING MEC to FAILED at step with cause; every step still
// running ends failed. It reports false when m was not CREATING.
func (m *MEC) Fail(step, cause string, now time.Time) bool {
	if m.Status != Creating {
		return false
	}
	for i := range m.Steps {
		if st := &m.Steps[i]; st.Outcome == OutcomeRunning {
			end := now
			st.Outcome, st.EndedAt, st.Seconds = OutcomeFailed, &end, end.Sub(st.StartedAt).Seconds()
		}
	}
	m.Status, m.FailedStep, m.FailureCause = Failed, step, cause
	return true
}

// Step returns the latest progress entry named name, or nil.
func (m *MEC) Step(name string) *Step {
	for i := len(m.Steps) - 1; i >= 0; i-- {
		if m.Steps[i].Name == name {
			return &m.Steps[i]
		}
	}
	return nil
}

// StartStep records that a step began (a new attempt if it ran before).
func (m *MEC) StartStep(name string, now time.Time) {
	attempt := 1
	if s := m.Step(name); s != nil {
		if s.Outcome == OutcomeRunning {
			return // a retried invocation of the same attempt
		}
		attempt = s.Attempt + 1
	}
	m.Steps = append(m.Steps, Step{Name: name, Outcome: OutcomeRunning, StartedAt: now, Attempt: attempt})
}

// EndStep records a step's outcome; it starts the step first if needed.
func (m *MEC) EndStep(name, outcome, detail string, now time.Time) {
	s := m.Step(name)
	if s == nil || s.Outcome != OutcomeRunning {
		m.StartStep(name, now)
		s = m.Step(name)
	}
	s.Outcome = outcome
	s.Detail = detail
	end := now
	s.EndedAt = &end
	s.Seconds = end.Sub(s.StartedAt).Seconds()
}

// RunningStep is the name of a step still running ("" if none): the step a
// failure happened in.
func (m *MEC) RunningStep() string {
	for i := len(m.Steps) - 1; i >= 0; i-- {
		if m.Steps[i].Outcome == OutcomeRunning {
			return m.Steps[i].Name
		}
	}
	return ""
}

// Node0 is the control-plane node that holds the endpoint and mints join
// tokens: the first node, until a repair replaced it (EndpointNode); nil
// before launch.
func (m *MEC) Node0() *Node {
	for i := range m.Nodes {
		if m.Nodes[i].Index == m.EndpointNode {
			return &m.Nodes[i]
		}
	}
	return nil
}

// InstanceIDs lists the member nodes' instance ids in index order.
func (m *MEC) InstanceIDs() []string {
	out := make([]string, 0, len(m.Nodes))
	for _, n := range m.MemberNodes() {
		out = append(out, n.InstanceID)
	}
	return out
}

// EndpointHost is the address the kubeconfig points at: node 0's public IP
// with a public endpoint, else its private IP ("" before launch).
func (m *MEC) EndpointHost() string {
	n0 := m.Node0()
	if n0 == nil {
		return ""
	}
	if m.Spec.PublicEndpoint {
		return n0.PublicIP
	}
	return n0.PrivateIP
}

// Operation kinds.
const (
	OperationScale = "scale"
	// OperationRepair replaces lost nodes: they are removed from the
	// cluster and as many new nodes of their roles join.
	OperationRepair = "repair"
)

// Operation is one change of a MEC after its provisioning: its history
// entry while it runs and after.
type Operation struct {
	// Number counts the MEC's operations from 1; it names the execution.
	Number int    `json:"number"`
	Kind   string `json:"kind"`
	// From and To are the node counts before and asked.
	From int `json:"from"`
	To   int `json:"to"`
	// Owner is the principal that asked for it (as MEC.Owner).
	Owner     string     `json:"owner,omitempty"`
	StartedAt time.Time  `json:"startedAt"`
	EndedAt   *time.Time `json:"endedAt,omitempty"`
	// Outcome is OutcomeRunning, OutcomeSucceeded or OutcomeFailed.
	Outcome      string `json:"outcome"`
	Detail       string `json:"detail,omitempty"`
	ExecutionArn string `json:"executionArn,omitempty"`
	// Remove and Add are the plan: the nodes that leave, by index, and the
	// roles of the nodes that join; HAControlPlane is the spec's after it.
	Remove         []int       `json:"remove,omitempty"`
	Add            []spec.Role `json:"add,omitempty"`
	HAControlPlane *bool       `json:"haControlPlane,omitempty"`
	// Undoing: the operation failed and its undo runs (the nodes it added
	// that did not join leave; the nodes it chose to remove that are still
	// in the cluster stay).
	Undoing bool `json:"undoing,omitempty"`
	// EndpointMoved: a repair of the endpoint's node moved the endpoint to
	// another control-plane node; the kubeconfig is stored again.
	EndpointMoved bool `json:"endpointMoved,omitempty"`
}

// Operation returns the latest operation, or nil.
func (m *MEC) Operation() *Operation {
	if len(m.Operations) == 0 {
		return nil
	}
	return &m.Operations[len(m.Operations)-1]
}

// EndOperation records the running operation's outcome (a no-op when none runs).
func (m *MEC) EndOperation(outcome, detail string, now time.Time) {
	op := m.Operation()
	if op == nil || op.Outcome != OutcomeRunning {
		return
	}
	end := now
	op.Outcome, op.Detail, op.EndedAt = outcome, detail, &end
}

// MemberNodes are the nodes that are, or are to be, part of the cluster.
func (m *MEC) MemberNodes() []Node {
	var out []Node
	for _, n := range m.Nodes {
		if n.Member() {
			out = append(out, n)
		}
	}
	return out
}

// NextNodeIndex is the index a new node gets: indices are never reused, so
// a node's history stays its own.
func (m *MEC) NextNodeIndex() int {
	next := 0
	for _, n := range m.Nodes {
		next = max(next, n.Index+1)
	}
	return next
}

// AddonState is one addon's state as node 0 last reported it.
type AddonState struct {
	Name  string `json:"name"`
	State string `json:"state"` // enabled, ready
	// Seconds is how long a mecd addon took from its apply to ready.
	Seconds float64 `json:"seconds,omitempty"`
}

// SetAddonState records an addon's state, keeping the spec's order.
func (m *MEC) SetAddonState(st AddonState) {
	for i := range m.Addons {
		if m.Addons[i].Name == st.Name {
			m.Addons[i] = st
			return
		}
	}
	m.Addons = append(m.Addons, st)
	order := func(name string) int {
		for i, a := range m.Spec.Addons {
			if a == name {
				return i
			}
		}
		return len(m.Spec.Addons)
	}
	sort.SliceStable(m.Addons, func(i, j int) bool { return order(m.Addons[i].Name) < order(m.Addons[j].Name) })
}
