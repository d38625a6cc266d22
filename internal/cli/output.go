package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/spec"
)

// Output formats.
const (
	fmtTable = "table"
	fmtJSON  = "json"
	fmtYAML  = "yaml"
)

func checkFormat(cmd, f string) error {
	switch f {
	case fmtTable, fmtJSON, fmtYAML:
		return nil
	}
	return usagef(cmd, "-o %q: want table, json or yaml", f)
}

// writeData prints v as indented JSON or as YAML with the JSON field names
// in the JSON order (converted from the JSON, so both say the same).
func writeData(w io.Writer, format string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	if format == fmtJSON {
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	y, err := jsonToYAML(b)
	if err != nil {
		return err
	}
	_, err = w.Write(y)
	return err
}

// jsonToYAML re-encodes JSON as block-style YAML. JSON is YAML, so parsing
// it keeps key order and types; only the flow style has to go.
func jsonToYAML(j []byte) ([]byte, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(j, &n); err != nil {
		return nil, fmt.Errorf("convert to yaml: %w", err)
	}
	var clear func(*yaml.Node)
	clear = func(n *yaml.Node) {
		n.Style = 0 // the encoder still quotes strings that would read as another type
		for _, c := range n.Content {
			clear(c)
		}
	}
	clear(&n)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("convert to yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("convert to yaml: %w", err)
	}
	return b.Bytes(), nil
}

// writeTable prints MECs one per line.
func writeTable(w io.Writer, ms []*mec.MEC, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tSTATUS\tREGION\tNODES\tAGE\tEXPIRES\tOWNER\tDETAIL")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.ID, m.Status, m.Region, nodesSummary(m),
			age(now.Sub(m.CreatedAt)), expiryOf(m, now), ownerShort(m.Owner), detail(m))
	}
	return tw.Flush()
}

// ownerShort is the part of an owner ARN that tells people apart in a
// listing (the account is mostly the same): an assumed role's role and
// session ("Dev/alice"), else the ARN's resource ("user/bob"); "-" for none,
// so every line has as many columns.
func ownerShort(arn string) string {
	const width = 40
	if arn == "" {
		return "-"
	}
	s := arn
	if parts := strings.SplitN(arn, ":", 6); len(parts) == 6 {
		s = strings.TrimPrefix(parts[5], "assumed-role/")
	}
	// A long role name (Identity Center's) gives way to the session: the person.
	if i := strings.LastIndex(s, "/"); i > 0 && len([]rune(s)) > width {
		if n := width - len([]rune(s[i:])); n > 8 {
			return clip(s[:i], n) + s[i:]
		}
	}
	return clip(s, width)
}

// nodesSummary is "count (roles)": the launched nodes, else what the spec will launch.
func nodesSummary(m *mec.MEC) string {
	var cp, w int
	if len(m.Nodes) > 0 {
		for _, n := range m.LiveNodes() {
			if n.Role == string(spec.RoleWorker) {
				w++
			} else {
				cp++
			}
		}
	} else {
		cp = m.Spec.ControlPlaneCount()
		w = m.Spec.NodeCount - cp
	}
	s := fmt.Sprintf("%d (%dcp", cp+w, cp)
	if w > 0 {
		s += fmt.Sprintf(",%dw", w)
	}
	return s + ")"
}

// detail is the one thing worth knowing about a MEC in a listing.
func detail(m *mec.MEC) string {
	switch m.Status {
	case mec.Creating:
		p := m.ComputeProgress()
		if p.Running != "" {
			return fmt.Sprintf("step %d/%d: %s", min(p.Done+1, len(p.Steps)), len(p.Steps), p.Running)
		}
		return fmt.Sprintf("step %d/%d", p.Done, len(p.Steps))
	case mec.Failed:
		return "failed at " + m.FailedStep + ": " + clip(m.FailureCause, 60)
	case mec.Ready:
		return m.Endpoint
	case mec.Deleting:
		if s := m.RunningStep(); s != "" {
			return "step: " + s
		}
	case mec.Scaling:
		if op := m.Operation(); op != nil {
			return fmt.Sprintf("%d -> %d nodes", op.From, op.To)
		}
	case mec.Degraded, mec.Repairing:
		return clip(m.DegradedCause, 60)
	}
	return ""
}

// age is a short duration: 45s, 12m, 3h, 2d.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// expiryOf is when the sweeper deletes m ("-" once it is gone).
func expiryOf(m *mec.MEC, now time.Time) string {
	if m.Status == mec.Deleted {
		return "-"
	}
	return expiry(m.ExpiresAt, now)
}

