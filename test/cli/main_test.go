// Package cli_test runs mecctl in-process against the local runtime: create
// --wait, list in every format, kubeconfig merges, delete --wait, API errors.
package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mecd/mecd/internal/cli"
	"github.com/mecd/mecd/test/localrt"
)

func TestMain(m *testing.M) {
	// The CLI reads credentials and region the SDK's usual way: from the
	// environment here, never from the machine's own AWS files.
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           localrt.AccessKey,
		"AWS_SECRET_ACCESS_KEY":       localrt.SecretKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  localrt.DefaultRegion,
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"MECD_ENDPOINT":               "",
		"KUBECONFIG":                  "",
	} {
		os.Setenv(k, v)
	}
	localrt.Main(m, localrt.Options{Scale: 0.01})
}

// mecctl's exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// mecctl runs the CLI in-process with extra environment variables.
func mecctl(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	a := cli.NewApp(strings.NewReader(""), &out, &errb, func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return os.Getenv(k)
	}, time.Now)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	code := a.Main(ctx, args)
	t.Logf("mecctl %s: exit %d in %v", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond))
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}
