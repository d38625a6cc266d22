package ssmsim

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// host is one simulated EC2 host: a directory tree plus the state the snap and
// microk8s stand-ins keep for it. Guarded by Sim.mu.
type host struct {
	id, region, az, profileArn string
	arch                       string
	ip, publicIP, hostname     string
	tags                       map[string]string
	launchIndex                int

	dir  string // <Dir>/<id>
	bin  string // <dir>/bin: snap, microk8s (first on PATH)
	root string // <dir>/root: MECD_HOST_ROOT, the host's "/"

	storage hostStorage // block devices, mounts, services (storage.go)

	// cloud-init's run of the user data at first boot (nil: not booted here)
	ci *cloudInit
	// downAt: the instance stopped or terminated then (zero: it runs). Its
	// kubelet and its dqlite end with it.
	downAt time.Time

	// snap
	refreshHeldAt         time.Time // `snap refresh --hold`: no auto-refresh starts after it
	installed, installing bool
	channel               string
	installedAt           time.Time
	launchRaw             []byte
	launch                *LaunchConfig
	// kubeletArgs: the kubelet arguments the simulator follows (those
	// launch configurations and addons set), by flag.
	kubeletArgs map[string]string
	certDER     []byte
	certSANs    []string

	// cluster: every installed host belongs to a cluster (alone at first).
	cluster *cluster
	// partial is set when a join of this host did not complete (injected fault,
	// killed join) or it was force-removed from its cluster: it must `microk8s leave`
	// before it can join again.
	partial string
	// launch-configuration join (join: in .microk8s.yaml), run in the background after install
	launchJoin    string // "", "pending", "joined", "failed"
	launchJoinErr string
}

func hostnameFor(ip, id string) string {
	if ip == "" {
		return "ip-" + strings.TrimPrefix(id, "i-")
	}
	return "ip-" + strings.ReplaceAll(ip, ".", "-")
}

// ensureHost returns the host of instance id, creating its directory tree on
// first use. Caller holds s.mu.
func (s *Sim) ensureHostLocked(inst Instance) (*host, error) {
	h := s.hosts[inst.ID]
	if h == nil {
		dir := filepath.Join(s.cfg.Dir, inst.ID)
		h = &host{id: inst.ID, dir: dir, bin: filepath.Join(dir, "bin"), root: filepath.Join(dir, "root")}
		for _, d := range []string{h.bin, filepath.Join(h.root, "root"), filepath.Join(h.root, "tmp")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, fmt.Errorf("create host %s: %w", inst.ID, err)
			}
		}
		// The stand-ins are this binary under another name; init() dispatches on the name.
		for _, name := range standIns {
			link := filepath.Join(h.bin, name)
			_ = os.Remove(link)
			if err := os.Symlink(s.exe, link); err != nil {
				return nil, fmt.Errorf("create host %s: %w", inst.ID, err)
			}
		}
		// Ubuntu's cloud image mounts its root by label (/etc/fstab).
		if err := os.MkdirAll(filepath.Join(h.root, "etc"), 0o755); err != nil {
			return nil, fmt.Errorf("create host %s: %w", inst.ID, err)
		}
		if err := os.WriteFile(filepath.Join(h.root, "etc/fstab"), []byte("LABEL=cloudimg-rootfs\t/\text4\tdiscard,commit=30,errors=remount-ro\t0 1\n"), 0o644); err != nil {
			return nil, fmt.Errorf("create host %s: %w", inst.ID, err)
		}
		h.storage = newHostStorage()
		s.hosts[inst.ID] = h
	}
	if err := h.makeDevicesLocked(inst.Disks); err != nil {
		return nil, fmt.Errorf("host %s devices: %w", inst.ID, err)
	}
	// Addresses can be assigned after the first sighting; keep them current.
	h.region, h.profileArn, h.tags, h.launchIndex = inst.Region, inst.IamInstanceProfileArn, inst.Tags, inst.LaunchIndex
	h.az, h.arch = inst.AvailabilityZone, inst.Architecture
	if h.arch == "" {
		h.arch = "arm64" // Instance.Architecture's default
	}
	if h.arch == "x86_64" {
		h.arch = "amd64" // Kubernetes' name
	}
	if h.az == "" && inst.Region != "" {
		h.az = inst.Region + "a"
	}
	if inst.PrivateIP != "" {
		h.ip = inst.PrivateIP
	}
	h.publicIP = inst.PublicIP
	h.hostname = hostnameFor(h.ip, h.id)
	return h, nil
}

