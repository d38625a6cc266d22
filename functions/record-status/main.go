// Command record-status is a Lambda (provided.al2023). RecordStatus moves a MEC record to READY, FAILED, DELETING or DELETED.
// The logic lives in internal/steps; this file only wires it.
package main

import (
	"context"
	"log"

	"github.com/mecd/mecd/internal/steps"
)

func main() {
	if err := steps.Serve(context.Background(), func(s *steps.Steps) any { return steps.Wrap(s.RecordStatus) }); err != nil {
		log.Fatalf("record-status: %v", err)
	}
}
