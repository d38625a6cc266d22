// Command probefn is a test-only Lambda for the local runtime's own tests: it
// echoes, fails with a named error, or panics, as its input asks.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type input struct {
	Action string          `json:"action"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// ProbeError is a named error type: aws-lambda-go reports it as errorType.
type ProbeError struct{ Msg string }

func (e *ProbeError) Error() string { return e.Msg }

func handle(ctx context.Context, in input) (map[string]any, error) {
	lc, _ := lambdacontext.FromContext(ctx)
	reqID := ""
	if lc != nil {
		reqID = lc.AwsRequestID
	}
	slog.InfoContext(ctx, "probe invoked", "action", in.Action, "requestId", reqID)
	switch in.Action {
	case "fail":
		return nil, &ProbeError{Msg: "probe failed on purpose"}
	case "panic":
		panic("probe panics on purpose")
	case "sleep":
		// Busy long enough to be killed while serving.
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
		return map[string]any{"slept": true}, nil
	case "env":
		return map[string]any{"table": os.Getenv("TABLE_NAME"), "endpoint": os.Getenv("AWS_ENDPOINT_URL"), "pid": os.Getpid()}, nil
	default:
		return map[string]any{"echo": in.Data, "pid": os.Getpid(), "fn": os.Getenv("AWS_LAMBDA_FUNCTION_NAME")}, nil
	}
}

func main() {
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	if os.Getenv("AWS_LAMBDA_RUNTIME_API") == "" {
		fmt.Fprintln(os.Stderr, "probefn runs under a Lambda runtime API")
		os.Exit(2)
	}
	lambda.Start(handle)
}