// hostFor looks the instance up and returns its host.
func (s *Sim) hostFor(id string) (*host, Instance, error) {
	inst, ok := s.instance(id)
	if !ok {
		return nil, Instance{}, fmt.Errorf("unknown instance %s", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.ensureHostLocked(inst)
	return h, inst, err
}

// hostByIPLocked finds the host owning a private IP as seen from host from
// (a join target): private addresses repeat across regions' default VPCs and
// are reused after termination, so only a live host of the same region counts.
// Caller holds s.mu.
func (s *Sim) hostByIPLocked(from *host, ip string) *host {
	for _, h := range s.hosts {
		if h.ip != ip || h.region != from.region {
			continue
		}
		if inst, ok := s.cfg.Instances.Instance(h.id); ok && inst.State != "running" {
			continue
		}
		return h
	}
	return nil
}

// HostState is a snapshot of a simulated host, for tests and the demo.
type HostState struct {
	InstanceID, PrivateIP, Hostname string
	Dir, RootDir                    string // host directory and MECD_HOST_ROOT

	// Mounts: mount point -> device (storage.go), as the host names them.
	Mounts map[string]string
	// ClaimClasses: the StorageClass each workload's claims got
	// ("namespace/name"), and the cluster's default class now.
	ClaimClasses map[string]string
	DefaultClass string
	// LonghornDiskNodes: the instances whose Longhorn node has a Ready
	// disk (longhorn.go), in join order.
	LonghornDiskNodes []string

	Installed, Installing bool
	Channel               string
	LaunchConfigRaw       string        // .microk8s.yaml as read at install ("" if none)
	LaunchConfig          *LaunchConfig // parsed
	CertSANs              []string      // server.crt SANs (IPs and DNS names)
	CertCheck             string        // first 12 hex of SHA-256 of server.crt DER

	// ClusterID names this host's cluster (the founding instance id); ClusterLeader
	// is its current leader (the founder unless it left).
	ClusterID, ClusterLeader string
	Members                  []Member // of this host's cluster, in join order
	DqliteKnown              []string // addresses the cluster's dqlite knows, incl. partial joins
	Addons                   []string // enabled by the user or the launch configuration, sorted
	// KubeletArgs are the kubelet arguments launch configurations, joins
	// and addons set on this node, by flag (a copy).
	KubeletArgs map[string]string
	// Tokens registered on this host (values for test assertions only; never logged).
	Tokens []Token

	PartialJoin   bool   // a join did not complete: needs `microk8s leave`
	PartialReason string // why
	LaunchJoin    string // launch-configuration join: "", "pending", "joined", "failed"
	LaunchJoinErr string
}

// Member is one node of a cluster.
type Member struct {
	InstanceID, IP, Hostname string
	Role                     string // "control-plane" or "worker"
	DqliteRole               string // "voter", "standby" or "" (workers, nodes that left)
	Voter                    bool
	CheckVerified            bool // joined with a certificate check that matched
	SkipVerify               bool // joined with --skip-verify
	Left                     bool // ran `microk8s leave`; listed NotReady until remove-node
	JoinedAt                 time.Time
}

// Token is a join token registered with add-node or the launch configuration.
type Token struct {
	Value      string
	Expiry     time.Time // zero: none
	SingleUse  bool
	Persistent bool
}

// Host returns a snapshot of the host of instanceID; false if it has no host yet.
func (s *Sim) Host(instanceID string) (HostState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hosts[instanceID]
	if h == nil {
		return HostState{}, false
	}
	st := HostState{
		InstanceID: h.id, PrivateIP: h.ip, Hostname: h.hostname, Dir: h.dir, RootDir: h.root,
		Installed: h.installed, Installing: h.installing, Channel: h.channel,
		LaunchConfigRaw: string(h.launchRaw), KubeletArgs: maps.Clone(h.kubeletArgs),
		CertSANs:    append([]string(nil), h.certSANs...),
		PartialJoin: h.partial != "", PartialReason: h.partial,
		LaunchJoin: h.launchJoin, LaunchJoinErr: h.launchJoinErr,
		Mounts: maps.Clone(h.storage.mounts), ClaimClasses: map[string]string{},
	}
	if h.launch != nil {
		lc := *h.launch
		st.LaunchConfig = &lc
	}
	if h.certDER != nil {
		st.CertCheck = certCheck(h.certDER)
	}
	st.Tokens = h.tokenList()
	sort.Slice(st.Tokens, func(i, j int) bool { return st.Tokens[i].Value < st.Tokens[j].Value })
	if c := h.cluster; c != nil {
		st.ClusterID, st.ClusterLeader = c.id, c.leader
		for _, m := range c.members {
			st.Members = append(st.Members, Member{
				InstanceID: m.instanceID, IP: m.ip, Hostname: m.hostname, Role: m.role,
				DqliteRole: m.dqliteRole, Voter: m.dqliteRole == "voter",
				CheckVerified: m.checkVerified, SkipVerify: m.skipVerify, Left: m.left, JoinedAt: m.joinedAt,
			})
		}
		for ip := range c.dqlite {
			st.DqliteKnown = append(st.DqliteKnown, ip)
		}
		sort.Strings(st.DqliteKnown)
		for a := range c.addons {
			st.Addons = append(st.Addons, a)
		}
		for _, o := range c.objects {
			if len(o.claims) > 0 {
				st.ClaimClasses[o.namespace+"/"+o.name] = o.claimClass
			}
		}
		st.DefaultClass = s.defaultClassLocked(c)
		st.LonghornDiskNodes = s.longhornDiskNodesLocked(c)
		sort.Strings(st.Addons)
	}
	return st, true
}
