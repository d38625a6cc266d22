// Command cleanup is a Lambda (provided.al2023): Cleanup terminates a MEC's instances and deletes its security group and parameters.
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
		fmt.Fprintf(os.Stderr, "cleanup: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	s, err := workflow.FromEnvironment(ctx)
	if err != nil {
		return err
	}
	lambda.Start(workflow.Wrap(s.Cleanup))
	return nil
}
