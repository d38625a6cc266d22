package ssmsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mecd/mecd/test/nodesim/fault"
	"github.com/mecd/mecd/test/nodesim/latency"
)

// object is one Kubernetes object `kubectl apply` made in a cluster.
type object struct {
	kind, namespace, name string
	group                 string            // the API group ("apps"; "" for the core group)
	doc                   string            // as applied, to tell "configured" from "unchanged"
	template              string            // a workload's pod template, as applied
	images                []string          // every container's and init container's
	claims                []string          // persistentVolumeClaim volumes of the pod template
	claimClass            string            // the StorageClass the claims got ("": none yet)
	env                   map[string]string // the containers' literal environment variables
	annotations           map[string]string // a StorageClass's
	// readyAt is when the workload's pods are Ready (a Job: complete): its
	// images pulled and started (latency.ImagePull). Zero: never, pullErr
	// says why when an image cannot be pulled.
	readyAt time.Time
	pullErr string
	applied time.Time
}

// workloads is what the simulator runs: Deployments, StatefulSets,
// DaemonSets (a pod on every node) and Jobs become Ready once their images
// are pulled and what they need is there; other kinds are stored.
var workloads = map[string]bool{"Deployment": true, "StatefulSet": true, "DaemonSet": true, "Job": true}

// resourceName is how kubectl names an object in its output: the kind in
// lower case, with its API group unless it is the core group
// ("deployment.apps/x", "networkpolicy.networking.k8s.io/y", "service/z").
func (o *object) resourceName() string {
	if o.group == "" {
		return strings.ToLower(o.kind) + "/" + o.name
	}
	return strings.ToLower(o.kind) + "." + o.group + "/" + o.name
}

// namespaced: every kind this simulator stores except these.
var clusterScoped = map[string]bool{"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true, "StorageClass": true, "CustomResourceDefinition": true}

func objectKey(kind, ns, name string) string { return strings.ToLower(kind) + "/" + ns + "/" + name }

// kubectlApply is `kubectl apply -f FILE`: each document of the file is
// created, configured or left unchanged, in order, as kubectl prints it
// (kubectl apply: "<kind>[.<group>]/<name> created"). A namespaced object
// whose namespace does not exist is refused by the API server and kubectl
// goes on with the rest, exiting 1 at the end ("Error from server
// (NotFound): error when creating ...: namespaces \"x\" not found").
func (s *Sim) kubectlApply(h *host, args []string) result {
	file := ""
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-f" || a == "--filename":
			if i+1 < len(args) {
				i++
				file = args[i]
			}
		case strings.HasPrefix(a, "-f=") || strings.HasPrefix(a, "--filename="):
			_, file, _ = strings.Cut(a, "=")
		default:
			return fail(1, fmt.Sprintf("error: unknown flag: %s\nSee 'kubectl apply --help' for usage.\n", a))
		}
	}
	if file == "" || file == "-" {
		// The stand-in forwards argv only; mecd's scripts apply files.
		return fail(1, "error: must specify one of -f and -k (the node simulator reads a file, not stdin)\n")
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return fail(1, fmt.Sprintf("error: the path %q does not exist\n", file))
	}
	var out, errs strings.Builder
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	s.mu.Lock()
	defer s.mu.Unlock()
	c := h.cluster
	if c.objects == nil {
		c.objects = map[string]*object{}
	}
	for {
		var node yaml.Node
		if err := dec.Decode(&node); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fail(1, fmt.Sprintf("error: error parsing %s: %v\n", file, err))
		}
		var doc map[string]any
		if err := node.Decode(&doc); err != nil || doc == nil {
			continue
		}
		docText, _ := yaml.Marshal(doc)
		o := parseObject(doc)
		if o.kind == "" || o.name == "" {
			return fail(1, fmt.Sprintf("error: error validating %q: error validating data: [apiVersion not set, kind not set]\n", file))
		}
		if !clusterScoped[o.kind] {
			if o.namespace == "" {
				o.namespace = "default"
			}
			if o.namespace != "default" && c.objects[objectKey("Namespace", "", o.namespace)] == nil {
				fmt.Fprintf(&errs, "Error from server (NotFound): error when creating %q: namespaces %q not found\n", file, o.namespace)
				continue
			}
		} else {
			o.namespace = ""
		}
		o.doc = string(docText)
		key := objectKey(o.kind, o.namespace, o.name)
		verb := "created"
		if old := c.objects[key]; old != nil {
			if old.doc == o.doc {
				fmt.Fprintf(&out, "%s unchanged\n", o.resourceName())
				continue
			}
			if o.kind == "Job" && old.template != o.template {
				// A Job's pod template is immutable (batch/v1 validation).
				fmt.Fprintf(&errs, "The Job %q is invalid: spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable\n", o.name)
				continue
			}
			verb = "configured"
		}
		o.applied = time.Now()
		if workloads[o.kind] {
			s.scheduleLocked(h, o)
			if len(o.claims) > 0 {
				o.claimClass = s.defaultClassLocked(c)
			}
		}
		c.objects[key] = o
		fmt.Fprintf(&out, "%s %s\n", o.resourceName(), verb)
	}
	if errs.Len() > 0 {
		return result{stdout: out.String(), stderr: errs.String(), code: 1}
	}
	return success(out.String())
}

