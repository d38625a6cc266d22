// Command reaper is a Lambda (provided.al2023) run by the sweep schedule:
// it deletes the mecd-tagged resources of MECs that are DELETED or unknown.
// The logic lives in internal/steps; this file only wires it.
package main

import (
	"context"
	"log"

	"github.com/mecd/mecd/internal/steps"
)

// Serve returns only when the function cannot start: Lambda's init error.
func main() {
	log.Fatal(steps.Serve(context.Background(), func(s *steps.Steps) any { return steps.Wrap(s.Reap) }))
}
