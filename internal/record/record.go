// Package record is the MEC cluster record and its DynamoDB store: one item
// per MEC, plus the name-claim item that keeps names unique among live MECs,
// written together in transactions and updated only under a version check.
package record

import (
	"crypto/rand"
	"encoding/binary"
	"time"

	"github.com/mecd/mecd/internal/spec"
)

// Status is a MEC's lifecycle state.
type Status string

// Statuses.
const (
	Creating Status = "CREATING"
	Ready    Status = "READY"
	Failed   Status = "FAILED"
	Deleting Status = "DELETING"
	Deleted  Status = "DELETED"
)

// Live reports whether a MEC in s still holds its name.
func (s Status) Live() bool { return s != Deleted }

// Step outcomes.
const (
	Running   = "running"
	Succeeded = "succeeded"
	StepError = "failed"
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

// Node is one EC2 instance of a MEC.
type Node struct {
	Index      int    `json:"index"`
	InstanceID string `json:"instanceId"`
	Role       string `json:"role"`
	PrivateIP  string `json:"privateIp,omitempty"`
	PublicIP   string `json:"publicIp,omitempty"`
	Joined     bool   `json:"joined,omitempty"`
}

// Resolved holds what the workflow derived from the spec and the region.
type Resolved struct {
	Architecture     string `json:"architecture"`
	AmiID            string `json:"amiId"`
	VpcID            string `json:"vpcId"`
	SubnetID         string `json:"subnetId"`
	AvailabilityZone string `json:"availabilityZone,omitempty"`
	VpcCIDR          string `json:"vpcCidr,omitempty"`
}

// MEC is the cluster record. It never holds a secret: the join token and
// the kubeconfig live only in Parameter Store.
type MEC struct {
	ID                   string     `json:"id"`
	Name                 string     `json:"name"`
	Status               Status     `json:"status"`
	Region               string     `json:"region"`
	Spec                 spec.Spec  `json:"spec"`
	Resolved             *Resolved  `json:"resolved,omitempty"`
	SecurityGroupID      string     `json:"securityGroupId,omitempty"`
	Nodes                []Node     `json:"nodes,omitempty"`
	Endpoint             string     `json:"endpoint,omitempty"`
	KubeconfigParameter  string     `json:"kubeconfigParameter,omitempty"`
	JoinCheck            string     `json:"joinCheck,omitempty"` // node 0's certificate hash prefix (public)
	Steps                []Step     `json:"steps,omitempty"`
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
		if s.Outcome == Running {
			return // a retried invocation of the same attempt
		}
		attempt = s.Attempt + 1
	}
	m.Steps = append(m.Steps, Step{Name: name, Outcome: Running, StartedAt: now, Attempt: attempt})
}

// EndStep records a step's outcome; it starts the step first if needed.
func (m *MEC) EndStep(name, outcome, detail string, now time.Time) {
	s := m.Step(name)
	if s == nil || s.Outcome != Running {
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
		if m.Steps[i].Outcome == Running {
			return m.Steps[i].Name
		}
	}
	return ""
}

// Node0 is the first control-plane node, or nil before launch.
func (m *MEC) Node0() *Node {
	for i := range m.Nodes {
		if m.Nodes[i].Index == 0 {
			return &m.Nodes[i]
		}
	}
	return nil
}

// InstanceIDs lists the node instance ids in index order.
func (m *MEC) InstanceIDs() []string {
	out := make([]string, 0, len(m.Nodes))
	for _, n := range m.Nodes {
		out = append(out, n.InstanceID)
	}
	return out
}

const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// NewID returns a unique id that sorts by creation time ("mec-" + 10 time
// chars + 16 random chars, lowercase Crockford base32): usable in tags,
// parameter paths, security group and execution names.
func NewID(now time.Time) string {
	var b [26]byte
	ms := uint64(now.UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = crockford[ms&31]
		ms >>= 5
	}
	var r [10]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails on Linux
	hi := binary.BigEndian.Uint64(r[:8])
	lo := uint64(binary.BigEndian.Uint16(r[8:]))
	for i := 0; i < 16; i++ {
		if i < 12 {
			b[10+i] = crockford[hi&31]
			hi >>= 5
		} else {
			b[10+i] = crockford[lo&31]
			lo >>= 5
		}
	}
	return "mec-" + string(b[:])
}
