// Command launch-nodes is a Lambda (provided.al2023). LaunchNodes creates the security group and node role and launches the nodes.
// The logic lives in internal/steps; this file only wires it.
package main

import (
	"context"
	"log"

	"github.com/mecd/mecd/internal/steps"
)

// Serve returns only when the function cannot start: Lambda's init error.
func main() {
	log.Fatal(steps.Serve(context.Background(), func(s *steps.Steps) any { return steps.Wrap(s.LaunchNodes) }))
}
