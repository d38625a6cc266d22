package stack

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/mecd/mecd/internal/backend"
)

// TestAppSynthesizes runs the CDK app as `make synth` does (Go alone, with
// cdk.json's context), into a temporary cdk.out: one template for the
// backend and one per extra MEC region, with cdk-nag passing.
func TestAppSynthesizes(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles and runs cmd/cdk")
	}
	root, err := backend.RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./cmd/cdk",
		"-c", CtxFunctionsDir+"="+functionsDir, "-c", CtxRegion+"="+homeRegion, "-c", CtxRegions+"="+homeRegion+","+mecRegion)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CDK_OUTDIR="+out, "CDK_CONTEXT_JSON=", "CDK_DEFAULT_REGION=", "CDK_DEFAULT_ACCOUNT=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run ./cmd/cdk: %v\n%s", err, b)
	}
	for _, name := range []string{"mecd.template.json", "mecd-events-" + mecRegion + ".template.json"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		var tpl struct{ Resources map[string]any }
		if err := json.Unmarshal(b, &tpl); err != nil || len(tpl.Resources) == 0 {
			t.Errorf("%s: no resources (%v)", name, err)
		}
	}
}
