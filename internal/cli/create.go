package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mecd/mecd/internal/client"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/spec"
)

// specFlag maps a flag to its spec field and how its text becomes JSON.
type specFlag struct {
	flag, field, usage string
	kind               string // "string", "int", "bool", "list", "tags", "volumes"
}

// specFlags has one flag per spec field (DESIGN section 3), in spec order.
var specFlags = []specFlag{
	{"name", "name", "the MEC's name: a DNS-1123 label, unique among live MECs (or give it as the argument)", "string"},
	{"region", "region", "AWS region of the nodes (default: the stack's region)", "string"},
	{"nodes", "nodeCount", fmt.Sprintf("number of nodes, %d-%d (default %d; 3 or more: 3 control-plane nodes)", spec.MinNodeCount, spec.MaxNodeCount, spec.DefaultNodeCount), "int"},
	{"instance-type", "instanceType", "EC2 instance type (default " + spec.DefaultInstanceType + ")", "string"},
	{"ami-id", "amiId", "AMI (default: the latest Ubuntu 24.04 LTS for the architecture)", "string"},
	{"vpc-id", "vpcId", "VPC (default: the region's default VPC)", "string"},
	{"subnet-id", "subnetId", "subnet (default: a default subnet)", "string"},
	{"ebs-kms-key", "ebsKmsKeyId", "KMS key for the nodes' volumes: key id, ARN, alias or alias ARN (default: the region's EBS default)", "string"},
	{"channel", "microk8sChannel", "MicroK8s snap channel (default " + spec.DefaultChannel + ")", "string"},
	{"addons", "addons", "comma-separated addons from: " + strings.Join(spec.AllowedAddons, ", ") + ` (default dns; "" for none)`, "list"},
	{"api-access-cidrs", "apiAccessCidrs", "comma-separated CIDRs allowed to the Kubernetes API (16443); repeatable (default: none, VPC only)", "list"},
	{"node-port-cidrs", "nodePortCidrs", "comma-separated CIDRs allowed to NodePorts (30000-32767); repeatable", "list"},
	{"public-endpoint", "publicEndpoint", "point the kubeconfig at the control plane's public IP", "bool"},
	{"allow-world-access", "allowWorldAccess", "allow 0.0.0.0/0 in --api-access-cidrs or --node-port-cidrs (refused without it)", "bool"},
	{"ha-control-plane", "haControlPlane", "3 control-plane nodes (default true with 3+ nodes); =false makes nodes 1.. workers", "bool"},
	{"root-volume-gib", "rootVolumeGiB", fmt.Sprintf("root volume size in GiB, %d-%d (default %d)", spec.MinRootVolumeGiB, spec.MaxRootVolumeGiB, spec.DefaultRootVolumeGiB), "int"},
	{"data-volumes", "dataVolumes", fmt.Sprintf("extra EBS volumes per node, COUNT or COUNTxGIB such as 3x100: 0-%d volumes of %d-%d GiB (default size %d)", spec.MaxDataVolumes, spec.MinDataVolumeGiB, spec.MaxDataVolumeGiB, spec.DefaultDataVolumeGiB), "volumes"},
	{"ttl", "ttl", `lifetime, a Go duration such as "8h" (10m-2160h); the MEC is deleted after it`, "string"},
	{"expires-at", "expiresAt", "RFC 3339 time after which the MEC is deleted (instead of --ttl)", "string"},
	{"tag", "tags", "tag KEY=VALUE for every AWS resource; repeatable", "tags"},
}

