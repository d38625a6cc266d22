package ssmsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
)

type nodeView struct {
	name, ip, role, version, arch string
	ready                         bool
	created                       time.Time
}

// nodesLocked is what `kubectl get nodes` sees from h: every member of its
// cluster, NotReady once it left.
func (s *Sim) nodesLocked(h *host) []nodeView {
	var out []nodeView
	for _, m := range h.cluster.members {
		v := nodeView{name: m.hostname, ip: m.ip, role: m.role, ready: !m.left && !s.memberDownLocked(m), created: m.joinedAt, version: kubeVersion(h.channel), arch: "arm64"}
		if mh := s.hosts[m.instanceID]; mh != nil {
			if mh.channel != "" {
				v.version = kubeVersion(mh.channel)
			}
			if mh.arch != "" {
				v.arch = mh.arch
			}
		}
		out = append(out, v)
	}
	return out
}

// kubectl is `microk8s kubectl`: `get nodes [-o wide|json|name] [--no-headers]`,
// `wait --for=condition=Ready node(s) --all|<name> [--timeout=D]`, cordon and
// drain, and the workload verbs of workloads.go.
func (s *Sim) kubectl(ctx context.Context, h *host, args []string) result {
	s.mu.Lock()
	worker := roleLocked(h) == roleWorker && inMultiNodeLocked(h)
	down := s.apiDownLocked(h)
	s.mu.Unlock()
	if worker {
		return failOut(1, fmt.Sprintf(workerMessage, "kubectl"))
	}
	if down {
		return apiRefused
	}
	if r, ok := s.kubectlObjects(ctx, h, args); ok {
		return r
	}
	if len(args) > 0 && args[0] == "wait" {
		return s.kubectlWait(ctx, h, args[1:])
	}
	if len(args) > 0 && (args[0] == "cordon" || args[0] == "drain") {
		return s.kubectlCordon(h, args[0], args[1:])
	}
	output, noHeaders := "", false
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" || a == "--output":
			if i+1 < len(args) {
				i++
				output = args[i]
			}
		case strings.HasPrefix(a, "-o="), strings.HasPrefix(a, "--output="):
			_, output, _ = strings.Cut(a, "=")
		case strings.HasPrefix(a, "-o") && len(a) > 2:
			output = a[2:]
		case a == "--no-headers" || a == "--no-headers=true":
			noHeaders = true
		case strings.HasPrefix(a, "-"):
			return fail(1, fmt.Sprintf("error: unknown flag: %s\nSee 'kubectl get --help' for usage.\n", a))
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) < 2 || pos[0] != "get" || !isNodeResource(pos[1]) {
		return fail(1, "error: the node simulator's kubectl supports only 'get nodes', 'wait --for=condition=Ready node', 'cordon' and 'drain'\n")
	}
	s.mu.Lock()
	nodes := s.nodesLocked(h)
	s.mu.Unlock()
	if len(pos) > 2 {
		var sel []nodeView
		for _, n := range nodes {
			for _, want := range pos[2:] {
				if n.name == want {
					sel = append(sel, n)
				}
			}
		}
		if len(sel) == 0 {
			return fail(1, fmt.Sprintf("Error from server (NotFound): nodes %q not found\n", pos[2]))
		}
		nodes = sel
	}
	switch output {
	case "", "wide":
		return success(nodeTable(nodes, output == "wide", noHeaders))
	case "name":
		var b strings.Builder
		for _, n := range nodes {
			b.WriteString("node/" + n.name + "\n")
		}
		return success(b.String())
	case "json":
		return success(nodeJSON(nodes))
	}
	return fail(1, fmt.Sprintf("error: unable to match a printer suitable for the output format %q, allowed formats are: json,name,wide\n", output))
}

func isNodeResource(r string) bool {
	return r == "nodes" || r == "node" || r == "no"
}

