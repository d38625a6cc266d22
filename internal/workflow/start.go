package workflow

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/mecd/mecd/internal/record"
)

// Starter is what starting a workflow needs from Step Functions.
type Starter interface {
	StartExecution(ctx context.Context, in *sfn.StartExecutionInput, opts ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
	DescribeExecution(ctx context.Context, in *sfn.DescribeExecutionInput, opts ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error)
}

// TeardownName is the execution name of a MEC's teardown: fixed, so the API
// and the sweeper can never run two; after a failed teardown the next
// attempt gets a numbered name (names are unique for 90 days).
func TeardownName(m *record.MEC) string {
	name := "teardown-" + m.ID
	if st := m.Step(StepTeardown); st != nil && st.Outcome == record.StepError {
		name += "-" + strconv.Itoa(st.Attempt+1)
	}
	return name
}

// StartTeardown starts (or finds running) the teardown of m and returns the
// execution ARN. started is false when a teardown was already running.
func StartTeardown(ctx context.Context, c Starter, stateMachineArn string, m *record.MEC) (arn string, started bool, err error) {
	name := TeardownName(m)
	out, err := c.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(stateMachineArn),
		Name:            aws.String(name),
		Input:           aws.String(fmt.Sprintf(`{"clusterId":%q}`, m.ID)),
	})
	if err == nil {
		return aws.ToString(out.ExecutionArn), true, nil
	}
	var exists *sfntypes.ExecutionAlreadyExists
	if !errors.As(err, &exists) {
		return "", false, fmt.Errorf("start teardown %s: %w", name, err)
	}
	// The same name ran before: the running one answers this request.
	arn = executionArn(stateMachineArn, name)
	return arn, false, nil
}

// StartProvision starts the provisioning of a record the API created. The
// execution name is the cluster id, so a retried start cannot make a second run.
func StartProvision(ctx context.Context, c Starter, stateMachineArn string, m *record.MEC) (string, error) {
	out, err := c.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(stateMachineArn),
		Name:            aws.String(m.ID),
		Input:           aws.String(fmt.Sprintf(`{"clusterId":%q}`, m.ID)),
	})
	if err == nil {
		return aws.ToString(out.ExecutionArn), nil
	}
	var exists *sfntypes.ExecutionAlreadyExists
	if errors.As(err, &exists) {
		return executionArn(stateMachineArn, m.ID), nil
	}
	return "", fmt.Errorf("start provisioning: %w", err)
}

// executionArn derives an execution's ARN from its state machine's and its name.
func executionArn(stateMachineArn, name string) string {
	const marker = ":stateMachine:"
	for i := 0; i+len(marker) <= len(stateMachineArn); i++ {
		if stateMachineArn[i:i+len(marker)] == marker {
			return stateMachineArn[:i] + ":execution:" + stateMachineArn[i+len(marker):] + ":" + name
		}
	}
	return ""
}