// scheduleLocked sets when a workload's pods are Ready: after its images'
// pull, unless one cannot be pulled (the kubelet retries with back-off and
// the pod stays in ImagePullBackOff: Kubernetes docs, "Images", image pull
// back-off). An image fault is drawn for the host the apply ran on (node
// 0): a fault meant for a cluster selects its hosts by tag.
func (s *Sim) scheduleLocked(h *host, o *object) {
	for _, img := range o.images {
		if answer, bad := s.faults.ImageFault(h.tags, fault.AnyIndex, img); bad {
			o.pullErr = fmt.Sprintf("Failed to pull image %q: %s", img, answer)
			return
		}
	}
	var d time.Duration
	if s.lat != nil {
		d = s.lat.Delay(latency.ImagePull)
	}
	o.readyAt = time.Now().Add(d)
}

// parseObject reads what the simulator needs from one manifest document.
func parseObject(doc map[string]any) *object {
	str := func(v any) string { s, _ := v.(string); return s }
	m := func(v any) map[string]any { x, _ := v.(map[string]any); return x }
	meta := m(doc["metadata"])
	o := &object{kind: str(doc["kind"]), name: str(meta["name"]), namespace: str(meta["namespace"]), env: map[string]string{}}
	if o.kind == "StorageClass" {
		o.annotations = annotationsFrom(doc)
	}
	if group, _, grouped := strings.Cut(str(doc["apiVersion"]), "/"); grouped {
		o.group = group
	}
	spec := m(doc["spec"])
	tmpl := m(spec["template"])
	if tmpl != nil {
		t, _ := yaml.Marshal(tmpl)
		o.template = string(t)
	}
	pod := m(tmpl["spec"])
	for _, key := range []string{"initContainers", "containers"} {
		list, _ := pod[key].([]any)
		for _, ctr := range list {
			o.images = append(o.images, str(m(ctr)["image"]))
			vars, _ := m(ctr)["env"].([]any)
			for _, v := range vars {
				if name, val := str(m(v)["name"]), str(m(v)["value"]); name != "" && val != "" {
					o.env[name] = val
				}
			}
		}
	}
	vols, _ := pod["volumes"].([]any)
	for _, v := range vols {
		if claim := str(m(m(v)["persistentVolumeClaim"])["claimName"]); claim != "" {
			o.claims = append(o.claims, claim)
		}
	}
	return o
}

// pod is one pod of a workload as `kubectl get pods` shows it.
type pod struct {
	name   string
	ready  bool
	status string
}

// podsLocked are o's pods: one (mecd's addons run one replica each), or
// one per node for a DaemonSet (nodes that left the cluster have none).
// A pod is Ready once its images are pulled (a pull that fails leaves it
// in ImagePullBackOff: Kubernetes docs, "Images"), its claims bound and
// attached (claimStatusLocked), and what its program needs is there
// (longhornPodLocked).
func (s *Sim) podsLocked(c *cluster, o *object) []pod {
	status := func(m *member) string { return s.podStatusLocked(c, o, m) }
	if o.kind != "DaemonSet" {
		st := status(nil)
		return []pod{{name: o.name + "-" + podSuffix(o.name), ready: st == "", status: st}}
	}
	var out []pod
	for _, m := range c.members {
		if m.left {
			continue
		}
		st := status(m)
		out = append(out, pod{name: o.name + "-" + podSuffix(o.name+m.hostname), ready: st == "", status: st})
	}
	return out
}

