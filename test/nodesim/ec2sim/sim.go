// Package ec2sim is an in-memory test double of the EC2 actions mecd uses,
// speaking EC2's Query protocol (form-encoded POST, XML answers as EC2 sends
// them) so the real aws-sdk-go-v2 EC2 client, its waiters and paginators work
// against it. It keeps what AWS keeps (client tokens, tags, metadata options,
// block devices, instance profiles, security group rules incl. group pairs)
// and fails as AWS fails, with AWS's error codes and messages.
//
// It is a test double, not production code: the local runtime's front routes
// every EC2 request to a Sim. Resources live per region (from the SigV4
// credential scope); each region gets a default VPC on first use.
package ec2sim

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mecd/mecd/test/nodesim/fidelity"
	"github.com/mecd/mecd/test/nodesim/latency"
)

// Instance states and their EC2 codes.
const (
	StatePending      = "pending"
	StateRunning      = "running"
	StateShuttingDown = "shutting-down"
	StateTerminated   = "terminated"
)

var stateCodes = map[string]int{StatePending: 0, StateRunning: 16, StateShuttingDown: 32, StateTerminated: 48}

// Instance is a copy of a simulated instance's state.
type Instance struct {
	ID, Region, State, InstanceType, ImageID, Architecture, PrivateIP, PublicIP, SubnetID, VpcID string
	RootDevice                                                                                   string
	IamInstanceProfileArn, HTTPTokens, ClientToken, ReservationID                                string
	// UserData is kept as sent: base64, as the EC2 API carries it.
	UserData         string
	LaunchIndex      int
	SecurityGroupIDs []string
	Tags             map[string]string
	// Volumes are the volumes attached at launch, as they were when last
	// attached; a volume deleted at termination stays listed here.
	Volumes                             []Volume
	LaunchedAt, RunningAt, TerminatedAt time.Time

	AvailabilityZone        string
	HTTPEndpoint            string
	HTTPPutResponseHopLimit int
}

// Volume is a copy of a simulated EBS volume.
type Volume struct {
	ID, DeviceName, VolumeType     string
	Region, State                  string // State: in-use, available
	SizeGiB                        int
	Encrypted, DeleteOnTermination bool
	KmsKeyID                       string
	Tags                           map[string]string
}

// SecurityGroup is a copy of a simulated security group.
type SecurityGroup struct {
	ID, Region, Name, Description, VpcID string
	Tags                                 map[string]string
	Ingress, Egress                      []Rule
}

// Rule is one permission of a security group: the sources sharing a protocol,
// port range and description. FromPort and ToPort are -1 when the protocol
// has no ports (-1, i.e. all traffic).
type Rule struct {
	Protocol         string
	FromPort, ToPort int32
	CIDRs            []string
	IPv6CIDRs        []string
	GroupIDs         []string
	Description      string
}

// Sim is the EC2 test double. It is safe for concurrent use.
type Sim struct {
	lat      *latency.Model
	fidelity *fidelity.Set

	mu        sync.Mutex
	rng       *rand.Rand
	closed    bool
	ids       map[string]bool // every id handed out, so none repeats
	regions   map[string]*regionState
	instances map[string]*instance
	volumes   map[string]*volume
	groups    map[string]*group
	vpcs      map[string]*vpc
	subnets   map[string]*subnet
	rtbs      map[string]*routeTable
	igws      map[string]*igw
	images    map[string]map[string]*image // region -> image id
	launches  map[string]*launch           // region + "\x00" + client token
	publicIPs map[string]bool
	// profilesReadyAt: instance profile name -> when RunInstances accepts it.
	profilesReadyAt map[string]time.Time
	// kmsKeys stands in for KMS: the customer managed keys a test made.
	kmsKeys map[string]KMSKey

	// State change delivery is serialised through a queue so subscribers see
	// each instance's changes in order, outside s.mu, and may call back in.
	evMu     sync.Mutex
	subs     []func(Instance)
	queue    []Instance
	draining bool
}

