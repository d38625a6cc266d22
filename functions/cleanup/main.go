// Command cleanup is a Lambda (provided.al2023). Cleanup terminates a MEC's instances and deletes its security group, node role and parameters.
// The logic lives in internal/workflow; this file only wires it.
package main

import "github.com/mecd/mecd/internal/workflow"

func main() {
	workflow.Run("cleanup", func(s *workflow.Steps) any { return workflow.Wrap(s.Cleanup) })
}
