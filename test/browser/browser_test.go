package browser

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/spec"
	"github.com/mecd/mecd/test/localrt"
)

func TestMain(m *testing.M) {
	localrt.Main(m, localrt.Options{Scale: 0.01})
}

// TestDashboardInBrowser opens the dashboard on the local runtime in
// Debian's chromium (headless, driven by playwright-core from npm): the
// seeded MECs in their states, a validation error for a bad name, a MEC
// created through the form to READY, its kubeconfig downloaded, deleted.
// Screenshots go to test/artifacts/. Without chromium or node_modules it
// skips, unless CI=true, where that is a failure (make browser-deps
// installs both).
func TestDashboardInBrowser(t *testing.T) {
	if missing := browserDeps(); len(missing) > 0 {
		msg := "browser test needs " + strings.Join(missing, " and ") + ": run `make browser-deps`"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Parallel()
	rt := localrt.Get(t)
	c, err := Client(rt)
	if err != nil {
		t.Fatal(err)
	}
	url, stop, err := Serve(c, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	prefix := fmt.Sprintf("bt%d", time.Now().UnixMilli()%1_000_000)
	seeded, err := Seed(ctx, rt, c, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded in %v: %+v", time.Since(start).Round(time.Millisecond), seeded)
	seededJSON, _ := json.Marshal(map[string]any{"ready": seeded.Ready, "failed": seeded.Failed, "slow": seeded.Slow})

	artifacts, _ := filepath.Abs(filepath.Join("..", "artifacts"))
	name := prefix + "-form"
	cmd := exec.CommandContext(ctx, "node", "dashboard.test.mjs")
	cmd.Env = append(os.Environ(), "DASHBOARD_URL="+url, "MEC_NAME="+name, "SEEDED="+string(seededJSON),
		"CHROMIUM_PATH="+chromiumPath(), "ARTIFACTS="+artifacts)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		t.Log(lines.Text())
	}
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("browser test (%v): %v; screenshots in %s", time.Since(start).Round(time.Millisecond), err, artifacts)
	}
	t.Logf("browser test passed in %v; screenshots in %s", time.Since(start).Round(time.Millisecond), artifacts)

	// What the browser did, the API confirms: the form's MEC is DELETED, nothing left behind.
	m, err := c.Resolve(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	// Made with 1 node, scaled to 2 with the card's control.
	if m.Status != mec.Deleted || m.Spec.NodeCount != 2 || len(m.Operations) != 1 || m.Spec.Tags["team"] != "edge" || len(m.Spec.Addons) != 2 ||
		m.Spec.DataVolumes == nil || *m.Spec.DataVolumes != (spec.DataVolumes{Count: 1, SizeGiB: 20}) {
		t.Errorf("the MEC the form made: %s nodes %d tags %v addons %v data volumes %+v", m.Status, m.Spec.NodeCount, m.Spec.Tags, m.Spec.Addons, m.Spec.DataVolumes)
	}
	if leaks, err := rt.LeakAudit(ctx, m.ID); err != nil || len(leaks) > 0 {
		t.Errorf("left behind: %v %v", leaks, err)
	}
}

func chromiumPath() string {
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// browserDeps lists what the browser test needs and does not find.
func browserDeps() []string {
	var missing []string
	if st, err := os.Stat(chromiumPath()); err != nil || st.IsDir() {
		missing = append(missing, "chromium ("+chromiumPath()+"; apt-get install chromium)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "playwright-core", "package.json")); err != nil {
		missing = append(missing, "test/browser/node_modules (npm ci)")
	}
	return missing
}
