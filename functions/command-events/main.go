// Command command-events is a Lambda (provided.al2023). CommandEvents resumes workflows when SSM reports a node command finished.
// The logic lives in internal/workflow; this file only wires it.
package main

import "github.com/mecd/mecd/internal/workflow"

func main() {
	workflow.Run("command-events", func(s *workflow.Steps) any { return s.CommandEvents })
}