var createCmd = &command{
	name:    "create",
	args:    "[NAME]",
	summary: "create a MEC (with --wait: follow it to READY)",
	detail: `The spec comes from flags, from a JSON file (-f spec.json, - for stdin), or
both: flags override the file's fields. The spec is checked here with the
API's own rules before anything is sent.

  mecctl create edge-1 --nodes 3 --addons dns,hostpath-storage --ttl 8h --wait
  mecctl create -f spec.json --region eu-central-1`,
	flags: func(a *App, fs *flag.FlagSet) func(context.Context, []string) error {
		vals := map[string]any{}
		for _, sf := range specFlags {
			sf := sf
			switch sf.kind {
			case "string":
				vals[sf.field] = fs.String(sf.flag, "", sf.usage)
			case "int":
				vals[sf.field] = fs.Int(sf.flag, 0, sf.usage)
			case "bool":
				b := new(bool)
				vals[sf.field] = b
				fs.BoolVar(b, sf.flag, false, sf.usage)
			case "list":
				l := &[]string{}
				vals[sf.field] = l
				fs.Func(sf.flag, sf.usage, func(s string) error {
					for _, p := range strings.Split(s, ",") {
						if p = strings.TrimSpace(p); p != "" {
							*l = append(*l, p)
						}
					}
					return nil
				})
			case "volumes":
				dv := &spec.DataVolumes{}
				vals[sf.field] = dv
				fs.Func(sf.flag, sf.usage, func(s string) error {
					var err error
					*dv, err = parseDataVolumes(s)
					return err
				})
			case "tags":
				t := map[string]string{}
				vals[sf.field] = t
				fs.Func(sf.flag, sf.usage, func(s string) error {
					k, v, ok := strings.Cut(s, "=")
					if !ok || k == "" {
						return errors.New("want KEY=VALUE")
					}
					t[k] = v
					return nil
				})
			}
		}
		file := fs.String("f", "", "JSON spec file (- reads stdin); flags override its fields")
		wait := fs.Bool("wait", false, "follow the provisioning step by step until READY (or FAILED)")
		timeout := fs.Duration("timeout", 45*time.Minute, "with --wait: give up waiting after this long (the MEC keeps going)")
		poll := fs.Duration("poll", 0, "with --wait: how often to look (default 2s; 200ms for local endpoints)")
		key := fs.String("idempotency-key", "", "repeat a create safely: the same key and spec answer with the same MEC (default: a random key)")
		out := fs.String("o", fmtTable, "output: table, json or yaml (the record; progress goes to stderr then)")
		return func(ctx context.Context, args []string) error {
			if err := checkFormat("create", *out); err != nil {
				return err
			}
			if len(args) > 1 {
				return usagef("create", "one NAME at most, got %d arguments", len(args))
			}
			set := map[string]bool{}
			fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
			body, err := a.buildSpec(args, set, vals, *file)
			if err != nil {
				return err
			}
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			start := a.now()
			m, err := c.Create(ctx, body, *key)
			if err != nil {
				return err
			}
			progressOut := a.stdout
			if *out != fmtTable {
				progressOut = a.stderr
			}
			if !*wait {
				if *out != fmtTable {
					return writeData(a.stdout, *out, m)
				}
				fmt.Fprintf(a.stdout, "MEC %s (%s) is %s in %s.\n", m.Name, m.ID, m.Status, m.Region)
				fmt.Fprintf(a.stdout, "Follow it: mecctl get %s   (or create with --wait)\n", m.Name)
				return nil
			}
			fmt.Fprintf(progressOut, "Creating MEC %s (%s) in %s: %s\n", m.Name, m.ID, m.Region, nodesSummary(m))
			w := &follower{out: progressOut, start: start, now: a.now, poll: a.pollInterval(c, *poll)}
			wctx, cancel := context.WithTimeout(ctx, *timeout)
			defer cancel()
			final, err := w.follow(wctx, c, m.ID, func(m *mec.MEC) bool { return m.Status != mec.Creating })
			if err != nil {
				return waitError(err, ctx, m, "READY")
			}
			if *out != fmtTable {
				if err := writeData(a.stdout, *out, final); err != nil {
					return err
				}
			}
			if final.Status != mec.Ready {
				return fmt.Errorf("MEC %s is %s at step %s: %s (delete it with: mecctl delete %s)", final.Name, final.Status,
					final.FailedStep, final.FailureCause, final.ID)
			}
			if *out == fmtTable {
				readySummary(a.stdout, final, a.now().Sub(start), a.now())
			}
			return nil
		}
	},
}

// buildSpec assembles the JSON body from the file and the flags given,
// and checks it with spec.Parse (the API's own rules) before sending.
// parseDataVolumes reads --data-volumes: "3" (the default size) or "3x100".
// The numbers' bounds are the API's to check, so both say the same.
func parseDataVolumes(s string) (spec.DataVolumes, error) {
	count, size, sized := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "x")
	var dv spec.DataVolumes
	var err error
	if dv.Count, err = strconv.Atoi(count); err != nil {
		return dv, errors.New("want COUNT or COUNTxGIB, such as 1 or 3x100")
	}
	if sized {
		if dv.SizeGiB, err = strconv.Atoi(size); err != nil {
			return dv, errors.New("want COUNT or COUNTxGIB, such as 1 or 3x100")
		}
	}
	return dv, nil
}

func (a *App) buildSpec(args []string, set map[string]bool, vals map[string]any, file string) ([]byte, error) {
	obj := map[string]json.RawMessage{}
	if file != "" {
		var (
			b   []byte
			err error
		)
		if file == "-" {
			b, err = io.ReadAll(a.stdin)
		} else {
			b, err = os.ReadFile(file)
		}
		if err != nil {
			return nil, usagef("create", "-f: %v", err)
		}
		if err := json.Unmarshal(b, &obj); err != nil {
			return nil, usagef("create", "-f %s: not a JSON object: %v", file, err)
		}
	}
	if len(args) == 1 {
		if set["name"] && *(vals["name"].(*string)) != args[0] {
			return nil, usagef("create", "the name is given twice (%q and --name %q)", args[0], *(vals["name"].(*string)))
		}
		obj["name"], _ = json.Marshal(args[0])
	}
	for _, sf := range specFlags {
		if !set[sf.flag] {
			continue
		}
		var v any
		switch p := vals[sf.field].(type) {
		case *string:
			v = *p
		case *int:
			v = *p
		case *bool:
			v = *p
		case *[]string:
			v = *p
		case *spec.DataVolumes:
			v = *p
		case map[string]string:
			// --tag adds to the file's tags rather than replacing them.
			tags := map[string]string{}
			if raw, ok := obj["tags"]; ok {
				_ = json.Unmarshal(raw, &tags)
			}
			for k, val := range p {
				tags[k] = val
			}
			v = tags
		}
		obj[sf.field], _ = json.Marshal(v)
	}
	if _, ok := obj["name"]; !ok {
		return nil, usagef("create", "the MEC needs a name: mecctl create NAME (or --name, or in -f's spec)")
	}
	body, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode spec: %w", err)
	}
	// The stack's regions are the API's to check: a stand-in region lets
	// the other rules run here.
	if _, err := spec.Parse(body, spec.Defaults{Region: "us-east-1", Now: a.now}); err != nil {
		var ve *spec.ValidationError
		if errors.As(err, &ve) {
			return nil, &usageError{cmd: "create", msg: "the spec is not valid (nothing was sent):" + fieldLines(ve.Fields, flagFor)}
		}
		return nil, err
	}
	return body, nil
}

