package ssmsim

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mecd/mecd/test/nodesim/latency"
)

const workerMessage = "This MicroK8s deployment is acting as a node in a cluster. Please use the microk8s %s on the control plane.\n"

var microk8sSubcommands = []string{"add-node", "config", "disable", "enable", "join", "kubectl", "leave", "remove-node", "status", "version"}

// microk8s is the `microk8s` stand-in. Like the real one it prints most of its
// messages, errors included, on stdout: scripts that want them in the command's
// stderr redirect (>&2).
func (s *Sim) microk8s(ctx context.Context, h *host, args []string) result {
	s.mu.Lock()
	installed := h.installed
	s.mu.Unlock()
	if !installed {
		return fail(127, "microk8s: command not found\n")
	}
	if len(args) == 0 {
		return failOut(1, usage())
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "status":
		return s.status(ctx, h, rest)
	case "add-node":
		return s.addNode(h, rest)
	case "join":
		return s.join(ctx, h, rest).result
	case "leave":
		return s.leave(h)
	case "remove-node":
		return s.removeNode(h, rest)
	case "enable":
		return s.enable(ctx, h, rest)
	case "disable":
		return s.disable(h, rest)
	case "kubectl":
		return s.kubectl(ctx, h, rest)
	case "config":
		return s.config(h)
	case "version":
		s.mu.Lock()
		defer s.mu.Unlock()
		return success(fmt.Sprintf("MicroK8s %s revision %s\n", kubeVersion(h.channel), snapRevision))
	}
	return failOut(1, fmt.Sprintf("'%s' is not a valid MicroK8s subcommand.\n", sub)+usage())
}

func usage() string {
	return "Available subcommands are:\n\t" + strings.Join(microk8sSubcommands, "\n\t") + "\n"
}

// readyLocked: installed, and any launch-configuration join has settled.
func readyLocked(h *host) bool {
	return h.installed && h.launchJoin != "pending"
}

