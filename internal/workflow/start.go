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
// and the sweeper can never run two at once. Names are unique for 90 days,
// so after a teardown that ended without deleting the MEC (failed, aborted,
// timed out) the next attempt is numbered: teardown-<id>-2, -3, ...
func TeardownName(m *record.MEC, attempt int) string {
	if attempt <= 1 {
		return "teardown-" + m.ID
	}
	return "teardown-" + m.ID + "-" + strconv.Itoa(attempt)
}

// maxTeardownAttempts bounds the numbered names tried.
const maxTeardownAttempts = 20

// StartTeardown starts the teardown of m, or finds the one running, and
// returns the execution ARN; started is false when one was already running
// (or had already succeeded).
func StartTeardown(ctx context.Context, c Starter, stateMachineArn string, m *record.MEC) (arn string, started bool, err error) {
	for attempt := 1; attempt <= maxTeardownAttempts; attempt++ {
		name := TeardownName(m, attempt)
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
		arn = executionArn(stateMachineArn, name)
		d, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
		if err != nil {
			return "", false, fmt.Errorf("describe teardown %s: %w", name, err)
		}
		switch d.Status {
		case sfntypes.ExecutionStatusRunning, sfntypes.ExecutionStatusPendingRedrive, sfntypes.ExecutionStatusSucceeded:
			// The running (or finished) one answers this request.
			return arn, false, nil
		}
		// That attempt ended without deleting the MEC: try the next name.
	}
	return "", false, fmt.Errorf("start teardown of %s: %d attempts already ended without deleting it", m.ID, maxTeardownAttempts)
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
