package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/mecd/mecd/internal/client"
	"github.com/mecd/mecd/internal/mec"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Run is the whole command, with the process's stdin and environment.
func Run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &App{stdin: os.Stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv, now: time.Now}
	return a.Main(ctx, args)
}

// App is one invocation: its streams, environment and common options.
type App struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time

	endpoint, profile, apiRegion, stack string
	// newClient is replaced by tests that need a fake API.
	newClient func(ctx context.Context) (*client.Client, error)
}

// usageError is a mistake in the command line: exit 2 with a hint.
type usageError struct {
	cmd string
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// command is one subcommand.
type command struct {
	name    string
	args    string // positional arguments, for the usage line
	summary string
	detail  string
	// flags registers the command's own flags; run gets the positional args.
	flags func(a *App, fs *flag.FlagSet) func(ctx context.Context, args []string) error
}

// allCommands is filled in init: completion lists the commands it is part of.
var allCommands []*command

func init() {
	allCommands = []*command{createCmd, listCmd, getCmd, scaleCmd, deleteCmd, kubeconfigCmd, grafanaCmd, dashboardCmd, versionCmd, completionCmd}
}

func commands() []*command { return allCommands }

func findCommand(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// NewApp is an invocation with the given streams, environment and clock
// (tests run the CLI in-process through it).
func NewApp(stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string, now func() time.Time) *App {
	return &App{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, now: now}
}

// Main runs the command line args and returns the exit code.
func (a *App) Main(ctx context.Context, args []string) int {
	global := flag.NewFlagSet("mecctl", flag.ContinueOnError)
	a.commonFlags(global)
	global.SetOutput(io.Discard)
	global.Usage = func() {}
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			a.usage(a.stdout)
			return exitOK
		}
		fmt.Fprintf(a.stderr, "mecctl: %v\n\n", err)
		a.usage(a.stderr)
		return exitUsage
	}
	rest := global.Args()
	if len(rest) == 0 {
		a.usage(a.stderr)
		return exitUsage
	}
	name := rest[0]
	if name == "help" {
		if len(rest) > 1 {
			if c := findCommand(rest[1]); c != nil {
				fs, _ := a.flagSet(c)
				a.commandUsage(a.stdout, c, fs)
				return exitOK
			}
		}
		a.usage(a.stdout)
		return exitOK
	}
	c := findCommand(name)
	if c == nil {
		fmt.Fprintf(a.stderr, "mecctl: unknown command %q\n\n", name)
		a.usage(a.stderr)
		return exitUsage
	}
	fs, runFn := a.flagSet(c)
	pos, err := parseInterleaved(fs, rest[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			a.commandUsage(a.stdout, c, fs)
			return exitOK
		}
		fmt.Fprintf(a.stderr, "mecctl %s: %v\n", c.name, err)
		fmt.Fprintf(a.stderr, "Run 'mecctl %s --help' for usage.\n", c.name)
		return exitUsage
	}
	return a.report(c.name, runFn(ctx, pos))
}

// flagSet builds a command's flag set: its own flags plus the common ones,
// so those may come before or after the command name.
func (a *App) flagSet(c *command) (*flag.FlagSet, func(context.Context, []string) error) {
	fs := flag.NewFlagSet("mecctl "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // usage is printed by report / commandUsage
	fs.Usage = func() {}
	runFn := c.flags(a, fs)
	if c.name != "version" && c.name != "completion" {
		a.commonFlags(fs)
	}
	return fs, runFn
}

func (a *App) commonFlags(fs *flag.FlagSet) {
	if fs.Lookup("endpoint") != nil {
		return
	}
	fs.StringVar(&a.endpoint, "endpoint", a.endpoint, "the API URL (default $"+client.EndpointEnv+", else the stack's "+client.StackOutput+" output)")
	fs.StringVar(&a.profile, "profile", a.profile, "AWS shared config profile (default $AWS_PROFILE)")
	fs.StringVar(&a.apiRegion, "api-region", a.apiRegion, "the API's region, for signing and the stack look-up (default: from the endpoint, else $AWS_REGION or the profile's)")
	fs.StringVar(&a.stack, "stack", a.stack, "CloudFormation stack whose "+client.StackOutput+" output is the endpoint (default $MECD_STACK, else \""+client.DefaultStack+"\")")
}

// parseInterleaved lets positional arguments and flags come in any order
// (`mecctl get edge-1 -o json`), which the flag package alone does not.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// The flag package stops at "--" (consumed) or at a non-flag.
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// report prints err the way its kind deserves and returns the exit code.
func (a *App) report(cmd string, err error) int {
	if err == nil {
		return exitOK
	}
	var ue *usageError
	var ae *client.Error
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(a.stderr, "mecctl %s: %s\n", cmd, ue.msg)
		fmt.Fprintf(a.stderr, "Run 'mecctl %s --help' for usage.\n", cmd)
		return exitUsage
	case errors.As(err, &ae):
		fmt.Fprintf(a.stderr, "Error: %s\n", ae.Message)
		if ae.Code != "" || ae.Status != 0 {
			fmt.Fprintf(a.stderr, "  (%s, HTTP %d)\n", ae.Code, ae.Status)
		}
		for _, k := range ae.FieldNames() {
			fmt.Fprintf(a.stderr, "  %s: %s\n", k, ae.Fields[k])
		}
		return exitError
	default:
		fmt.Fprintf(a.stderr, "Error: %v\n", err)
		return exitError
	}
}

