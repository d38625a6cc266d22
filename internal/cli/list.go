package cli

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mecd/mecd/internal/client"
	"github.com/mecd/mecd/internal/mec"
)

var listCmd = &command{
	name:    "list",
	summary: "list MECs in every region, newest first",
	detail: `DELETED MECs (kept a while for audit) are left out unless --all or
--status DELETED is given. Every page is read.`,
	flags: func(a *App, fs *flag.FlagSet) func(context.Context, []string) error {
		out := fs.String("o", fmtTable, "output: table, json or yaml")
		status := fs.String("status", "", "only MECs with this status: CREATING, READY, FAILED, DELETING or DELETED")
		region := fs.String("region", "", "only MECs in this region")
		all := fs.Bool("all", false, "include DELETED MECs")
		return func(ctx context.Context, args []string) error {
			if err := checkFormat("list", *out); err != nil {
				return err
			}
			if len(args) > 0 {
				return usagef("list", "no arguments expected, got %q", strings.Join(args, " "))
			}
			st := strings.ToUpper(*status)
			if st != "" && !mec.Status(st).Valid() {
				return usagef("list", "--status %q: want CREATING, READY, FAILED, DELETING or DELETED", *status)
			}
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			ms, err := c.ListAll(ctx, client.ListOptions{Status: st, Region: *region})
			if err != nil {
				return err
			}
			if !*all && st == "" {
				ms = slices.DeleteFunc(ms, func(m *mec.MEC) bool { return m.Status == mec.Deleted })
			}
			switch *out {
			case fmtTable:
				if len(ms) == 0 {
					fmt.Fprintln(a.stdout, "No MECs.")
					return nil
				}
				return writeTable(a.stdout, ms, a.now())
			default:
				if ms == nil {
					ms = []*mec.MEC{}
				}
				return writeData(a.stdout, *out, client.ListPage{Items: ms})
			}
		}
	},
}

var getCmd = &command{
	name:    "get",
	args:    "ID|NAME",
	summary: "show a MEC: status, nodes and roles, endpoint, progress per step",
	flags: func(a *App, fs *flag.FlagSet) func(context.Context, []string) error {
		out := fs.String("o", fmtTable, "output: table (for people), json or yaml (the record)")
		return func(ctx context.Context, args []string) error {
			if err := checkFormat("get", *out); err != nil {
				return err
			}
			_, m, err := a.target(ctx, "get", args)
			if err != nil {
				return err
			}
			if *out != fmtTable {
				return writeData(a.stdout, *out, m)
			}
			return writeMEC(a.stdout, m, a.now())
		}
	},
}

var deleteCmd = &command{
	name:    "delete",
	args:    "ID|NAME",
	summary: "tear a MEC down: nodes, security group, parameters (with --wait: until DELETED)",
	flags: func(a *App, fs *flag.FlagSet) func(context.Context, []string) error {
		wait := fs.Bool("wait", false, "follow the teardown until the MEC is DELETED")
		timeout := fs.Duration("timeout", 30*time.Minute, "with --wait: give up waiting after this long (the teardown goes on)")
		poll := fs.Duration("poll", 0, "with --wait: how often to look (default 2s; 200ms for local endpoints)")
		return func(ctx context.Context, args []string) error {
			c, m, err := a.target(ctx, "delete", args)
			if err != nil {
				return err
			}
			start := a.now()
			m, err = c.Delete(ctx, m.ID)
			if err != nil {
				return err
			}
			if m.Status == mec.Deleted {
				fmt.Fprintf(a.stdout, "MEC %s (%s) is already DELETED.\n", m.Name, m.ID)
				return nil
			}
			fmt.Fprintf(a.stdout, "Deleting MEC %s (%s) in %s.\n", m.Name, m.ID, m.Region)
			if !*wait {
				fmt.Fprintf(a.stdout, "Follow it: mecctl get %s   (or delete with --wait)\n", m.ID)
				return nil
			}
			// Only what happens from now on: the provisioning's steps are history.
			f := &follower{out: a.stdout, start: start, now: a.now, poll: a.pollInterval(c, *poll)}
			for _, s := range m.Steps {
				f.markPrinted(s)
			}
			wctx, cancel := context.WithTimeout(ctx, *timeout)
			defer cancel()
			final, err := f.follow(wctx, c, m.ID, func(m *mec.MEC) bool { return m.Status == mec.Deleted })
			if err != nil {
				return waitError(err, ctx, m, "DELETED")
			}
			fmt.Fprintf(a.stdout, "MEC %s is DELETED (%s): its nodes, security group and parameters are gone.\n",
				final.Name, a.now().Sub(start).Round(100*time.Millisecond))
			return nil
		}
	},
}

// markPrinted keeps an old step out of the progress lines.
func (f *follower) markPrinted(s mec.Step) {
	if f.printed == nil {
		f.printed = map[string]string{}
	}
	f.printed[s.Name+"#"+fmt.Sprint(s.Attempt)] = s.Outcome
}