// flagFor names the flag of a spec field ("nodeCount" -> "--nodes").
func flagFor(field string) string {
	base := field
	if i := strings.IndexAny(base, "[."); i >= 0 {
		base = base[:i]
	}
	for _, sf := range specFlags {
		if sf.field == base {
			return "--" + sf.flag
		}
	}
	return ""
}

func fieldLines(fields map[string]string, hint func(string) string) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		name := k
		if h := hint(k); h != "" {
			name += " (" + h + ")"
		}
		fmt.Fprintf(&b, "\n  %s: %s", name, fields[k])
	}
	return b.String()
}

func (a *App) pollInterval(c *client.Client, flagValue time.Duration) time.Duration {
	if flagValue > 0 {
		return flagValue
	}
	if client.IsLocalHost(c.Endpoint.Hostname()) {
		return 200 * time.Millisecond
	}
	return 2 * time.Second
}

func readySummary(w io.Writer, m *mec.MEC, took time.Duration, now time.Time) {
	fmt.Fprintf(w, "\nMEC %s is READY (%s).\n", m.Name, took.Round(100*time.Millisecond))
	fmt.Fprintf(w, "  Endpoint: %s\n", m.Endpoint)
	fmt.Fprintf(w, "  Expires:  %s\n", expiresLong(m.ExpiresAt, now))
	fmt.Fprintln(w, "  Nodes:")
	writeNodes(w, m.Nodes)
	fmt.Fprintf(w, "\nGet its kubeconfig:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintf(tw, "  mecctl kubeconfig %s\t# merged into ~/.kube/config (or $KUBECONFIG) as context %q\n", m.Name, m.Name)
	fmt.Fprintf(tw, "  mecctl kubeconfig %s -o %s.yaml\t# or a file of its own\n", m.Name, m.Name)
	_ = tw.Flush()
}

// waitError explains a wait that ended early: the MEC itself goes on.
func waitError(err error, parent context.Context, m *mec.MEC, want string) error {
	switch {
	case parent.Err() != nil:
		return fmt.Errorf("stopped waiting for %s to be %s; it goes on without us (mecctl get %s): %w", m.Name, want, m.ID, parent.Err())
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s is not %s yet (--timeout); it goes on without us (mecctl get %s)", m.Name, want, m.ID)
	}
	return err
}

// follower prints each step of a MEC as it starts and ends.
type follower struct {
	out     io.Writer
	start   time.Time
	now     func() time.Time
	poll    time.Duration
	printed map[string]string // step#attempt -> outcome printed
}

func (f *follower) follow(ctx context.Context, c *client.Client, id string, done func(*mec.MEC) bool) (*mec.MEC, error) {
	if f.printed == nil {
		f.printed = map[string]string{}
	}
	for {
		m, err := c.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		f.print(m)
		if done(m) {
			return m, nil
		}
		t := time.NewTimer(f.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return m, ctx.Err()
		case <-t.C:
		}
	}
}

func (f *follower) print(m *mec.MEC) {
	elapsed := f.now().Sub(f.start).Seconds()
	for _, s := range m.Steps {
		key := s.Name + "#" + strconv.Itoa(s.Attempt)
		if f.printed[key] == s.Outcome {
			continue
		}
		if s.Outcome != mec.OutcomeRunning && f.printed[key] == "" {
			// Started and ended between two looks: the start line still helps reading.
			fmt.Fprintf(f.out, "[%6.1fs] %-14s %s\n", elapsed, stepLabel(s), mec.OutcomeRunning)
		}
		f.printed[key] = s.Outcome
		line := fmt.Sprintf("[%6.1fs] %-14s %s", elapsed, stepLabel(s), s.Outcome)
		if s.Outcome != mec.OutcomeRunning {
			line += fmt.Sprintf(" in %.1fs", s.Seconds)
			if s.Detail != "" {
				line += "  " + clip(s.Detail, 90)
			}
		}
		fmt.Fprintln(f.out, line)
	}
}

func stepLabel(s mec.Step) string {
	if s.Attempt > 1 {
		return fmt.Sprintf("%s (#%d)", s.Name, s.Attempt)
	}
	return s.Name
}
