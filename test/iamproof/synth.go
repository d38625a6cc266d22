package iamproof

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/mecd/mecd/internal/backend"
	"github.com/mecd/mecd/stack"
)

// Synthesize builds the stack as `make synth` does (functions as dummy
// bootstraps: only the template matters) and resolves its policies.
func Synthesize(d Deployed) (*Policies, error) {
	dir, err := os.MkdirTemp("", "mecd-iamproof")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for _, f := range backend.Functions {
		if err := os.MkdirAll(filepath.Join(dir, f.Name), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name, "bootstrap"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			return nil, err
		}
	}
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(filepath.Join(dir, "cdk.out"))})
	st := stack.NewMecdStack(app, d.StackName, &stack.MecdStackProps{
		StackProps:     awscdk.StackProps{Env: &awscdk.Environment{Region: jsii.String(d.Region), Account: jsii.String(d.Account)}},
		FunctionsDir:   dir,
		AllowedRegions: d.Regions,
	})
	asm := app.Synth(nil)
	raw, err := os.ReadFile(*asm.GetStackArtifact(st.ArtifactId()).TemplateFullPath())
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	var tpl template
	if err := json.Unmarshal(raw, &tpl); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	return tpl.policies(d)
}