// podStatusLocked is why o's pod on m (nil: not a DaemonSet's) is not
// Ready, or "" (podsLocked).
func (s *Sim) podStatusLocked(c *cluster, o *object, m *member) string {
	switch {
	case o.pullErr != "":
		return "ImagePullBackOff"
	case time.Now().Before(o.readyAt):
		return "ContainerCreating"
	}
	if st := s.claimStatusLocked(c, o); st != "" {
		return st
	}
	return s.longhornPodLocked(c, o, m)
}

// workloadReadyLocked reports whether o's pods are all Ready now, and if
// not, the status of the first that is not.
func (s *Sim) workloadReadyLocked(c *cluster, o *object) (bool, string) {
	pods := s.podsLocked(c, o)
	for _, p := range pods {
		if !p.ready {
			return false, p.status
		}
	}
	return len(pods) > 0, "Running"
}

// kubectlRollout is `kubectl rollout status deployment/NAME|statefulset/NAME
// [-n NS] [--timeout=D]` (kubectl's status viewers: "Waiting for deployment
// ... rollout to finish", then "successfully rolled out"; at the timeout
// "error: timed out waiting for the condition", exit 1).
func (s *Sim) kubectlRollout(ctx context.Context, h *host, ns string, args []string) result {
	if len(args) == 0 || args[0] != "status" {
		return fail(1, "error: the node simulator's kubectl supports only 'rollout status'\n")
	}
	timeout, target := time.Duration(0), ""
	for _, a := range args[1:] {
		switch {
		case strings.HasPrefix(a, "--timeout="):
			d, err := parseKubeDuration(strings.TrimPrefix(a, "--timeout="))
			if err != nil {
				return fail(1, fmt.Sprintf("error: invalid argument %q for \"--timeout\" flag\n", a))
			}
			timeout = d
		case strings.HasPrefix(a, "-"):
			return fail(1, fmt.Sprintf("error: unknown flag: %s\n", a))
		default:
			target = a
		}
	}
	kind, name, _ := strings.Cut(target, "/")
	kinds := map[string]string{"deployment": "Deployment", "deploy": "Deployment", "deployments": "Deployment", "statefulset": "StatefulSet", "sts": "StatefulSet",
		"daemonset": "DaemonSet", "ds": "DaemonSet", "daemonsets": "DaemonSet"}
	k, ok := kinds[kind]
	if !ok || name == "" {
		return fail(1, fmt.Sprintf("error: no status viewer has been implemented for %s\n", target))
	}
	var wctx context.Context
	var cancel context.CancelFunc
	if timeout > 0 {
		wctx, cancel = context.WithTimeout(ctx, timeout)
	} else {
		wctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	var out strings.Builder
	waiting := false
	for {
		s.mu.Lock()
		s.advanceLonghornLocked(h)
		o := h.cluster.objects[objectKey(k, ns, name)]
		ready, avail, total := false, 0, 0
		if o != nil {
			ready, _ = s.workloadReadyLocked(h.cluster, o)
			for _, p := range s.podsLocked(h.cluster, o) {
				total++
				if p.ready {
					avail++
				}
			}
		}
		s.mu.Unlock()
		if o == nil {
			return fail(1, fmt.Sprintf("Error from server (NotFound): %ss.apps %q not found\n", strings.ToLower(k), name))
		}
		// kubectl's status viewers (rollout_status.go): a StatefulSet
		// without a partition reports its revision.
		if ready {
			switch k {
			case "StatefulSet":
				fmt.Fprintf(&out, "statefulset rolling update complete 1 pods at revision %s-%s...\n", name, podSuffix(name))
			case "DaemonSet":
				fmt.Fprintf(&out, "daemon set %q successfully rolled out\n", name)
			default:
				fmt.Fprintf(&out, "deployment %q successfully rolled out\n", name)
			}
			return success(out.String())
		}
		if !waiting {
			waiting = true
			switch k {
			case "StatefulSet":
				out.WriteString("Waiting for 1 pods to be ready...\n")
			case "DaemonSet":
				fmt.Fprintf(&out, "Waiting for daemon set %q rollout to finish: %d of %d updated pods are available...\n", name, avail, total)
			default:
				fmt.Fprintf(&out, "Waiting for deployment %q rollout to finish: 0 of 1 updated replicas are available...\n", name)
			}
		}
		if !sleepFor(wctx, 50*time.Millisecond) {
			return result{stdout: out.String(), stderr: "error: timed out waiting for the condition\n", code: 1}
		}
	}
}

// kubectlWaitJob is `kubectl wait --for=condition=complete job/NAME`.
func (s *Sim) kubectlWaitJob(ctx context.Context, h *host, ns, name string, timeout time.Duration) result {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		s.mu.Lock()
		s.advanceLonghornLocked(h)
		o := h.cluster.objects[objectKey("Job", ns, name)]
		done := false
		if o != nil {
			done, _ = s.workloadReadyLocked(h.cluster, o)
		}
		s.mu.Unlock()
		if o == nil {
			return fail(1, fmt.Sprintf("Error from server (NotFound): jobs.batch %q not found\n", name))
		}
		if done {
			return success(fmt.Sprintf("job.batch/%s condition met\n", name))
		}
		if !sleepFor(wctx, 50*time.Millisecond) {
			return fail(1, fmt.Sprintf("error: timed out waiting for the condition on jobs/%s\n", name))
		}
	}
}

