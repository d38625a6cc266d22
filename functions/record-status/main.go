// Command record-status is a Lambda (provided.al2023). RecordStatus moves a MEC record to READY, FAILED, DELETING or DELETED.
// The logic lives in internal/workflow; this file only wires it.
package main

import "github.com/mecd/mecd/internal/workflow"

func main() {
	workflow.Run("record-status", func(s *workflow.Steps) any { return workflow.Wrap(s.RecordStatus) })
}
