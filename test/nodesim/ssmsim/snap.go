package ssmsim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mecd/mecd/test/nodesim/latency"
)

// Paths below the host root, as on a real host.
const (
	launchConfigPath = "var/snap/microk8s/common/.microk8s.yaml"
	certsDir         = "var/snap/microk8s/current/certs"
	snapBinMicrok8s  = "snap/bin/microk8s"
	snapRevision     = "8611"
)

// LaunchConfig is a MicroK8s launch configuration (version 0.1.0), the
// subset the simulator acts on. Other fields are accepted and ignored.
type LaunchConfig struct {
	Version                string        `yaml:"version"`
	ExtraSANs              []string      `yaml:"extraSANs"`
	Addons                 []LaunchAddon `yaml:"addons"`
	PersistentClusterToken string        `yaml:"persistentClusterToken"`
	Join                   *LaunchJoin   `yaml:"join"`
	// ExtraKubeletArgs are set in the node's kubelet arguments; a null
	// value removes one (microk8s-cluster-agent pkg/k8sinit/schema.go).
	ExtraKubeletArgs map[string]*string `yaml:"extraKubeletArgs"`
}

// LaunchAddon is an addon entry of a launch configuration.
type LaunchAddon struct {
	Name    string   `yaml:"name"`
	Disable bool     `yaml:"disable"`
	Args    []string `yaml:"args"`
}

// LaunchJoin makes a node join a cluster as soon as it is installed.
type LaunchJoin struct {
	URL    string `yaml:"url"`
	Worker bool   `yaml:"worker"`
}

// snap is the `snap` stand-in: install/list/remove microk8s, wait.
func (s *Sim) snap(ctx context.Context, h *host, args []string) result {
	if len(args) == 0 {
		return fail(1, "error: the required argument `<command>` was not provided\n")
	}
	switch args[0] {
	case "install":
		return s.snapInstall(ctx, h, args[1:])
	case "list":
		return s.snapList(h, args[1:])
	case "remove":
		return s.snapRemove(h, args[1:])
	case "wait":
		return s.snapWait(ctx, h, args[1:])
	case "refresh":
		return s.snapRefresh(h, args[1:])
	case "version":
		return success("snap    2.66.1+24.04\nsnapd   2.66.1+24.04\nseries  16\nubuntu  24.04\nkernel  6.8.0-1016-aws\n")
	default:
		return fail(1, fmt.Sprintf("error: unknown command %q, see 'snap help'.\n", args[0]))
	}
}

var channelRE = regexp.MustCompile(`^(latest|1\.(\d+))(/(stable|candidate|beta|edge))?$`)

// validChannel accepts the tracks MicroK8s publishes: latest and 1.20 to 1.36.
func validChannel(ch string) bool {
	m := channelRE.FindStringSubmatch(ch)
	if m == nil {
		return false
	}
	if m[1] == "latest" {
		return true
	}
	minor, _ := strconv.Atoi(m[2])
	return minor >= 20 && minor <= 36
}

func normalChannel(ch string) string {
	if ch == "" {
		return "latest/stable"
	}
	if !strings.Contains(ch, "/") {
		return ch + "/stable"
	}
	return ch
}

// kubeVersion is the Kubernetes version a channel installs.
func kubeVersion(ch string) string {
	if m := channelRE.FindStringSubmatch(ch); m != nil && m[1] != "latest" {
		return "v1." + m[2] + ".0"
	}
	return "v1.35.0"
}

