// Command record-status is a Lambda (provided.al2023): RecordStatus moves a MEC record to READY, FAILED, DELETING or DELETED.
// The logic lives in internal/workflow; this file only wires it.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/mecd/mecd/internal/workflow"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "record-status: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	s, err := workflow.FromEnvironment(ctx)
	if err != nil {
		return err
	}
	lambda.Start(workflow.Wrap(s.RecordStatus))
	return nil
}
