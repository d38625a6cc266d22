package nodesim

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/mecd/mecd/test/nodesim/ec2sim"
	"github.com/mecd/mecd/test/nodesim/fault"
	"github.com/mecd/mecd/test/nodesim/fidelity"
	"github.com/mecd/mecd/test/nodesim/latency"
	"github.com/mecd/mecd/test/nodesim/ssmsim"
)

// Config configures a simulator.
type Config struct {
	Dir      string // host directories live here
	Endpoint string // the front's base URL, as seen from a simulated host
	Scale    float64
	Mode     latency.Mode
	Seed     uint64
	Events   ssmsim.EventSink
	Logger   *slog.Logger
}

// Sim is the node simulator: EC2 hosts and the SSM agent.
type Sim struct {
	Latency *latency.Model
	Faults  *fault.Injector
	// Fidelity holds AWS's, Ubuntu's and MicroK8s' documented behaviours,
	// on at realistic rates; tests force one to prove mecd survives it.
	Fidelity *fidelity.Set
	EC2Sim   *ec2sim.Sim
	SSMSim   *ssmsim.Sim
}

// New builds a simulator.
func New(cfg Config) (*Sim, error) {
	if cfg.Scale <= 0 {
		cfg.Scale = 0.01
	}
	if cfg.Mode == "" {
		cfg.Mode = latency.Typical
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	lat := latency.New(cfg.Scale, cfg.Mode, cfg.Seed)
	faults := fault.New(cfg.Seed + 7)
	fid := fidelity.New(cfg.Seed + 17)
	e := ec2sim.New(lat, cfg.Seed+13)
	e.SetFidelity(fid)
	s, err := ssmsim.New(ssmsim.Config{
		Instances: instances{e},
		Events:    cfg.Events,
		Latency:   lat,
		Faults:    faults,
		Fidelity:  fid,
		Dir:       cfg.Dir,
		Endpoint:  cfg.Endpoint,
		Logger:    cfg.Logger,
	})
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("node simulator: %w", err)
	}
	// Cloud-init runs the user data at first boot, once the instance runs.
	// A host's processes end when its instance stops or terminates.
	e.OnStateChange(func(in ec2sim.Instance) {
		switch in.State {
		case ec2sim.StateRunning:
			s.Boot(in.ID)
		case ec2sim.StatePending:
		default: // shutting-down, terminated
			s.Down(in.ID)
		}
	})
	return &Sim{Latency: lat, Faults: faults, Fidelity: fid, EC2Sim: e, SSMSim: s}, nil
}

// EC2 serves the EC2 Query API.
func (s *Sim) EC2() http.Handler { return s.EC2Sim }

// RunCommand serves SSM Run Command.
func (s *Sim) RunCommand() http.Handler { return s.SSMSim }

// Control serves /_sim/ (stand-ins, IMDSv2).
func (s *Sim) Control() http.Handler { return s.SSMSim.ControlHandler() }

// NodeCaller is the instance whose role credentials signed a call.
type NodeCaller struct {
	InstanceID, Region string
	// Role is the instance profile's role, named as the profile (mecd
	// names both alike; IMDS shows the role's name).
	Role string
}

// Node maps an access key handed out by the IMDS stand-in to its instance.
func (s *Sim) Node(accessKeyID string) (NodeCaller, bool) {
	id, ok := s.SSMSim.CredentialOwner(accessKeyID)
	if !ok {
		return NodeCaller{}, false
	}
	inst, ok := s.EC2Sim.Instance(id)
	if !ok {
		return NodeCaller{InstanceID: id}, true
	}
	role := inst.IamInstanceProfileArn
	if i := strings.LastIndex(role, "/"); i >= 0 {
		role = role[i+1:]
	}
	return NodeCaller{InstanceID: id, Region: inst.Region, Role: role}, true
}

// Caller is the host whose instance credentials signed a call (nil when
// accessKeyID is not a host's), for host-scoped API faults.
func (s *Sim) Caller(accessKeyID string) *fault.Caller {
	id, ok := s.SSMSim.CredentialOwner(accessKeyID)
	if !ok {
		return nil
	}
	inst, ok := s.EC2Sim.Instance(id)
	if !ok {
		return nil
	}
	return &fault.Caller{Tags: inst.Tags, Index: inst.LaunchIndex}
}

// InstanceTags are an instance's tags now (nil if there is no such instance).
func (s *Sim) InstanceTags(id string) map[string]string {
	inst, ok := s.EC2Sim.Instance(id)
	if !ok {
		return nil
	}
	return nonNil(inst.Tags)
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// GroupTags are a security group's tags now (nil if there is no such group).
func (s *Sim) GroupTags(id string) map[string]string {
	for _, g := range s.EC2Sim.SecurityGroups() {
		if g.ID == id {
			return nonNil(g.Tags)
		}
	}
	return nil
}

// KMSKeyTags are a customer managed key's tags (nil if there is no such key).
func (s *Sim) KMSKeyTags(arn string) map[string]string { return s.EC2Sim.KMSKeyTags(arn) }

// CredentialExpired reports whether a node's access key has expired.
func (s *Sim) CredentialExpired(accessKeyID string) bool {
	return s.SSMSim.CredentialExpired(accessKeyID)
}

// ProfileCreated tells EC2 an instance profile was just created in IAM.
func (s *Sim) ProfileCreated(name string) { s.EC2Sim.ProfileCreated(name) }

// Close stops every host process and timer.
func (s *Sim) Close() {
	s.SSMSim.Close()
	s.EC2Sim.Close()
}

// instances adapts ec2sim to what ssmsim consumes.
type instances struct{ e *ec2sim.Sim }

func (i instances) Instance(id string) (ssmsim.Instance, bool) {
	in, ok := i.e.Instance(id)
	if !ok {
		return ssmsim.Instance{}, false
	}
	var disks []ssmsim.Disk
	for _, v := range in.Volumes {
		disks = append(disks, ssmsim.Disk{VolumeID: v.ID, Root: v.DeviceName == in.RootDevice})
	}
	return ssmsim.Instance{
		ID: in.ID, Region: in.Region, State: in.State, PrivateIP: in.PrivateIP, PublicIP: in.PublicIP,
		IamInstanceProfileArn: in.IamInstanceProfileArn, LaunchIndex: in.LaunchIndex, Tags: in.Tags,
		RunningAt: in.RunningAt, UserData: in.UserData, Disks: disks,
	}, true
}