func (s *Sim) snapInstall(ctx context.Context, h *host, args []string) result {
	var names []string
	classic, channel := false, ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--classic":
			classic = true
		case strings.HasPrefix(a, "--channel="):
			channel = strings.TrimPrefix(a, "--channel=")
		case a == "--channel" && i+1 < len(args):
			i++
			channel = args[i]
		case a == "--stable" || a == "--candidate" || a == "--beta" || a == "--edge":
			channel = "latest/" + strings.TrimPrefix(a, "--")
		case strings.HasPrefix(a, "-"):
			return fail(1, fmt.Sprintf("error: unknown flag `%s'\n", strings.TrimLeft(a, "-")))
		default:
			names = append(names, a)
		}
	}
	if len(names) == 0 {
		return fail(1, "error: the required argument `<snap> (at least 1 argument)` was not provided\n")
	}
	if len(names) > 1 || names[0] != "microk8s" {
		return fail(1, fmt.Sprintf("error: snap %q not found\n", names[0]))
	}
	if !classic {
		return fail(1, "error: This revision of snap \"microk8s\" was published using classic confinement and thus may\n"+
			"       perform arbitrary system changes outside of the security sandbox that snaps are usually\n"+
			"       confined to, which may put your system at risk.\n\n"+
			"       If you understand and want to proceed repeat the command including --classic.\n")
	}
	if channel != "" && !validChannel(channel) {
		return fail(1, fmt.Sprintf("error: snap \"microk8s\" not available on channel %q (see 'snap info microk8s')\n", channel))
	}
	channel = normalChannel(channel)

	s.mu.Lock()
	switch {
	case h.installed:
		s.mu.Unlock()
		return success("snap \"microk8s\" is already installed, see 'snap help refresh'\n")
	case !s.seededLocked(h):
		s.mu.Unlock()
		return fail(exitSnapRetry, errTooEarly)
	case h.installing:
		// snapd's ChangeConflictError (overlord/snapstate/conflict.go),
		// printed by the CLI as is, with the retryable exit code.
		s.mu.Unlock()
		return fail(exitSnapRetry, "error: snap \"microk8s\" has \"install-snap\" change in progress\n")
	}
	h.installing = true
	s.mu.Unlock()
	done := false
	defer func() {
		if !done {
			s.mu.Lock()
			h.installing = false
			s.mu.Unlock()
		}
	}()

	if !s.sleep(ctx, latency.SnapInstall) {
		return fail(1, "error: cannot perform the following tasks:\n- Download snap \"microk8s\" from channel \""+channel+"\" (cancelled)\n")
	}
	// The configure hook reads the launch configuration at the end of the install.
	raw, lc, err := readLaunchConfig(h.root)
	if err != nil {
		return fail(1, "error: cannot perform the following tasks:\n- Run configure hook of \"microk8s\" snap if present (run hook \"configure\": "+err.Error()+")\n")
	}
	var extra []string
	if lc != nil {
		extra = lc.ExtraSANs
	}
	applied := lc
	if applied == nil {
		applied = defaultLaunchConfig()
	}
	kubelet := defaultKubeletArgs()
	for k, v := range applied.ExtraKubeletArgs {
		if v == nil {
			delete(kubelet, k)
		} else {
			kubelet[k] = *v
		}
	}
	s.mu.Lock()
	ip, hostname := h.ip, h.hostname
	s.mu.Unlock()
	der, keyPEM, sans, err := serverCert(hostname, ip, extra)
	if err != nil {
		return fail(1, "error: cannot perform the following tasks:\n- Run install hook of \"microk8s\" snap ("+err.Error()+")\n")
	}
	if err := writeInstallFiles(h, der, keyPEM, s.exe); err != nil {
		return fail(1, "error: cannot perform the following tasks:\n- Run install hook of \"microk8s\" snap ("+err.Error()+")\n")
	}

	s.mu.Lock()
	h.installing, h.installed, h.installedAt, h.channel = false, true, time.Now(), channel
	h.launchRaw, h.launch = raw, lc
	h.kubeletArgs = kubelet
	h.certDER, h.certSANs = der, sans
	h.partial = ""
	s.newClusterLocked(h)
	var addonErr error
	if lc != nil && lc.PersistentClusterToken != "" {
		if err := h.addPersistentToken(lc.PersistentClusterToken); err != nil {
			addonErr = err
		}
	}
	{
		for _, a := range applied.Addons {
			if a.Disable {
				delete(h.cluster.addons, a.Name)
				continue
			}
			if err := enableAddonLocked(h.cluster, h.arch, a.Name); err != nil {
				addonErr = err
			}
		}
	}
	join := lc != nil && lc.Join != nil && lc.Join.URL != ""
	if join {
		h.launchJoin = "pending"
	}
	done = true
	s.mu.Unlock()
	if addonErr != nil {
		// MicroK8s keeps going and reports it; the node is installed.
		s.log.WarnContext(ctx, "launch configuration addon", "instanceId", h.id, "err", addonErr)
	}
	if join {
		argv := []string{"join", lc.Join.URL}
		if lc.Join.Worker {
			argv = append(argv, "--worker")
		}
		if !s.goBackground(func() { s.launchConfigJoin(h, argv) }) {
			s.mu.Lock()
			h.launchJoin, h.launchJoinErr = "failed", "simulator closed"
			s.mu.Unlock()
		}
	}
	return success(fmt.Sprintf("microk8s (%s) %s from Canonical✓ installed\n", channel, kubeVersion(channel)))
}

// readLaunchConfig reads $MECD_HOST_ROOT/var/snap/microk8s/common/.microk8s.yaml if present.
func readLaunchConfig(root string) ([]byte, *LaunchConfig, error) {
	raw, err := os.ReadFile(filepath.Join(root, launchConfigPath))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var lc LaunchConfig
	if err := yaml.Unmarshal(raw, &lc); err != nil {
		return raw, nil, fmt.Errorf("invalid launch configuration: %v", err)
	}
	if lc.Version != "0.1.0" {
		return raw, nil, fmt.Errorf("invalid launch configuration: unsupported version %q", lc.Version)
	}
	for _, a := range lc.Addons {
		if a.Name == "" {
			return raw, nil, errors.New("invalid launch configuration: addon without a name")
		}
	}
	return raw, &lc, nil
}

// writeInstallFiles leaves on the host what scripts read after an install:
// the API server certificate and /snap/bin/microk8s.
func writeInstallFiles(h *host, der, keyPEM []byte, exe string) error {
	dir := filepath.Join(h.root, certsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "server.crt"), pemCert(der), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "server.key"), keyPEM, 0o600); err != nil {
		return err
	}
	link := filepath.Join(h.root, snapBinMicrok8s)
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	_ = os.Remove(link)
	return os.Symlink(exe, link)
}

