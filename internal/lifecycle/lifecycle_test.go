package lifecycle

import (
	"context"
	"strings"
	"testing"

	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/mecd/mecd/internal/mec"
)

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
	return &sfn.StartExecutionOutput{ExecutionArn: aws.String(mec.ExecutionArn(aws.ToString(in.StateMachineArn), name))}, nil
}

func (f *fakeStarter) DescribeExecution(_ context.Context, in *sfn.DescribeExecutionInput, _ ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	arn := aws.ToString(in.ExecutionArn)
	name := arn[strings.LastIndex(arn, ":")+1:]
	return &sfn.DescribeExecutionOutput{Status: f.existing[name]}, nil
}

func TestStartTeardown(t *testing.T) {
	const sm = "arn:aws:states:us-east-1:123456789012:stateMachine:teardown"
	m := &mec.MEC{ID: "mec-01m88ed722b3qa9zgvjbtd1n60"}
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
