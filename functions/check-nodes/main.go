// Command check-nodes is a Lambda (provided.al2023). CheckNodes reports whether the nodes are running and Online in SSM.
// The logic lives in internal/workflow; this file only wires it.
package main

import "github.com/mecd/mecd/internal/workflow"

func main() {
	workflow.Run("check-nodes", func(s *workflow.Steps) any { return workflow.Wrap(s.CheckNodes) })
}