func nodeTable(nodes []nodeView, wide, noHeaders bool) string {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 8, 3, ' ', 0)
	if !noHeaders {
		if wide {
			fmt.Fprintln(tw, "NAME\tSTATUS\tROLES\tAGE\tVERSION\tINTERNAL-IP\tEXTERNAL-IP\tOS-IMAGE\tKERNEL-VERSION\tCONTAINER-RUNTIME")
		} else {
			fmt.Fprintln(tw, "NAME\tSTATUS\tROLES\tAGE\tVERSION")
		}
	}
	for _, n := range nodes {
		st := "Ready"
		if !n.ready {
			st = "NotReady"
		}
		// MicroK8s sets no node-role labels, so ROLES is <none> for every node.
		if wide {
			fmt.Fprintf(tw, "%s\t%s\t<none>\t%s\t%s\t%s\t<none>\tUbuntu 24.04.1 LTS\t6.8.0-1016-aws\tcontainerd://1.7.27\n", n.name, st, age(time.Since(n.created)), n.version, n.ip)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t<none>\t%s\t%s\n", n.name, st, age(time.Since(n.created)), n.version)
		}
	}
	_ = tw.Flush()
	return buf.String()
}

// age formats like kubectl's AGE column.
func age(d time.Duration) string {
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 10*time.Minute:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 3*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 8*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func nodeJSON(nodes []nodeView) string {
	items := make([]any, 0, len(nodes))
	for _, n := range nodes {
		labels := map[string]string{
			"beta.kubernetes.io/arch": n.arch, "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": n.arch,
			"kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux", "microk8s.io/cluster": "true",
		}
		if n.role == roleWorker {
			labels["node.kubernetes.io/microk8s-worker"] = "microk8s-worker"
		} else {
			labels["node.kubernetes.io/microk8s-controlplane"] = "microk8s-controlplane"
		}
		ready, reason := "True", "KubeletReady"
		if !n.ready {
			ready, reason = "Unknown", "NodeStatusUnknown"
		}
		items = append(items, map[string]any{
			"apiVersion": "v1", "kind": "Node",
			"metadata": map[string]any{"name": n.name, "labels": labels, "creationTimestamp": n.created.UTC().Format(time.RFC3339)},
			"spec":     map[string]any{},
			"status": map[string]any{
				"addresses":  []map[string]string{{"type": "InternalIP", "address": n.ip}, {"type": "Hostname", "address": n.name}},
				"conditions": []map[string]string{{"type": "Ready", "status": ready, "reason": reason}},
				"nodeInfo": map[string]string{
					"architecture": n.arch, "containerRuntimeVersion": "containerd://1.7.27", "kernelVersion": "6.8.0-1016-aws",
					"kubeProxyVersion": n.version, "kubeletVersion": n.version, "operatingSystem": "linux", "osImage": "Ubuntu 24.04.1 LTS",
				},
			},
		})
	}
	b, _ := json.MarshalIndent(map[string]any{"apiVersion": "v1", "kind": "List", "items": items, "metadata": map[string]string{"resourceVersion": ""}}, "", "    ")
	return string(b) + "\n"
}

func (s *Sim) kubectlWait(ctx context.Context, h *host, args []string) result {
	cond, all, timeout := "", false, 30*time.Second
	var names []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		if !hasVal && i+1 < len(args) && (name == "--for" || name == "--timeout") {
			i++
			val = args[i]
		}
		switch {
		case name == "--for":
			cond = val
		case name == "--timeout":
			d, err := time.ParseDuration(val)
			if err != nil {
				if n, err2 := time.ParseDuration(val + "s"); err2 == nil {
					d = n
				} else {
					return fail(1, fmt.Sprintf("error: invalid argument %q for \"--timeout\" flag\n", val))
				}
			}
			timeout = d
		case a == "--all" || a == "-A":
			all = true
		case strings.HasPrefix(a, "-"):
			return fail(1, fmt.Sprintf("error: unknown flag: %s\n", a))
		default:
			r, n, _ := strings.Cut(a, "/")
			if !isNodeResource(r) {
				return fail(1, "error: the node simulator's kubectl waits only for nodes\n")
			}
			if n != "" {
				names = append(names, n)
			}
		}
	}
	if !strings.EqualFold(cond, "condition=Ready") {
		return fail(1, "error: the node simulator's kubectl waits only for --for=condition=Ready\n")
	}
	if !all && len(names) == 0 {
		return fail(1, "error: resource(s) were provided, but no name was specified\n")
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		s.mu.Lock()
		nodes := s.nodesLocked(h)
		s.mu.Unlock()
		var b strings.Builder
		pending := ""
		for _, n := range nodes {
			if !all && !contains(names, n.name) {
				continue
			}
			if !n.ready {
				pending = n.name
				break
			}
			b.WriteString("node/" + n.name + " condition met\n")
		}
		if !all {
			for _, want := range names {
				if !containsNode(nodes, want) {
					return fail(1, fmt.Sprintf("Error from server (NotFound): nodes %q not found\n", want))
				}
			}
		}
		if pending == "" {
			return success(b.String())
		}
		if !sleepFor(wctx, 100*time.Millisecond) {
			return fail(1, fmt.Sprintf("error: timed out waiting for the condition on nodes/%s\n", pending))
		}
	}
}

