// Command launch-nodes is a Lambda (provided.al2023). LaunchNodes creates the security group and node role and launches the nodes.
// The logic lives in internal/workflow; this file only wires it.
package main

import "github.com/mecd/mecd/internal/workflow"

func main() {
	workflow.Run("launch-nodes", func(s *workflow.Steps) any { return workflow.Wrap(s.LaunchNodes) })
}
