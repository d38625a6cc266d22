package cli

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

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
		{[]string{"create", "x", "--data-volumes", "3y"}, exitUsage, "", "want COUNT or COUNTxGIB, such as 1 or 3x100"},
		{[]string{"create", "x", "--data-volumes", "4x5"}, exitUsage, "", "dataVolumes.count (--data-volumes): must be 0-3"},
		{[]string{"create", "x", "--data-volumes", "1x5"}, exitUsage, "", "dataVolumes.sizeGiB (--data-volumes): must be 10-1000"},
		{[]string{"completion", "fish"}, exitUsage, "", "want bash or zsh"},
		{[]string{"completion", "bash"}, exitOK, "complete -F _mecctl mecctl", ""},
		{[]string{"completion", "zsh"}, exitOK, "#compdef mecctl", ""},
		{[]string{"--endpoint", "ftp://example.com", "list"}, exitError, "", "want a URL such as"},
		{[]string{"list", "--endpoint", "http://api.example.com/v1"}, exitError, "", "plain http is allowed only for local endpoints"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Run(tc.args, &out, &errb)
			if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
				t.Errorf("mecctl %v: %s\nwant exit %d, stdout with %q, stderr with %q", tc.args, fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", code, out.String(), errb.String()), tc.code, tc.out, tc.err)
			}
		})
	}
}
