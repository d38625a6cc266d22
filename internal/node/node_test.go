package node

import (
	"github.com/mecd/mecd/internal/addons"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		vars    map[string]string
		wantErr string
		want    []string
	}{
		{"inputs become quoted variables before the helpers", Install, map[string]string{"CHANNEL": "1.35/stable", "NODE0": "i-0123456789abcdef0"},
			"", []string{"set -euo pipefail", "CHANNEL='1.35/stable'", "NODE0='i-0123456789abcdef0'", "aws_init()", "snap install microk8s"}},
		{"unknown script", "nope", nil, "no such script", nil},
		{"quote in a value", Join, map[string]string{"CHECK": "a'b"}, "characters a script input may not have", nil},
		{"command substitution in a value", Join, map[string]string{"CHECK": "$(reboot)"}, "characters a script input may not have", nil},
		{"lowercase variable name", Join, map[string]string{"check": "x"}, "bad variable name", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render(tc.script, tc.vars)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("rendered script lacks %q", w)
				}
			}
			if strings.Index(got, "CHANNEL=") > strings.Index(got, "aws_init()") {
				t.Error("inputs must come before the helpers")
			}
		})
	}
}

// TestScriptsAreShellcheckClean runs shellcheck on every rendered script.
func TestScriptsAreShellcheckClean(t *testing.T) {
	bin, err := exec.LookPath("shellcheck")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("shellcheck is not installed (make tools installs it)")
		}
		t.Skip("shellcheck not installed; `make tools` installs it")
	}
	vars := map[string]string{"CHANNEL": "1.35/stable", "EXTRA_SANS": "10.0.0.1", "NODE0": "i-1", "TOKEN_PARAM": "/mecd/x/join-token",
		"TOKEN_TTL": "600", "READY_TIMEOUT": "600", "LEADER_IP": "10.0.0.1", "CHECK": "abc", "WORKERS": "", "FAILED_IPS": "",
		"ADDONS": "dns", "EXPECTED_NODES": "3", "ENDPOINT_HOST": "10.0.0.1", "KUBECONFIG_PARAM": "/mecd/x/kubeconfig", "VERIFY_ATTEMPTS": "3",
		"RETRY_SECONDS": "10.000", "OWN_ADDONS": "edgex", "ADDON_TIMEOUT": "600"}
	dir := t.TempDir()
	for _, name := range Names() {
		s, err := Render(name, vars)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name+".sh")
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		// SC2034: inputs unused by a given script are fine.
		out, err := exec.Command(bin, "-s", "bash", "-e", "SC2034", path).CombinedOutput()
		if err != nil {
			t.Errorf("shellcheck %s:\n%s", name, out)
		}
	}
}

func TestParseOutput(t *testing.T) {
	steps, values := ParseOutput("mecd: hello\n::mecd-step addons 1000 2500\n::mecd-check 0123456789ab\n::mecd-step bad x y\n")
	if len(steps) != 1 || steps[0] != (Marker{Step: "addons", StartMs: 1000, End: 2500}) {
		t.Fatalf("steps %+v", steps)
	}
	if values["check"] != "0123456789ab" || len(values) != 1 {
		t.Fatalf("values %v", values)
	}
}

// The user data: EC2 takes at most 16 KB before base64 ("Run commands when
// you launch an EC2 instance with user data input", EC2 User Guide), and
// anyone allowed ec2:DescribeInstanceAttribute reads it, so it carries no
// Parameter Store name and no token.
func TestBootScriptFitsUserData(t *testing.T) {
	s, err := Render(Boot, map[string]string{"CHANNEL": "1.35/stable", "RETRY_SECONDS": "10.000"})
	if err != nil {
		t.Fatal(err)
	}
	if len(s) > 16*1024 {
		t.Fatalf("boot script is %d bytes, over user data's 16 KB", len(s))
	}
	for _, secret := range []string{"get_secure \"$", "TOKEN_PARAM=", "KUBECONFIG_PARAM="} {
		if strings.Contains(s, secret) {
			t.Errorf("boot script has %q: user data is readable by anyone with ec2:DescribeInstanceAttribute", secret)
		}
	}
}

// Addons that change arguments a join does not copy wait for the joins;
// the order within each part is the spec's.
func TestSplitAddons(t *testing.T) {
	tests := []struct {
		in          []string
		early, late string
	}{
		{nil, "", ""},
		{[]string{"dns"}, "dns", ""},
		{[]string{"cert-manager", "dns", "hostpath-storage", "ingress", "metrics-server"}, "cert-manager dns hostpath-storage ingress metrics-server", ""},
		{[]string{"rbac", "dns", "observability", "ingress"}, "dns ingress", "rbac observability"},
	}
	for _, tc := range tests {
		early, late := SplitAddons(tc.in)
		if strings.Join(early, " ") != tc.early || strings.Join(late, " ") != tc.late {
			t.Errorf("SplitAddons(%v) = %v, %v; want %q, %q", tc.in, early, late, tc.early, tc.late)
		}
	}
}

// Every addon that enables dns, itself or as its first step, gives the
// kubelets the DNS service's address; the others leave the node's resolver.
func TestClusterDNS(t *testing.T) {
	tests := []struct {
		addons []string
		want   string
	}{
		{nil, ""},
		{[]string{"hostpath-storage", "ingress", "rbac", "metrics-server"}, ""},
		{[]string{"dns"}, ServiceDNS},
		{[]string{"cert-manager"}, ServiceDNS},
		{[]string{"ingress", "observability"}, ServiceDNS},
	}
	for _, tc := range tests {
		if got := ClusterDNS(tc.addons); got != tc.want {
			t.Errorf("ClusterDNS(%v) = %q, want %q", tc.addons, got, tc.want)
		}
	}
}

// Every node command, with every addon mecd ships inline, stays under SSM's
// 64 KB document size: the script is the document's one parameter.
func TestCommandsFitWithEveryOwnAddon(t *testing.T) {
	for _, name := range Names() {
		if name == Boot {
			continue // user data: its own limit, and no addons
		}
		s, err := Render(name, map[string]string{"OWN_ADDONS": strings.Join(addons.Names(), " ")})
		if err != nil {
			t.Fatal(err)
		}
		if len(s) > 64*1024 {
			t.Errorf("%s with every addon is %d bytes, over 64 KB", name, len(s))
		}
	}
	boot, _ := Render(Boot, map[string]string{"CHANNEL": "1.35/stable"})
	t.Logf("boot %d bytes of 16384", len(boot))
}
