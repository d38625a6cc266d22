package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

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
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, now: time.Now,
		getenv: func(k string) string {
			if v, ok := env[k]; ok {
				return v
			}
			return os.Getenv(k)
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	code := a.main(ctx, args)
	t.Logf("mecctl %s: exit %d in %v", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond))
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// TestRun covers run itself: the streams and exit codes main passes on.
func TestRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{[]string{"version"}, exitOK, "mecctl ", ""},
		{[]string{"--help"}, exitOK, "Commands:", ""},
		{[]string{"help", "kubeconfig"}, exitOK, "--force", ""},
		{[]string{"list", "--help"}, exitOK, "--status", ""},
		{nil, exitUsage, "", "Commands:"},
		{[]string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{[]string{"list", "-o", "xml"}, exitUsage, "", "want table, json or yaml"},
		{[]string{"list", "extra"}, exitUsage, "", "no arguments expected"},
		{[]string{"list", "--status", "GONE"}, exitUsage, "", "--status"},
		{[]string{"get"}, exitUsage, "", "want one MEC id or name"},
		{[]string{"delete", "a", "b"}, exitUsage, "", "want one MEC id or name"},
		{[]string{"create", "--nodes", "many"}, exitUsage, "", "invalid value"},
		{[]string{"create"}, exitUsage, "", "needs a name"},
		{[]string{"create", "Bad_Name", "--nodes", "0", "--addons", "dns,nope"}, exitUsage, "",
			"name (--name): must be a DNS-1123 label"},
		{[]string{"create", "x", "--tag", "novalue"}, exitUsage, "", "want KEY=VALUE"},
		{[]string{"completion", "fish"}, exitUsage, "", "want bash or zsh"},
		{[]string{"completion", "bash"}, exitOK, "complete -F _mecctl mecctl", ""},
		{[]string{"completion", "zsh"}, exitOK, "#compdef mecctl", ""},
		{[]string{"--endpoint", "ftp://example.com", "list"}, exitError, "", "want a URL such as"},
		{[]string{"list", "--endpoint", "http://api.example.com/v1"}, exitError, "", "plain http is allowed only for local endpoints"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, &out, &errb)
			if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
				t.Errorf("mecctl %v: %s\nwant exit %d, stdout with %q, stderr with %q", tc.args, result{code, out.String(), errb.String()}, tc.code, tc.out, tc.err)
			}
		})
	}
}
