// Command node-command is a Lambda (provided.al2023). NodeCommand sends a node script by SSM Run Command and parks the task token.
// The logic lives in internal/workflow; this file only wires it.
package main

import "github.com/mecd/mecd/internal/workflow"

func main() {
	workflow.Run("node-command", func(s *workflow.Steps) any { return workflow.Wrap(s.NodeCommand) })
}