// New returns an empty Sim. lat times RunInstances, boot and termination; a
// nil model makes every phase instant. seed makes resource ids reproducible.
func New(lat *latency.Model, seed uint64) *Sim {
	return &Sim{
		lat:       lat,
		rng:       rand.New(rand.NewPCG(seed, seed^0x5bd1e995)),
		ids:       map[string]bool{},
		kmsKeys:   map[string]KMSKey{},
		regions:   map[string]*regionState{},
		instances: map[string]*instance{},
		volumes:   map[string]*volume{},
		groups:    map[string]*group{},
		vpcs:      map[string]*vpc{},
		subnets:   map[string]*subnet{},
		rtbs:      map[string]*routeTable{},
		igws:      map[string]*igw{},
		images:    map[string]map[string]*image{},
		launches:  map[string]*launch{},
		publicIPs: map[string]bool{},

		profilesReadyAt: map[string]time.Time{},
	}
}

// Close stops every pending state timer; instances stay in the state they
// have. The Sim still answers requests, but no longer schedules transitions.
func (s *Sim) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, in := range s.instances {
		if in.timer != nil {
			in.timer.Stop()
			in.timer = nil
		}
	}
}

// OnStateChange registers fn, called with a copy of the instance on every
// state change (launch as pending, running, shutting-down, terminated), in
// order, outside the Sim's locks.
func (s *Sim) OnStateChange(fn func(Instance)) {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	s.subs = append(s.subs, fn)
}

// emit queues a state change. Callers hold s.mu, so changes are queued in
// the order they happen (lock order: s.mu, then s.evMu).
func (s *Sim) emit(in *instance) {
	ev := in.snapshot()
	s.evMu.Lock()
	s.queue = append(s.queue, ev)
	s.evMu.Unlock()
}

// drain hands queued changes to subscribers, unless another goroutine is
// already doing so. Callers must not hold s.mu: subscribers may call back.
func (s *Sim) drain() {
	s.evMu.Lock()
	if s.draining {
		s.evMu.Unlock()
		return
	}
	s.draining = true
	for len(s.queue) > 0 {
		ev := s.queue[0]
		s.queue = s.queue[1:]
		subs := slices.Clone(s.subs)
		s.evMu.Unlock()
		for _, fn := range subs {
			fn(ev)
		}
		s.evMu.Lock()
	}
	s.draining = false
	s.evMu.Unlock()
}

// SetFidelity turns on the documented behaviours of f (nil: none).
func (s *Sim) SetFidelity(f *fidelity.Set) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fidelity = f
}

// Instance returns a copy of one instance.
func (s *Sim) Instance(id string) (Instance, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	if !ok {
		return Instance{}, false
	}
	return in.snapshot(), true
}