func expiry(t *time.Time, now time.Time) string {
	if t == nil {
		return "never"
	}
	if d := t.Sub(now); d > 0 {
		return "in " + age(d)
	}
	return "expired"
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// writeMEC prints one MEC for people: what it is, its nodes and its steps.
func writeMEC(w io.Writer, m *mec.MEC, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Name:\t%s\n", m.Name)
	fmt.Fprintf(tw, "ID:\t%s\n", m.ID)
	fmt.Fprintf(tw, "Status:\t%s\n", m.Status)
	fmt.Fprintf(tw, "Region:\t%s\n", m.Region)
	owner := m.Owner
	if owner == "" {
		owner = "none recorded (not created through the API)"
	}
	fmt.Fprintf(tw, "Owner:\t%s\n", owner)
	disks := ""
	if dv := m.Spec.DataVolumes; dv != nil && dv.Count > 0 {
		disks = fmt.Sprintf(", data %d x %d GiB", dv.Count, dv.SizeGiB)
	}
	fmt.Fprintf(tw, "Spec:\t%d nodes %s, MicroK8s %s, addons %s, root %d GiB%s\n", m.Spec.NodeCount, m.Spec.InstanceType,
		m.Spec.Microk8sChannel, strings.Join(m.Spec.Addons, ","), m.Spec.RootVolumeGiB, disks)
	if len(m.Addons) > 0 {
		// How far each addon got: enabled (MicroK8s'), ready (mecd's).
		var states []string
		for _, a := range m.Addons {
			st := a.Name + " " + a.State
			if a.Seconds > 0 {
				st += fmt.Sprintf(" in %.0fs", a.Seconds)
			}
			states = append(states, st)
		}
		fmt.Fprintf(tw, "Addons:\t%s\n", strings.Join(states, ", "))
	}
	fmt.Fprintf(tw, "Created:\t%s (%s ago)\n", m.CreatedAt.Format(time.RFC3339), age(now.Sub(m.CreatedAt)))
	fmt.Fprintf(tw, "Expires:\t%s\n", expiresLong(m.ExpiresAt, now))
	if m.Endpoint != "" {
		fmt.Fprintf(tw, "Endpoint:\t%s\n", m.Endpoint)
	}
	if m.Status == mec.Failed {
		fmt.Fprintf(tw, "Failed step:\t%s\n", m.FailedStep)
		fmt.Fprintf(tw, "Cause:\t%s\n", m.FailureCause)
	}
	if m.DegradedCause != "" && (m.Status == mec.Degraded || m.Status == mec.Repairing) {
		// What is lost, and why no repair runs (DEGRADED) or what a repair
		// replaces (REPAIRING).
		fmt.Fprintf(tw, "Lost:\t%s\n", m.DegradedCause)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if live := m.LiveNodes(); len(live) > 0 {
		fmt.Fprintln(w, "Nodes:")
		writeNodes(w, live)
		if gone := len(m.Nodes) - len(live); gone > 0 {
			// The history of a MEC that changed: which nodes left, and why.
			fmt.Fprintln(w, "Former nodes:")
			var former []mec.Node
			for _, n := range m.Nodes {
				if !n.Live() {
					former = append(former, n)
				}
			}
			writeNodes(w, former)
		}
	} else if len(m.Nodes) > 0 {
		fmt.Fprintf(w, "Nodes:    none (%d terminated: %s)\n", len(m.Nodes), m.Nodes[0].Reason)
	}
	if len(m.Operations) > 0 {
		fmt.Fprintln(w, "Operations:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, op := range m.Operations {
			fmt.Fprintf(tw, "  %d\t%s %d -> %d\t%s\t%s\t%s\n", op.Number, op.Kind, op.From, op.To, op.Outcome,
				op.StartedAt.Format(time.RFC3339), clip(op.Detail, 80))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(m.Steps) > 0 {
		fmt.Fprintln(w, "Steps:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, s := range m.Steps {
			secs := ""
			if s.EndedAt != nil {
				secs = fmt.Sprintf("%.1fs", s.Seconds)
			}
			att := ""
			if s.Attempt > 1 {
				att = fmt.Sprintf(" (attempt %d)", s.Attempt)
			}
			fmt.Fprintf(tw, "  %s%s\t%s\t%s\t%s\n", s.Name, att, s.Outcome, secs, clip(s.Detail, 80))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func writeNodes(w io.Writer, nodes []mec.Node) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, n := range nodes {
		ip := n.PrivateIP
		if n.PublicIP != "" {
			ip += " (public " + n.PublicIP + ")"
		}
		state := ""
		switch {
		case n.State != "":
			state = n.State
			if n.Reason != "" {
				state += ": " + n.Reason
			}
		case n.Operation > 0:
			state = fmt.Sprintf("added by operation %d", n.Operation)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", n.Index, n.InstanceID, n.Role, ip, state)
	}
	_ = tw.Flush()
}

func expiresLong(t *time.Time, now time.Time) string {
	if t == nil {
		return "never (delete it when done)"
	}
	return t.Format(time.RFC3339) + " (" + expiry(t, now) + ")"
}