func (s *Sim) snapList(h *host, args []string) result {
	s.mu.Lock()
	installed, channel := h.installed, h.channel
	s.mu.Unlock()
	const header = "Name      Version         Rev    Tracking       Publisher   Notes\n"
	base := "core20    20240705        2321   latest/stable  canonical✓  base\nsnapd     2.66.1          23258  latest/stable  canonical✓  snapd\n"
	mk := fmt.Sprintf("microk8s  %-15s %-6s %-14s canonical✓  classic\n", kubeVersion(channel), snapRevision, channel)
	wantMicrok8s := false
	for _, a := range args {
		if a == "microk8s" {
			wantMicrok8s = true
		} else if !strings.HasPrefix(a, "-") {
			return fail(1, "error: no matching snaps installed\n")
		}
	}
	switch {
	case wantMicrok8s && !installed:
		return fail(1, "error: no matching snaps installed\n")
	case wantMicrok8s:
		return success(header + mk)
	case installed:
		return success(header + base + mk)
	default:
		return success(header + base)
	}
}

// snapRemove uninstalls microk8s. The host leaves its cluster the hard way:
// the cluster still lists it (NotReady) and its dqlite still knows it until a
// remove-node, as when a real node is wiped without `microk8s leave`.
func (s *Sim) snapRemove(h *host, args []string) result {
	var names []string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			names = append(names, a)
		}
	}
	if len(names) == 0 {
		return fail(1, "error: the required argument `<snap> (at least 1 argument)` was not provided\n")
	}
	if names[0] != "microk8s" {
		return success(fmt.Sprintf("snap %q is not installed\n", names[0]))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h.installing {
		return fail(1, "error: snap \"microk8s\" has \"install-snap\" change in progress\n")
	}
	if !h.installed {
		return success("snap \"microk8s\" is not installed\n")
	}
	if c := h.cluster; c != nil {
		if m := c.member(h.id); m != nil && len(c.members) > 1 {
			m.left = true
			m.dqliteRole = ""
			c.recomputeRoles()
		}
	}
	h.installed, h.channel, h.cluster, h.partial = false, "", nil, ""
	h.certDER, h.certSANs, h.launch, h.launchRaw = nil, nil, nil, nil
	h.launchJoin, h.launchJoinErr = "", ""
	_ = os.RemoveAll(filepath.Join(h.root, "var/snap/microk8s"))
	_ = os.Remove(filepath.Join(h.root, snapBinMicrok8s))
	return success("microk8s removed\n")
}

// snapd's answers while it cannot take a change yet: exit code 10 is the
// CLI's "retry later" for both (research: cmd/snapd/cli error handling).
const (
	exitSnapRetry = 10
	errTooEarly   = "error: too early for operation, device not yet seeded or device model not acknowledged\n"
)

// seededLocked reports whether snapd on h finished seeding.
func (s *Sim) seededLocked(h *host) bool {
	inst, ok := s.cfg.Instances.Instance(h.id)
	if !ok {
		return true
	}
	b := s.bootLocked(inst)
	return !b.seeded.IsZero() && !time.Now().Before(b.seeded)
}

// snapWait is `snap wait system seed.loaded`: it returns once snapd seeded
// (snapd.seeded.service runs exactly this), polling as snapd does.
func (s *Sim) snapWait(ctx context.Context, h *host, args []string) result {
	if len(args) != 2 || args[0] != "system" || args[1] != "seed.loaded" {
		return fail(1, "error: the simulator knows only `snap wait system seed.loaded`\n")
	}
	for {
		s.mu.Lock()
		seeded := s.seededLocked(h)
		s.mu.Unlock()
		if seeded {
			return success("")
		}
		// snapd polls every 500 ms (AWS time, scaled like every duration).
		if !sleepFor(ctx, max(time.Millisecond, time.Duration(s.lat.Scale()*float64(500*time.Millisecond)))) {
			return fail(1, "error: interrupted\n")
		}
	}
}

// snapRefresh is `snap refresh --hold[=DURATION]` (all snaps): no
// auto-refresh starts after it. Other refreshes are not modelled.
func (s *Sim) snapRefresh(h *host, args []string) result {
	if len(args) != 1 || !strings.HasPrefix(args[0], "--hold") {
		return fail(1, "error: the simulator knows only `snap refresh --hold[=DURATION]`\n")
	}
	until := "indefinitely"
	if v, ok := strings.CutPrefix(args[0], "--hold="); ok && v != "forever" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fail(1, fmt.Sprintf("error: hold value must be a number of hours, minutes or seconds, or \"forever\": %v\n", err))
		}
		until = "until " + time.Now().Add(d).Format(time.RFC3339)
	}
	s.mu.Lock()
	if h.refreshHeldAt.IsZero() {
		h.refreshHeldAt = time.Now()
	}
	s.mu.Unlock()
	return success("Auto-refresh of all snaps held " + until + "\n")
}
