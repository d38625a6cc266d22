// Command cdk is mecd's CDK app: it synthesizes the backend stack (and, for
// each MEC region other than the home one, an event forwarder) into cdk.out/
// with cdk-nag's AwsSolutionsChecks applied; any finding fails it.
//
// Run by the CDK CLI (cdk.json: "go run ./cmd/cdk"), it takes the context and
// output directory the CLI passes. Run alone (`make synth`), it reads
// cdk.json's context itself, takes `-c key=value` overrides and writes
// cdk.out/ at the repository root: no Node.js CLI needed.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/mecd/mecd/internal/backend"
	"github.com/mecd/mecd/stack"
)

func main() {
	err := run(os.Args[1:])
	jsii.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "cdk: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	root, err := backend.RepoRoot(".")
	if err != nil {
		return err
	}
	props := &awscdk.AppProps{}
	if os.Getenv("CDK_CONTEXT_JSON") == "" {
		// Not run by the CLI: do what it would, from cdk.json.
		ctx, err := fileContext(filepath.Join(root, "cdk.json"))
		if err != nil {
			return err
		}
		if err := overrides(ctx, args); err != nil {
			return err
		}
		props.Context = &ctx
	}
	if os.Getenv("CDK_OUTDIR") == "" {
		props.Outdir = jsii.String(filepath.Join(root, "cdk.out"))
	}
	app := awscdk.NewApp(props)
	cfg, err := stack.ConfigFromContext(func(k string) any { return app.Node().TryGetContext(jsii.String(k)) }, root)
	if err != nil {
		return err
	}
	if err := stack.Validate(&cfg.Props); err != nil {
		return err
	}
	stack.NewMecdStack(app, cfg.StackName, &cfg.Props)
	if home := cfg.Props.Env.Region; home != nil {
		for _, region := range cfg.Props.AllowedRegions {
			if region == *home {
				continue
			}
			stack.NewEventForwarderStack(app, cfg.StackName+"-events-"+region, &stack.EventForwarderProps{
				StackProps: awscdk.StackProps{Env: &awscdk.Environment{Account: cfg.Props.Env.Account, Region: jsii.String(region)}},
				HomeRegion: *home,
			})
		}
	}
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)

	app.Synth(nil)
	problems, err := findings(*app.Outdir())
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("synth found %d problems (cdk-nag findings fail it):\n%s", len(problems), strings.Join(problems, "\n"))
	}
	fmt.Fprintf(os.Stderr, "cdk: wrote %s\n", *app.Outdir())
	return nil
}

// findings reads the cloud assembly's manifest for errors, and for cdk-nag
// warnings: the CLI would stop on the first, a reviewer should on the second.
func findings(outdir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(outdir, "manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("read the cloud assembly: %w", err)
	}
	var m struct {
		Artifacts map[string]struct {
			Metadata map[string][]struct {
				Type string `json:"type"`
				Data any    `json:"data"`
			} `json:"metadata"`
		} `json:"artifacts"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse the cloud assembly manifest: %w", err)
	}
	var out []string
	for _, a := range m.Artifacts {
		for path, entries := range a.Metadata {
			for _, e := range entries {
				text := fmt.Sprint(e.Data)
				if e.Type == "aws:cdk:error" || (e.Type == "aws:cdk:warning" && strings.HasPrefix(text, "AwsSolutions-")) {
					out = append(out, path+": "+text)
				}
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// fileContext reads cdk.json's "context".
func fileContext(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read cdk.json: %w", err)
	}
	var f struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if f.Context == nil {
		f.Context = map[string]any{}
	}
	return f.Context, nil
}

// overrides applies `-c key=value` / `--context key=value` as the CLI does.
func overrides(ctx map[string]any, args []string) error {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-c" || a == "--context":
			if i+1 >= len(args) {
				return fmt.Errorf("%s needs key=value", a)
			}
			i++
			a = args[i]
		case strings.HasPrefix(a, "--context="):
			a = strings.TrimPrefix(a, "--context=")
		default:
			return fmt.Errorf("unknown argument %q (want -c key=value)", a)
		}
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return fmt.Errorf("context %q: want key=value", a)
		}
		ctx[k] = v
	}
	return nil
}
