package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"

	"github.com/mecd/mecd/internal/record"
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

// fakeStarter answers StartExecution from a map of existing executions.
type fakeStarter struct {
	existing map[string]sfntypes.ExecutionStatus // by name
	started  []string
}

func (f *fakeStarter) StartExecution(_ context.Context, in *sfn.StartExecutionInput, _ ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error) {
	name := aws.ToString(in.Name)
	if _, ok := f.existing[name]; ok {
		return nil, &sfntypes.ExecutionAlreadyExists{Message: aws.String("exists")}
	}
	f.existing[name] = sfntypes.ExecutionStatusRunning
	f.started = append(f.started, name)
	return &sfn.StartExecutionOutput{ExecutionArn: aws.String(executionArn(aws.ToString(in.StateMachineArn), name))}, nil
}

func (f *fakeStarter) DescribeExecution(_ context.Context, in *sfn.DescribeExecutionInput, _ ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	arn := aws.ToString(in.ExecutionArn)
	name := arn[strings.LastIndex(arn, ":")+1:]
	return &sfn.DescribeExecutionOutput{Status: f.existing[name]}, nil
}

func TestStartTeardown(t *testing.T) {
	const sm = "arn:aws:states:us-east-1:123456789012:stateMachine:teardown"
	m := &record.MEC{ID: "mec-01m88ed722b3qa9zgvjbtd1n60"}
	base := "teardown-" + m.ID
	tests := []struct {
		name        string
		existing    map[string]sfntypes.ExecutionStatus
		wantStarted string // "" = none started
	}{
		{"first teardown", map[string]sfntypes.ExecutionStatus{}, base},
		{"one already running answers", map[string]sfntypes.ExecutionStatus{base: sfntypes.ExecutionStatusRunning}, ""},
		{"after a failed one, a numbered attempt", map[string]sfntypes.ExecutionStatus{base: sfntypes.ExecutionStatusFailed}, base + "-2"},
		{"after an aborted and a failed one", map[string]sfntypes.ExecutionStatus{base: sfntypes.ExecutionStatusAborted, base + "-2": sfntypes.ExecutionStatusFailed}, base + "-3"},
		{"second attempt running answers", map[string]sfntypes.ExecutionStatus{base: sfntypes.ExecutionStatusFailed, base + "-2": sfntypes.ExecutionStatusRunning}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeStarter{existing: tc.existing}
			arn, started, err := StartTeardown(context.Background(), f, sm, m)
			if err != nil {
				t.Fatal(err)
			}
			if (tc.wantStarted != "") != started || (started && f.started[0] != tc.wantStarted) {
				t.Fatalf("started=%v %v, want %q", started, f.started, tc.wantStarted)
			}
			if !strings.HasPrefix(arn, "arn:aws:states:us-east-1:123456789012:execution:teardown:"+base) {
				t.Fatalf("arn %s", arn)
			}
		})
	}
}

func TestNodePolicyReachesOnlyItsOwnCluster(t *testing.T) {
	doc := NodePolicy("mec-aaa", "eu-central-1")
	var pol struct {
		Statement []struct {
			Sid, Effect string
			Action      any
			Resource    any
			NotResource []string
		}
	}
	if err := json.Unmarshal([]byte(doc), &pol); err != nil {
		t.Fatal(err)
	}
	own := "arn:aws:ssm:eu-central-1:*:parameter/mecd/mec-aaa/"
	denied := false
	for _, st := range pol.Statement {
		switch st.Effect {
		case "Allow":
			if r, _ := st.Resource.(string); !strings.HasPrefix(r, own) {
				t.Errorf("%s allows %v beyond %s", st.Sid, st.Resource, own)
			}
		case "Deny":
			denied = len(st.NotResource) == 1 && st.NotResource[0] == own+"*"
		}
	}
	if !denied {
		t.Fatalf("no deny of every parameter outside %s: %s", own, doc)
	}
}