// Instances returns copies of every instance, terminated ones included,
// ordered by launch time then id.
func (s *Sim) Instances() []Instance {
	return snapshots(s, s.instances, (*instance).snapshot, func(a, b Instance) int {
		if c := a.LaunchedAt.Compare(b.LaunchedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// Volumes returns copies of every volume that exists (a volume deleted
// with its instance is gone), ordered by id.
func (s *Sim) Volumes() []Volume {
	return snapshots(s, s.volumes, (*volume).snapshot, func(a, b Volume) int { return strings.Compare(a.ID, b.ID) })
}

// SecurityGroups returns copies of every security group in every region,
// default groups included, ordered by id.
func (s *Sim) SecurityGroups() []SecurityGroup {
	return snapshots(s, s.groups, (*group).snapshot, func(a, b SecurityGroup) int { return strings.Compare(a.ID, b.ID) })
}

// snapshots copies every item of m under the lock, in cmp's order.
func snapshots[T, S any](s *Sim, m map[string]T, snap func(T) S, cmp func(a, b S) int) []S {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]S, 0, len(m))
	for _, it := range m {
		out = append(out, snap(it))
	}
	slices.SortFunc(out, cmp)
	return out
}

// newID returns an unused id of AWS's form: prefix-17 lowercase hex. Callers
// hold s.mu.
func (s *Sim) newID(prefix string) string {
	const hex = "0123456789abcdef"
	for {
		var b [17]byte
		for i := range b {
			b[i] = hex[s.rng.IntN(16)]
		}
		id := prefix + "-" + string(b[:])
		if !s.ids[id] {
			s.ids[id] = true
			return id
		}
	}
}

// delay draws a phase's scaled duration; a nil model is instant.
func (s *Sim) delay(p latency.Phase) time.Duration {
	if s.lat == nil {
		return 0
	}
	return s.lat.Delay(p)
}

// call is one request being served.
type call struct {
	ctx    context.Context
	region string
	p      params
}

// handler serves one action: it writes the answer's body (inside the
// <ActionResponse> element, after requestId) or returns an error. Handlers
// take s.mu themselves.
type handler func(s *Sim, c *call, x *xmlw) error

var handlers = map[string]handler{
	"RunInstances":                  (*Sim).runInstances,
	"DescribeInstances":             (*Sim).describeInstances,
	"TerminateInstances":            (*Sim).terminateInstances,
	"DescribeVolumes":               (*Sim).describeVolumes,
	"DescribeImages":                (*Sim).describeImages,
	"DescribeInstanceTypes":         (*Sim).describeInstanceTypes,
	"CreateSecurityGroup":           (*Sim).createSecurityGroup,
	"DeleteSecurityGroup":           (*Sim).deleteSecurityGroup,
	"DescribeSecurityGroups":        (*Sim).describeSecurityGroups,
	"AuthorizeSecurityGroupIngress": func(s *Sim, c *call, x *xmlw) error { return s.authorize(c, x, false) },
	"AuthorizeSecurityGroupEgress":  func(s *Sim, c *call, x *xmlw) error { return s.authorize(c, x, true) },
	"RevokeSecurityGroupIngress":    func(s *Sim, c *call, x *xmlw) error { return s.revoke(c, x, false) },
	"RevokeSecurityGroupEgress":     func(s *Sim, c *call, x *xmlw) error { return s.revoke(c, x, true) },
	"CreateTags":                    (*Sim).createTags,
	"DeleteTags":                    (*Sim).deleteTags,
	"DescribeVpcs":                  (*Sim).describeVpcs,
	"DescribeSubnets":               (*Sim).describeSubnets,
	"DescribeRouteTables":           (*Sim).describeRouteTables,
	"DescribeAvailabilityZones":     (*Sim).describeAvailabilityZones,
	"GetEbsEncryptionByDefault":     (*Sim).getEbsEncryptionByDefault,
	"GetEbsDefaultKmsKeyId":         (*Sim).getEbsDefaultKmsKeyID,
}

// ServeHTTP answers one EC2 Query request.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		WriteError(w, http.StatusBadRequest, "MalformedQueryString", fmt.Sprintf("could not parse the request: %v", err))
		return
	}
	action := r.Form.Get("Action")
	if action == "" {
		WriteError(w, http.StatusBadRequest, "MissingAction", "The request must contain the parameter Action")
		return
	}
	h, ok := handlers[action]
	if !ok {
		WriteError(w, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service.", action))
		return
	}
	c := &call{ctx: r.Context(), region: regionOf(r), p: params{v: r.Form}}
	if dry, _, _ := c.p.boolOpt("DryRun"); dry {
		WriteError(w, http.StatusPreconditionFailed, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
		return
	}
	var x xmlw
	err := h(s, c, &x)
	s.drain() // the state changes the handler queued
	if err != nil {
		slog.Debug("ec2sim: action failed", "action", action, "region", c.region, "err", err)
		writeAPIError(w, err)
		return
	}
	var out xmlw
	out.raw(`<?xml version="1.0" encoding="UTF-8"?>`)
	out.raw("<" + action + `Response xmlns="` + xmlns + `">`)
	out.leaf("requestId", requestID())
	out.raw(x.b.String())
	out.close(action + "Response")
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = w.Write([]byte(out.b.String())) // the client went away: nothing to do
}
