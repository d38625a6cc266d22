// Command prepare is a Lambda (provided.al2023). Prepare creates the MEC record (console runs) and resolves the spec.
// The logic lives in internal/workflow; this file only wires it.
package main

import "github.com/mecd/mecd/internal/workflow"

func main() {
	workflow.Run("prepare", func(s *workflow.Steps) any { return workflow.Wrap(s.Prepare) })
}