func (s *Sim) status(ctx context.Context, h *host, args []string) result {
	wait, timeout, format, addon := false, time.Duration(0), "pretty", ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		if !hasVal && i+1 < len(args) && (name == "--timeout" || name == "--format" || name == "-a" || name == "--addon") {
			i++
			val = args[i]
		}
		switch name {
		case "--wait-ready", "-w":
			wait = true
		case "--timeout", "-t":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return failOut(2, fmt.Sprintf("Error: Invalid value for '--timeout' / '-t': '%s' is not a valid integer.\n", val))
			}
			timeout = time.Duration(n) * time.Second
		case "--format":
			format = val
		case "-a", "--addon":
			addon = val
		default:
			return failOut(2, fmt.Sprintf("Error: No such option: %s\n", a))
		}
	}
	switch format {
	case "pretty", "short", "yaml":
	default:
		return failOut(2, fmt.Sprintf("Error: Invalid value for '--format': '%s' is not one of 'pretty', 'short', 'yaml'.\n", format))
	}
	if wait {
		wctx := ctx
		if timeout > 0 {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		for {
			s.mu.Lock()
			ready := readyLocked(h)
			s.mu.Unlock()
			if ready || !sleepFor(wctx, 50*time.Millisecond) {
				break
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !readyLocked(h) {
		return failOut(1, "microk8s is not running. Use microk8s inspect for a deeper inspection.\n")
	}
	if roleLocked(h) == roleWorker && inMultiNodeLocked(h) {
		return success(fmt.Sprintf(workerMessage, "status"))
	}
	c := h.cluster
	enabled := func(name string) bool { return c.addons[name] || defaultAddons[name] }
	if addon != "" {
		if enabled(addon) {
			return success("enabled\n")
		}
		return success("disabled\n")
	}
	var voters, standby []string
	for _, m := range c.members {
		addr := m.ip + ":19001"
		if c.active() == 1 {
			addr = "127.0.0.1:19001" // a lone node's dqlite listens on loopback
		}
		switch m.dqliteRole {
		case "voter":
			voters = append(voters, addr)
		case "standby":
			standby = append(standby, addr)
		}
	}
	ha := len(voters) >= maxVoters
	var b strings.Builder
	switch format {
	case "yaml":
		fmt.Fprintf(&b, "microk8s:\n  running: true\nhigh-availability:\n  enabled: %t\n  nodes:\n", ha)
		for _, v := range voters {
			fmt.Fprintf(&b, "  - address: %s\n    role: voter\n", v)
		}
		for _, v := range standby {
			fmt.Fprintf(&b, "  - address: %s\n    role: standby\n", v)
		}
		b.WriteString("addons:\n")
		for _, a := range visibleAddons(c, h.arch) {
			st := "disabled"
			if enabled(a.name) {
				st = "enabled"
			}
			fmt.Fprintf(&b, "- name: %s\n  repository: %s\n  description: %s\n  version: %s\n  status: %s\n", a.name, a.repo, a.desc, strings.TrimPrefix(kubeVersion(h.channel), "v"), st)
		}
		return success(b.String())
	}
	b.WriteString("microk8s is running\n")
	fmt.Fprintf(&b, "high-availability: %s\n", yesNo(ha))
	fmt.Fprintf(&b, "  datastore master nodes: %s\n", listOrNone(voters))
	fmt.Fprintf(&b, "  datastore standby nodes: %s\n", listOrNone(standby))
	b.WriteString("addons:\n")
	if format == "short" {
		for _, a := range visibleAddons(c, h.arch) {
			st := "disabled"
			if enabled(a.name) {
				st = "enabled"
			}
			fmt.Fprintf(&b, "  %s/%s: %s\n", a.repo, a.name, st)
		}
		return success(b.String())
	}
	for _, state := range []bool{true, false} {
		if state {
			b.WriteString("  enabled:\n")
		} else {
			b.WriteString("  disabled:\n")
		}
		for _, a := range visibleAddons(c, h.arch) {
			if enabled(a.name) == state {
				fmt.Fprintf(&b, "    %-20s # (%s) %s\n", a.name, a.repo, a.desc)
			}
		}
	}
	return success(b.String())
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, " ")
}

func enableAddonLocked(c *cluster, arch, spec string) error {
	a, found := findAddon(c, arch, spec)
	if !found {
		name, _, _ := strings.Cut(spec, ":")
		return fmt.Errorf("addon %s was not found in any repository", name)
	}
	c.addons[a.name] = true
	return nil
}

// enable is `microk8s enable <addon>...`, as unprotected_xable runs it
// (canonical/microk8s scripts/wrappers/common/utils.py):
//   - it reads which addons are enabled with kubectl first: with the API
//     server down that raises (the traceback of microk8s issue #4478);
//   - addons already enabled are skipped ("Addon core/dns is already
//     enabled"), and if none is left the call takes no time;
//   - the others run one after another, one latency.Addons per call shared
//     between them. Each addon's script applies its manifests first (from
//     then on the status sees it enabled) and ends with the node arguments
//     it changes (kubeletArgsOf); with the API server down by then its later
//     kubectl call fails (dns: `kubectl get svc` after `sleep 5`,
//     canonical/microk8s-core-addons addons/dns/enable), the script exits 1
//     before the arguments, and so does enable, leaving the rest undone.
func (s *Sim) enable(ctx context.Context, h *host, args []string) result {
	if len(args) == 0 {
		return failOut(2, "Usage: microk8s enable [OPTIONS] ADDONS...\nError: Missing argument 'ADDONS...'.\n")
	}
	s.mu.Lock()
	if roleLocked(h) == roleWorker && inMultiNodeLocked(h) {
		s.mu.Unlock()
		return failOut(1, fmt.Sprintf(workerMessage, "enable"))
	}
	c := h.cluster
	// MicroK8s resolves every addon before it enables any.
	for _, spec := range args {
		if _, found := findAddon(c, h.arch, spec); !found {
			s.mu.Unlock()
			return fail(1, notFound(h.arch, spec))
		}
	}
	if s.apiDownLocked(h) {
		s.mu.Unlock()
		return fail(1, "Traceback (most recent call last):\n  File \"/snap/microk8s/current/scripts/wrappers/enable.py\", line 44, in <module>\n"+
			"subprocess.CalledProcessError: Command '('/snap/microk8s/current/microk8s-kubectl.wrapper', 'get', 'all,ingress,ingressclass', '--all-namespaces')' returned non-zero exit status 1.\n")
	}
	var b strings.Builder
	var todo []addonInfo
	pending := func(a addonInfo) bool {
		return !c.addons[a.name] && !defaultAddons[a.name] && !slices.ContainsFunc(todo, func(t addonInfo) bool { return t.name == a.name })
	}
	for _, spec := range args {
		a, _ := findAddon(c, h.arch, spec)
		if !pending(a) {
			fmt.Fprintf(&b, "Addon %s/%s is already enabled\n", a.repo, a.name)
			continue
		}
		// The addons its script enables first, unless enabled already.
		for _, name := range enablesFirst[a.name] {
			if pre, found := findAddon(c, h.arch, name); found && pending(pre) {
				todo = append(todo, pre)
			}
		}
		todo = append(todo, a)
	}
	s.mu.Unlock()
	if len(todo) == 0 {
		return success(b.String())
	}
	share := s.lat.Delay(latency.Addons) / time.Duration(len(todo))
	for _, a := range todo {
		s.mu.Lock()
		c.addons[a.name] = true // its manifests applied
		s.mu.Unlock()
		fmt.Fprintf(&b, "Infer repository %s for addon %s\nEnabling %s\n", a.repo, a.name, a.name)
		if !sleepFor(ctx, share) {
			return fail(1, "Enabling interrupted\n")
		}
		s.mu.Lock()
		if s.apiDownLocked(h) {
			s.mu.Unlock()
			return result{code: 1, stdout: b.String(), stderr: "The connection to the server 127.0.0.1:16443 was refused - did you specify the right host or port?\n"}
		}
		for k, v := range kubeletArgsOf[a.name] {
			// refresh_opt_in_config: this node's args, then every node of
			// the cluster through its cluster agent (distributed_op.py).
			h.kubeletArgs[k] = v
			for _, m := range c.members {
				if mh := s.hosts[m.instanceID]; mh != nil && mh.cluster == c && !m.left {
					mh.kubeletArgs[k] = v
				}
			}
		}
		s.mu.Unlock()
		fmt.Fprintf(&b, "%s is enabled\n", a.name)
	}
	return success(b.String())
}

// enablesFirst are the addons an addon's enable script enables before its
// own work (canonical/microk8s-core-addons addons/cert-manager/enable:
// `$ENABLE dns`, `$ENABLE helm3`; addons/observability/enable: core/dns,
// core/helm3, core/hostpath-storage).
var enablesFirst = map[string][]string{
	"cert-manager":  {"dns", "helm3"},
	"observability": {"dns", "helm3", "hostpath-storage"},
}

// kubeletArgsOf are the kubelet arguments an addon's enable script sets
// (refresh_opt_in_config ... kubelet; canonical/microk8s-core-addons
// addons/<name>/enable), with their default values.
var kubeletArgsOf = map[string]map[string]string{
	"dns":            {"--cluster-domain": "cluster.local", "--cluster-dns": "10.152.183.10"},
	"metrics-server": {"--authentication-token-webhook": "true"},
}

// defaultKubeletArgs are the kubelet arguments of a fresh install that the
// simulator follows (canonical/microk8s microk8s-resources/default-args/
// kubelet), before any launch configuration.
func defaultKubeletArgs() map[string]string {
	return map[string]string{"--authentication-token-webhook": "true"}
}

// defaultLaunchConfig is MicroK8s' own launch configuration
// (microk8s-resources/microk8s.default.yaml), used only when no other is
// found: snap/hooks/install takes the first of /etc/microk8s.yaml,
// $SNAP_USER_COMMON/.microk8s.yaml, $SNAP_COMMON/.microk8s.yaml and this one.
func defaultLaunchConfig() *LaunchConfig {
	domain, dns := "cluster.local", "10.152.183.10"
	return &LaunchConfig{Version: "0.1.0", ExtraKubeletArgs: map[string]*string{"--cluster-domain": &domain, "--cluster-dns": &dns},
		Addons: []LaunchAddon{{Name: "dns"}}}
}

func (s *Sim) disable(h *host, args []string) result {
	if len(args) == 0 {
		return failOut(2, "Usage: microk8s disable [OPTIONS] ADDONS...\nError: Missing argument 'ADDONS...'.\n")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if roleLocked(h) == roleWorker && inMultiNodeLocked(h) {
		return failOut(1, fmt.Sprintf(workerMessage, "disable"))
	}
	c := h.cluster
	var b strings.Builder
	for _, spec := range args {
		a, found := findAddon(c, h.arch, spec)
		if !found {
			return fail(1, notFound(h.arch, spec))
		}
		if !c.addons[a.name] {
			fmt.Fprintf(&b, "Addon %s/%s is already disabled\n", a.repo, a.name)
			continue
		}
		delete(c.addons, a.name)
		fmt.Fprintf(&b, "Infer repository %s for addon %s\nDisabling %s\n%s is disabled\n", a.repo, a.name, a.name, a.name)
	}
	return success(b.String())
}

// config is `microk8s config`: the admin kubeconfig with embedded
// certificates (about 5-6 KB), its server the address of the node it runs on.
func (s *Sim) config(h *host) result {
	s.mu.Lock()
	if roleLocked(h) == roleWorker && inMultiNodeLocked(h) {
		s.mu.Unlock()
		return failOut(1, fmt.Sprintf(workerMessage, "config"))
	}
	c, ip := h.cluster, h.ip
	pki := c.pki
	s.mu.Unlock()
	if pki == nil {
		// Generated outside the lock (RSA is slow); the first one stored wins.
		p, err := newKubePKI()
		if err != nil {
			return fail(1, "error: "+err.Error()+"\n")
		}
		s.mu.Lock()
		if c.pki == nil {
			c.pki = p
		}
		pki = c.pki
		s.mu.Unlock()
	}
	b64 := base64.StdEncoding.EncodeToString
	return success("apiVersion: v1\nclusters:\n- cluster:\n" +
		"    certificate-authority-data: " + b64(pki.caPEM) + "\n" +
		"    server: https://" + ip + ":16443\n" +
		"  name: microk8s-cluster\ncontexts:\n- context:\n    cluster: microk8s-cluster\n    user: admin\n  name: microk8s\n" +
		"current-context: microk8s\nkind: Config\npreferences: {}\nusers:\n- name: admin\n  user:\n" +
		"    client-certificate-data: " + b64(pki.clientCertPEM) + "\n" +
		"    client-key-data: " + b64(pki.clientKeyPEM) + "\n")
}