// kubectlGetPods is `kubectl get pods -n NS [--no-headers]`: each
// workload's pods (podsLocked), their status as the kubelet reports it.
func (s *Sim) kubectlGetPods(h *host, ns string, noHeaders bool) result {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLonghornLocked(h)
	var names []string
	for _, o := range h.cluster.objects {
		if workloads[o.kind] && o.namespace == ns {
			names = append(names, objectKey(o.kind, o.namespace, o.name))
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		// kubectl get writes this to stderr (get.go, o.ErrOut), exit 0.
		return result{stderr: "No resources found in " + ns + " namespace.\n"}
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 8, 3, ' ', 0)
	if !noHeaders {
		fmt.Fprintln(tw, "NAME\tREADY\tSTATUS\tRESTARTS\tAGE")
	}
	for _, key := range names {
		o := h.cluster.objects[key]
		for _, p := range s.podsLocked(h.cluster, o) {
			status, r := p.status, "0/1"
			switch {
			case p.ready && o.kind == "Job":
				status = "Completed"
			case p.ready:
				status, r = "Running", "1/1"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t0\t%s\n", p.name, r, status, age(time.Since(o.applied)))
		}
	}
	_ = tw.Flush()
	return success(buf.String())
}

// podSuffix is a stable stand-in for the ReplicaSet hash and pod suffix.
func podSuffix(name string) string {
	const letters = "bcdfghjklmnpqrstvwxz2456789"
	var b strings.Builder
	h := 0
	for _, r := range name {
		h = h*31 + int(r)
	}
	for range 5 {
		h = h*1103515245 + 12345
		b.WriteByte(letters[(h>>8&0x7fffffff)%len(letters)])
	}
	return b.String()
}

// namespaceFlag takes -n/--namespace out of args.
func namespaceFlag(args []string) (ns string, rest []string) {
	ns = "default"
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case (a == "-n" || a == "--namespace") && i+1 < len(args):
			ns = args[i+1]
			i++
		case strings.HasPrefix(a, "--namespace="):
			ns = strings.TrimPrefix(a, "--namespace=")
		case strings.HasPrefix(a, "-n") && len(a) > 2 && a != "--no-headers":
			ns = a[2:]
		default:
			rest = append(rest, a)
		}
	}
	return ns, rest
}

// parseKubeDuration reads a kubectl --timeout ("60s", "2m", or seconds).
func parseKubeDuration(v string) (time.Duration, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return d, nil
	}
	return time.ParseDuration(v + "s")
}
