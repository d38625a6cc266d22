package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/store"
)

// Starter is what starting a workflow needs from Step Functions.
type Starter interface {
	StartExecution(ctx context.Context, in *sfn.StartExecutionInput, opts ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
	DescribeExecution(ctx context.Context, in *sfn.DescribeExecutionInput, opts ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error)
}

var _ Starter = (*sfn.Client)(nil)

// maxTeardownAttempts bounds the numbered teardown names tried.
const maxTeardownAttempts = 20

// input is every execution's input: the id only; the steps read the rest
// from the record.
func input(m *mec.MEC) *string { return aws.String(fmt.Sprintf(`{"clusterId":%q}`, m.ID)) }

// StartProvision starts the provisioning of a record the API created and
// returns the execution ARN. The execution name is the cluster id, so a
// retried start cannot make a second run.
func StartProvision(ctx context.Context, c Starter, stateMachineArn string, m *mec.MEC) (string, error) {
	name := mec.ProvisionExecution(m.ID)
	out, err := c.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(stateMachineArn), Name: aws.String(name), Input: input(m),
	})
	if err == nil {
		return aws.ToString(out.ExecutionArn), nil
	}
	var exists *sfntypes.ExecutionAlreadyExists
	if errors.As(err, &exists) {
		return mec.ExecutionArn(stateMachineArn, name), nil
	}
	return "", fmt.Errorf("start provisioning: %w", err)
}

// StartTeardown starts the teardown of m, or finds the one running, and
// returns the execution ARN; started is false when one was already running
// (or had already succeeded).
func StartTeardown(ctx context.Context, c Starter, stateMachineArn string, m *mec.MEC) (arn string, started bool, err error) {
	for attempt := 1; attempt <= maxTeardownAttempts; attempt++ {
		name := mec.TeardownExecution(m.ID, attempt)
		out, err := c.StartExecution(ctx, &sfn.StartExecutionInput{
			StateMachineArn: aws.String(stateMachineArn), Name: aws.String(name), Input: input(m),
		})
		if err == nil {
			return aws.ToString(out.ExecutionArn), true, nil
		}
		var exists *sfntypes.ExecutionAlreadyExists
		if !errors.As(err, &exists) {
			return "", false, fmt.Errorf("start teardown %s: %w", name, err)
		}
		arn = mec.ExecutionArn(stateMachineArn, name)
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

// StartRollback starts the rollback of a CREATING MEC whose provisioning
// ended without recording a result; started is false when one already ran
// (its fixed name answers).
func StartRollback(ctx context.Context, c Starter, stateMachineArn string, m *mec.MEC, errName, cause string) (arn string, started bool, err error) {
	name := mec.RollbackExecution(m.ID)
	input, err := json.Marshal(map[string]any{"clusterId": m.ID, "error": map[string]string{"Error": errName, "Cause": cause}})
	if err != nil {
		return "", false, fmt.Errorf("rollback input: %w", err)
	}
	out, err := c.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(stateMachineArn), Name: aws.String(name), Input: aws.String(string(input)),
	})
	if err == nil {
		return aws.ToString(out.ExecutionArn), true, nil
	}
	var exists *sfntypes.ExecutionAlreadyExists
	if errors.As(err, &exists) {
		return mec.ExecutionArn(stateMachineArn, name), false, nil
	}
	return "", false, fmt.Errorf("start rollback: %w", err)
}

// Recorder is what recording a started workflow needs of the record store.
type Recorder interface {
	Update(ctx context.Context, id string, fn func(*mec.MEC) error) (*mec.MEC, error)
}

// Teardown starts m's teardown (or finds the one running) and records it:
// the MEC is DELETING from this answer on, not only once the workflow's
// first step ran. When the start fails, out is nil. A failed write comes
// back with the MEC as it would read: the teardown runs regardless and
// marks the record itself.
func Teardown(ctx context.Context, c Starter, rec Recorder, stateMachineArn string, m *mec.MEC) (out *mec.MEC, started bool, err error) {
	arn, started, err := StartTeardown(ctx, c, stateMachineArn, m)
	if err != nil {
		return nil, false, err
	}
	mark := func(r *mec.MEC) {
		r.TeardownExecutionArn = arn
		if r.Status != mec.Deleted {
			r.Status = mec.Deleting
		}
	}
	updated, err := rec.Update(ctx, m.ID, func(r *mec.MEC) error {
		if r.TeardownExecutionArn == arn && (r.Status == mec.Deleting || r.Status == mec.Deleted) {
			return store.ErrNoChange
		}
		mark(r)
		return nil
	})
	if err != nil {
		cp := *m
		mark(&cp)
		return &cp, started, fmt.Errorf("record teardown %s: %w", arn, err)
	}
	return updated, started, nil
}

// StartScale starts the scale workflow of m's latest operation (a scale or
// a repair), which the caller recorded, and returns the execution ARN. The name holds the
// operation's number: a retried start finds the run going, and a later
// operation can never share it. commandTimeout bounds each node command
// (the callback tasks' timeout, with a minute to spare).
func StartScale(ctx context.Context, c Starter, stateMachineArn string, m *mec.MEC, commandTimeout time.Duration) (string, error) {
	op := m.Operation()
	if op == nil {
		return "", fmt.Errorf("start scale of %s: no operation recorded", m.ID)
	}
	name := mec.ScaleExecution(m.ID, op.Number)
	in, err := json.Marshal(map[string]any{"clusterId": m.ID, "kind": op.Kind,
		"timeouts": map[string]int{"command": int(math.Ceil(commandTimeout.Seconds())) + 60}})
	if err != nil {
		return "", fmt.Errorf("scale input: %w", err)
	}
	out, err := c.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(stateMachineArn), Name: aws.String(name), Input: aws.String(string(in)),
	})
	if err == nil {
		return aws.ToString(out.ExecutionArn), nil
	}
	var exists *sfntypes.ExecutionAlreadyExists
	if errors.As(err, &exists) {
		return mec.ExecutionArn(stateMachineArn, name), nil
	}
	return "", fmt.Errorf("start scale: %w", err)
}

// StartUndo starts the undo of m's latest operation, whose execution ended
// without recording its outcome (timed out, aborted): the scale workflow
// from its undo, as scale-<id>-<n>-undo, so two sweeps cannot start two.
// started is false when it already ran.
func StartUndo(ctx context.Context, c Starter, stateMachineArn string, m *mec.MEC, why string) (arn string, started bool, err error) {
	op := m.Operation()
	if op == nil {
		return "", false, fmt.Errorf("undo of %s: no operation recorded", m.ID)
	}
	name := mec.ScaleExecution(m.ID, op.Number) + "-undo"
	in, err := json.Marshal(map[string]any{"clusterId": m.ID, "kind": op.Kind, "undo": true,
		"error": map[string]string{"Error": "OperationLost", "Cause": why}, "timeouts": map[string]int{"command": 3600}})
	if err != nil {
		return "", false, fmt.Errorf("undo input: %w", err)
	}
	out, err := c.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(stateMachineArn), Name: aws.String(name), Input: aws.String(string(in)),
	})
	if err == nil {
		return aws.ToString(out.ExecutionArn), true, nil
	}
	var exists *sfntypes.ExecutionAlreadyExists
	if errors.As(err, &exists) {
		return mec.ExecutionArn(stateMachineArn, name), false, nil
	}
	return "", false, fmt.Errorf("start undo: %w", err)
}