func contains(l []string, v string) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

func containsNode(nodes []nodeView, name string) bool {
	for _, n := range nodes {
		if n.name == name {
			return true
		}
	}
	return false
}

// kubectlCordon is `kubectl cordon NODE` and `kubectl drain NODE [flags]`
// (kubectl reference: a drain cordons the node, then evicts its pods,
// waiting up to --timeout; "already cordoned" when it was). The simulator
// runs no pods, so a drain has nothing to evict: it ends at once. Flags a
// drain of a MicroK8s node needs are accepted; others are refused as
// kubectl refuses an unknown flag.
func (s *Sim) kubectlCordon(h *host, verb string, args []string) result {
	name := ""
	for _, a := range args {
		switch {
		case a == "--ignore-daemonsets" || a == "--delete-emptydir-data" || a == "--force" || strings.HasPrefix(a, "--timeout=") || strings.HasPrefix(a, "--grace-period="):
			if verb == "cordon" {
				return fail(1, fmt.Sprintf("error: unknown flag: %s\nSee 'kubectl cordon --help' for usage.\n", a))
			}
		case strings.HasPrefix(a, "-"):
			return fail(1, fmt.Sprintf("error: unknown flag: %s\nSee 'kubectl %s --help' for usage.\n", a, verb))
		case name == "":
			name = a
		default:
			return fail(1, fmt.Sprintf("error: unexpected argument %q\n", a))
		}
	}
	if name == "" {
		return fail(1, "error: USAGE: "+verb+" NODE [flags]\nSee 'kubectl "+verb+" -h' for help and examples\n")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var m *member
	for _, cand := range h.cluster.members {
		if cand.hostname == name {
			m = cand
		}
	}
	if m == nil {
		return fail(1, fmt.Sprintf("Error from server (NotFound): nodes %q not found\n", name))
	}
	out := "node/" + name + " cordoned\n"
	if m.cordoned {
		out = "node/" + name + " already cordoned\n"
	}
	m.cordoned = true
	if verb == "drain" {
		out += "node/" + name + " drained\n"
	}
	return success(out)
}

// kubectlObjects serves the verbs on applied objects (workloads.go): apply,
// rollout status, get pods, and wait for a Job's completion. ok is false
// for the other verbs.
func (s *Sim) kubectlObjects(ctx context.Context, h *host, args []string) (result, bool) {
	ns, rest := namespaceFlag(args)
	if len(rest) == 0 {
		return result{}, false
	}
	switch {
	case rest[0] == "apply":
		return s.kubectlApply(h, rest[1:]), true
	case rest[0] == "label" || rest[0] == "annotate":
		return s.kubectlLabel(h, rest[0], rest[1:]), true
	case rest[0] == "rollout":
		return s.kubectlRollout(ctx, h, ns, rest[1:]), true
	case rest[0] == "get" && len(rest) >= 2 && (rest[1] == "nodes.longhorn.io" || rest[1] == "lhn"):
		return s.kubectlGetLonghornNodes(h, ns, rest[2:]), true
	case rest[0] == "get" && len(rest) >= 2 && (rest[1] == "pods" || rest[1] == "pod" || rest[1] == "po"):
		return s.kubectlGetPods(h, ns, contains(rest, "--no-headers")), true
	case rest[0] == "wait":
		job, cond, timeout := "", "", 30*time.Second
		for _, a := range rest[1:] {
			switch {
			case strings.HasPrefix(a, "job/") || strings.HasPrefix(a, "jobs/") || strings.HasPrefix(a, "job.batch/"):
				_, job, _ = strings.Cut(a, "/")
			case strings.HasPrefix(a, "--for="):
				cond = strings.TrimPrefix(a, "--for=")
			case strings.HasPrefix(a, "--timeout="):
				d, err := parseKubeDuration(strings.TrimPrefix(a, "--timeout="))
				if err != nil {
					return fail(1, fmt.Sprintf("error: invalid argument %q for \"--timeout\" flag\n", a)), true
				}
				timeout = d
			}
		}
		if job == "" {
			return result{}, false
		}
		if !strings.EqualFold(cond, "condition=complete") {
			return fail(1, "error: the node simulator's kubectl waits for a job's condition=complete only\n"), true
		}
		return s.kubectlWaitJob(ctx, h, ns, job, timeout), true
	}
	return result{}, false
}

// kubectlLabel is `kubectl label|annotate nodes (--all|NAME) [--overwrite]
// KEY=VALUE...` and `kubectl annotate storageclass NAME [--overwrite]
// KEY=VALUE...`. Without --overwrite a key that has another value is
// refused ("error: 'KEY' already has a value (V), and --overwrite is
// false", exit 1: kubectl's label.go and annotate.go). A value the script
// wrote with a mapped path holds the node's own path.
func (s *Sim) kubectlLabel(h *host, verb string, args []string) result {
	var resource, name string
	all, overwrite := false, false
	set := map[string]string{}
	var keys []string
	for _, a := range args {
		switch {
		case a == "--all":
			all = true
		case a == "--overwrite" || a == "--overwrite=true":
			overwrite = true
		case strings.HasPrefix(a, "-"):
			return fail(1, fmt.Sprintf("error: unknown flag: %s\n", a))
		case resource == "":
			resource = a
		case strings.Contains(a, "="):
			k, v, _ := strings.Cut(a, "=")
			set[k] = trimRoot(h, v)
			keys = append(keys, k)
		case name == "":
			name = a
		}
	}
	if len(set) == 0 {
		return fail(1, fmt.Sprintf("error: at least one %s update is required\n", verb))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := h.cluster
	apply := func(m map[string]string) (map[string]string, string) {
		if m == nil {
			m = map[string]string{}
		}
		for _, k := range keys {
			if old, ok := m[k]; ok && old != set[k] && !overwrite {
				return m, fmt.Sprintf("error: '%s' already has a value (%s), and --overwrite is false\n", k, old)
			}
		}
		for _, k := range keys {
			m[k] = set[k]
		}
		return m, ""
	}
	past := map[string]string{"label": "labeled", "annotate": "annotated"}[verb]
	var out strings.Builder
	switch resource {
	case "node", "nodes", "no":
		found := false
		for _, m := range c.members {
			if m.left || (!all && m.hostname != name) {
				continue
			}
			found = true
			var msg string
			if verb == "label" {
				m.labels, msg = apply(m.labels)
			} else {
				m.annotations, msg = apply(m.annotations)
			}
			if msg != "" {
				return fail(1, msg)
			}
			fmt.Fprintf(&out, "node/%s %s\n", m.hostname, past)
		}
		if !found && !all {
			return fail(1, fmt.Sprintf("Error from server (NotFound): nodes %q not found\n", name))
		}
	case "storageclass", "storageclasses", "sc":
		if verb != "annotate" {
			return fail(1, "error: the node simulator labels nodes only\n")
		}
		o := c.objects[objectKey("StorageClass", "", name)]
		if o == nil && !(name == hostpathName && c.addons["hostpath-storage"]) {
			return fail(1, fmt.Sprintf("Error from server (NotFound): storageclasses.storage.k8s.io %q not found\n", name))
		}
		var msg string
		if o != nil {
			o.annotations, msg = apply(o.annotations)
		} else {
			if c.classAnnotations == nil {
				c.classAnnotations = map[string]map[string]string{}
			}
			c.classAnnotations[name], msg = apply(c.classAnnotations[name])
		}
		if msg != "" {
			return fail(1, msg)
		}
		fmt.Fprintf(&out, "storageclass.storage.k8s.io/%s %s\n", name, past)
	default:
		return fail(1, fmt.Sprintf("error: the node simulator's kubectl %s takes nodes or a storageclass, not %q\n", verb, resource))
	}
	return success(out.String())
}
