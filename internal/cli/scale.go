package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/mecd/mecd/internal/mec"
)

// optBool is a flag that may be left out (nil), unlike flag.Bool.
type optBool struct{ v *bool }

func (o *optBool) String() string {
	if o.v == nil {
		return ""
	}
	return strconv.FormatBool(*o.v)
}

func (o *optBool) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("must be true or false")
	}
	o.v = &b
	return nil
}

func (o *optBool) IsBoolFlag() bool { return true }

var scaleCmd = &command{
	name:    "scale",
	args:    "ID|NAME",
	summary: "change a READY MEC's node count (with --wait: until it is READY again)",
	detail: "New nodes join as control plane while the control plane has fewer than 3 nodes (HA), else as workers;\n" +
		"leaving nodes (workers first, the newest first, never node 0) are drained, removed and terminated.\n" +
		"Going below 3 nodes from an HA control plane needs --ha-control-plane=false.",
	flags: func(a *App, fs *flag.FlagSet) func(context.Context, []string) error {
		nodes := fs.Int("nodes", 0, "the node count to scale to (1-20; required)")
		var ha optBool
		fs.Var(&ha, "ha-control-plane", "false accepts a control plane of fewer than 3 nodes (no dqlite quorum to spare)")
		wait := fs.Bool("wait", false, "follow the scale until the MEC is READY again")
		timeout := fs.Duration("timeout", 30*time.Minute, "with --wait: give up waiting after this long (the scale goes on)")
		poll := fs.Duration("poll", 0, "with --wait: how often to look (default 2s; 200ms for local endpoints)")
		return func(ctx context.Context, args []string) error {
			if *nodes == 0 {
				return usagef("scale", "--nodes is required: the node count to scale to, 1-20")
			}
			c, m, err := a.target(ctx, "scale", args)
			if err != nil {
				return err
			}
			start := a.now()
			m, err = c.Scale(ctx, m.ID, *nodes, ha.v)
			if err != nil {
				return err
			}
			op := m.Operation()
			if m.Status == mec.Ready {
				fmt.Fprintf(a.stdout, "MEC %s (%s) already has %d nodes: nothing to do.\n", m.Name, m.ID, len(m.MemberNodes()))
				return nil
			}
			fmt.Fprintf(a.stdout, "Scaling MEC %s (%s) from %d to %d nodes (operation %d).\n", m.Name, m.ID, op.From, op.To, op.Number)
			if !*wait {
				fmt.Fprintf(a.stdout, "Follow it: mecctl get %s   (or scale with --wait)\n", m.ID)
				return nil
			}
			// Only what happens from now on: earlier steps are history.
			f := &follower{out: a.stdout, start: start, now: a.now, poll: a.pollInterval(c, *poll)}
			for _, s := range m.Steps {
				if s.StartedAt.Before(op.StartedAt) {
					f.markPrinted(s)
				}
			}
			wctx, cancel := context.WithTimeout(ctx, *timeout)
			defer cancel()
			final, err := f.follow(wctx, c, m.ID, func(m *mec.MEC) bool { return m.Status != mec.Scaling })
			if err != nil {
				return waitError(err, ctx, m, "READY")
			}
			done := final.Operation()
			switch {
			case final.Status != mec.Ready:
				return fmt.Errorf("MEC %s is %s: the scale stopped", final.Name, final.Status)
			case done == nil || done.Number != op.Number || done.Outcome != mec.OutcomeSucceeded:
				cause := "unknown"
				if done != nil {
					cause = done.Detail
				}
				return fmt.Errorf("the scale of MEC %s failed: %s", final.Name, cause)
			}
			fmt.Fprintf(a.stdout, "MEC %s is READY with %d nodes (%s).\n", final.Name, len(final.MemberNodes()),
				a.now().Sub(start).Round(100*time.Millisecond))
			return nil
		}
	},
}
