package steps

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"
)

func TestNextIntervalGrowsWithTheWait(t *testing.T) {
	poll := 10 * time.Second
	tests := []struct{ waited, want time.Duration }{
		{0, 45 * time.Second},
		{20 * time.Second, 25 * time.Second},
		{60 * time.Second, 30 * time.Second},
		{10 * time.Minute, 90 * time.Second},
		{time.Hour, 90 * time.Second},
	}
	for _, tc := range tests {
		if got := nextInterval(tc.waited, poll); got != tc.want {
			t.Errorf("nextInterval(%v) = %v, want %v", tc.waited, got, tc.want)
		}
	}
}

// The node-online look overshoots the last agent's registration by at most
// 2 % of the wait once past the floor.
func TestLookAgainOvershootsAtMostTwoPercent(t *testing.T) {
	poll := 10 * time.Second
	tests := []struct{ waited, want time.Duration }{
		{0, time.Second},                     // floor: poll/10
		{45 * time.Second, time.Second},      // 2 % is 0.9 s, under the floor
		{100 * time.Second, 2 * time.Second}, // 2 %
		{370 * time.Second, 5 * time.Second}, // cap: poll/2 (2 % is 7.4 s)
		{20 * time.Millisecond, time.Second}, // floor
	}
	for _, tc := range tests {
		got := lookAgain(tc.waited, poll)
		if got != tc.want {
			t.Errorf("lookAgain(%v) = %v, want %v", tc.waited, got, tc.want)
		}
		if tc.waited >= 50*time.Second && got > tc.waited/50 {
			t.Errorf("lookAgain(%v) = %v: more than 2 %% of the wait", tc.waited, got)
		}
	}
	if got := lookAgain(0, 100*time.Millisecond); got != 50*time.Millisecond {
		t.Errorf("scaled floor: %v, want 50ms", got)
	}
}

func TestIngressRulesAreClosedByDefault(t *testing.T) {
	tests := []struct {
		name          string
		api, nodePort []string
		wantRules     int
	}{
		{"nothing listed: only the group itself", nil, nil, 1},
		{"api only", []string{"10.0.0.0/16"}, nil, 2},
		{"api and nodeports (tcp and udp)", []string{"10.0.0.0/16"}, []string{"192.168.0.0/24"}, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rules := IngressRules("sg-1", tc.api, tc.nodePort)
			if len(rules) != tc.wantRules {
				t.Fatalf("%d rules, want %d", len(rules), tc.wantRules)
			}
			for _, r := range rules {
				for _, rg := range r.IpRanges {
					if aws.ToString(rg.CidrIp) == "0.0.0.0/0" {
						t.Errorf("rule open to the world: %+v", r)
					}
				}
				from, to := aws.ToInt32(r.FromPort), aws.ToInt32(r.ToPort)
				if aws.ToString(r.IpProtocol) != "-1" && from <= 22 && to >= 22 {
					t.Errorf("rule covers port 22: %+v", r)
				}
				if aws.ToString(r.IpProtocol) == "-1" && (len(r.IpRanges) > 0 || len(r.UserIdGroupPairs) != 1 || aws.ToString(r.UserIdGroupPairs[0].GroupId) != "sg-1") {
					t.Errorf("all-traffic rule not limited to the group: %+v", r)
				}
			}
		})
	}
}

func TestCauseText(t *testing.T) {
	tests := []struct {
		name string
		in   ErrorInfo
		want string
	}{
		{"kumo task failure wraps the Lambda error", ErrorInfo{Error: "States.TaskFailed",
			Cause: `execute state "x": lambda invoke: unexpected status 500: {"errorMessage":"i-1 never reported Online","errorType":"NodesNotOnline"}`},
			"NodesNotOnline: i-1 never reported Online"},
		{"AWS Lambda error cause", ErrorInfo{Error: "NodeLost", Cause: `{"errorMessage":"node i-2 is terminated","errorType":"NodeLost"}`},
			"NodeLost: node i-2 is terminated"},
		{"callback failure", ErrorInfo{Error: "CommandFailed", Cause: "install failed on i-3"}, "CommandFailed: install failed on i-3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := causeText(&tc.in); got != tc.want {
				t.Errorf("causeText = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRedactAndTail(t *testing.T) {
	secret := "abcdefghijklmnopqrstuvwxyz0123456789"
	if got := redact("join 10.0.0.1:25000/"+secret+"/abc failed", secret); strings.Contains(got, secret) {
		t.Fatalf("secret survived: %s", got)
	}
	if got := redact("short", "ab"); got != "short" {
		t.Fatalf("a short string must not be treated as a secret: %s", got)
	}
	long := strings.Repeat("line\n", 1000) + "the end"
	if got := tail(long, 100); len(got) > 104 || !strings.HasSuffix(got, "the end") {
		t.Fatalf("tail = %q", got)
	}
}

func TestLambdaErrorNames(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{stepErr(ErrJoinFailed, "x"), ErrJoinFailed},
		{&smithy.GenericAPIError{Code: "ThrottlingException"}, ErrTransient},
		{errors.New("boom"), ErrStep},
	}
	for _, tc := range tests {
		var ie messages.InvokeResponse_Error
		if !errors.As(LambdaError(tc.err), &ie) || ie.Type != tc.want {
			t.Errorf("LambdaError(%v) type %q, want %q", tc.err, ie.Type, tc.want)
		}
	}
	if LambdaError(nil) != nil {
		t.Error("nil error must stay nil")
	}
}
