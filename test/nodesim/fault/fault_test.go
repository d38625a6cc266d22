package fault

import "testing"

func TestCommandFaultsBySelectorAndTimes(t *testing.T) {
	f := New(1)
	tags := map[string]string{"mecd:name": "edge-1"}
	f.FailCommand(Command{Host: Host{TagKey: "mecd:name", TagValue: "edge-1", Index: 1}, Prefix: "microk8s join", Times: 1, Stderr: "boom"})
	tests := []struct {
		name  string
		tags  map[string]string
		index int
		argv  []string
		want  bool
	}{
		{"other host index", tags, 2, []string{"microk8s", "join", "x"}, false},
		{"other MEC", map[string]string{"mecd:name": "edge-2"}, 1, []string{"microk8s", "join", "x"}, false},
		{"other command", tags, 1, []string{"microk8s", "status"}, false},
		{"the selected one fails once", tags, 1, []string{"microk8s", "join", "x"}, true},
		{"then works again", tags, 1, []string{"microk8s", "join", "x"}, false},
	}
	for _, tc := range tests {
		c, ok := f.CommandFault(tc.tags, tc.index, tc.argv)
		if ok != tc.want {
			t.Fatalf("%s: fault=%v, want %v", tc.name, ok, tc.want)
		}
		if ok && (c.ExitCode != 1 || c.Stderr != "boom") {
			t.Fatalf("%s: %+v", tc.name, c)
		}
	}
}

func TestNeverOnlineAndClear(t *testing.T) {
	f := New(1)
	f.NeverOnline(Host{TagKey: "mecd:name", TagValue: "a", Index: AnyIndex})
	if !f.IsNeverOnline(map[string]string{"mecd:name": "a"}, 3) || f.IsNeverOnline(map[string]string{"mecd:name": "b"}, 0) {
		t.Fatal("selector mismatch")
	}
	f.ClearHosts("mecd:name", "a")
	if f.IsNeverOnline(map[string]string{"mecd:name": "a"}, 3) {
		t.Fatal("ClearHosts left the fault")
	}
}

func TestAPIFaultRateAndTimes(t *testing.T) {
	f := New(42)
	f.FailAPI(API{Service: "ec2", Action: "RunInstances", Rate: 1, Code: "RequestLimitExceeded", Times: 2})
	f.FailAPI(API{Service: "ssm", Rate: 0.5, Code: "ThrottlingException"})
	for i := 0; i < 2; i++ {
		if code, ok := f.APIFault("ec2", "RunInstances", nil); !ok || code != "RequestLimitExceeded" {
			t.Fatalf("call %d: %q %v", i, code, ok)
		}
	}
	if _, ok := f.APIFault("ec2", "RunInstances", nil); ok {
		t.Fatal("fault outlived its Times")
	}
	hits := 0
	for i := 0; i < 1000; i++ {
		if _, ok := f.APIFault("ssm", "GetParameter", nil); ok {
			hits++
		}
	}
	if hits < 400 || hits > 600 {
		t.Fatalf("rate 0.5 hit %d of 1000", hits)
	}
	f.Reset()
	if _, ok := f.APIFault("ssm", "GetParameter", nil); ok {
		t.Fatal("Reset left a fault")
	}
}

// A host-scoped API fault fails only that host's own calls.
func TestAPIFaultScopedToAHost(t *testing.T) {
	f := New(1)
	f.FailAPI(API{Service: "ssm", Action: "PutParameter", Rate: 1, Code: "ThrottlingException", Host: &Host{TagKey: "name", TagValue: "a", Index: 0}})
	tests := []struct {
		name   string
		caller *Caller
		fails  bool
	}{
		{"a Lambda", nil, false},
		{"another cluster's node", &Caller{Tags: map[string]string{"name": "b"}, Index: 0}, false},
		{"another node of the cluster", &Caller{Tags: map[string]string{"name": "a"}, Index: 1}, false},
		{"the node", &Caller{Tags: map[string]string{"name": "a"}, Index: 0}, true},
	}
	for _, tc := range tests {
		if _, ok := f.APIFault("ssm", "PutParameter", tc.caller); ok != tc.fails {
			t.Errorf("%s: failed %v, want %v", tc.name, ok, tc.fails)
		}
	}
}