// target is the preamble of the commands that act on one MEC: exactly one
// argument, an API client, and the MEC that argument names.
func (a *App) target(ctx context.Context, cmd string, args []string) (*client.Client, *mec.MEC, error) {
	if len(args) != 1 {
		return nil, nil, usagef(cmd, "want one MEC id or name")
	}
	c, err := a.client(ctx)
	if err != nil {
		return nil, nil, err
	}
	m, err := c.Resolve(ctx, args[0])
	return c, m, err
}

func (a *App) client(ctx context.Context) (*client.Client, error) {
	if a.newClient != nil {
		return a.newClient(ctx)
	}
	stack := a.stack
	if stack == "" {
		stack = a.getenv("MECD_STACK")
	}
	return client.New(ctx, client.Options{
		Endpoint:  a.endpoint,
		Region:    a.apiRegion,
		Profile:   a.profile,
		Stack:     stack,
		UserAgent: "mecctl/" + version(),
		Getenv:    a.getenv,
	})
}

func (a *App) usage(w io.Writer) {
	var b bytes.Buffer
	b.WriteString(`mecctl manages MicroK8s edge clusters (MECs) through the mecd API.

Usage:
  mecctl [common flags] <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(&b, "  %-11s %s\n", "help", "help about a command")
	b.WriteString("\nCommon flags (before or after the command):\n")
	fs := flag.NewFlagSet("common", flag.ContinueOnError)
	(&App{}).commonFlags(fs)
	printFlags(&b, fs, nil)
	b.WriteString(`
Requests are signed with SigV4 using the AWS SDK's credential chain
(AWS_ACCESS_KEY_ID..., AWS_PROFILE, SSO via 'aws sso login').
Exit codes: 0 ok, 1 API or runtime error, 2 usage error.
Run 'mecctl <command> --help' for a command's flags.
`)
	_, _ = w.Write(b.Bytes())
}

func (a *App) commandUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Usage: mecctl %s [flags]", c.name)
	if c.args != "" {
		fmt.Fprintf(&b, " %s", c.args)
	}
	fmt.Fprintf(&b, "\n\n%s\n", c.summary)
	if c.detail != "" {
		fmt.Fprintf(&b, "\n%s\n", strings.TrimSpace(c.detail))
	}
	common := flag.NewFlagSet("common", flag.ContinueOnError)
	(&App{}).commonFlags(common)
	own := func(f *flag.Flag) bool { return common.Lookup(f.Name) == nil }
	b.WriteString("\nFlags:\n")
	printFlags(&b, fs, own)
	b.WriteString("  --help\n        show this help\n")
	if fs.Lookup("endpoint") != nil {
		b.WriteString("\nCommon flags: --endpoint, --profile, --api-region, --stack (see 'mecctl --help').\n")
	}
	_, _ = w.Write(b.Bytes())
}

// printFlags prints flags as --name TYPE, one per entry, like the flag
// package but with the two dashes the documentation uses.
func printFlags(w io.Writer, fs *flag.FlagSet, keep func(*flag.Flag) bool) {
	fs.VisitAll(func(f *flag.Flag) {
		if keep != nil && !keep(f) {
			return
		}
		typ, usage := flag.UnquoteUsage(f)
		if typ == "value" {
			typ = "list"
			if strings.Contains(usage, "KEY=VALUE") {
				typ = "KEY=VALUE"
			}
		}
		line := "  --" + f.Name
		if len(f.Name) == 1 {
			line = "  -" + f.Name
		}
		if typ != "" {
			line += " " + typ
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "%s\n        %s\n", line, usage)
	})
}

// flagNames lists a command's flags for shell completion.
func (a *App) flagNames(c *command) []string {
	fs, _ := a.flagSet(c)
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if len(f.Name) == 1 {
			names = append(names, "-"+f.Name)
		} else {
			names = append(names, "--"+f.Name)
		}
	})
	sort.Strings(names)
	return append(names, "--help")
}
