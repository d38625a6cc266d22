// Command launch-nodes is a Lambda (provided.al2023). LaunchNodes creates the security group and node role and launches the nodes.
// The logic lives in internal/steps; this file only wires it.
package main

import (
	"context"
	"log"

	"github.com/mecd/mecd/internal/steps"
)

func main() {
	if err := steps.Serve(context.Background(), func(s *steps.Steps) any { return steps.Wrap(s.LaunchNodes) }); err != nil {
		log.Fatalf("launch-nodes: %v", err)
	}
}
