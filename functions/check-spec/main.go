// Command check-spec is a Lambda (provided.al2023). CheckSpec checks a MEC spec against its region for the API.
// The logic lives in internal/steps; this file only wires it.
package main

import (
	"context"
	"log"

	"github.com/mecd/mecd/internal/steps"
)

// Serve returns only when the function cannot start: Lambda's init error.
func main() {
	log.Fatal(steps.Serve(context.Background(), func(s *steps.Steps) any { return steps.Wrap(s.CheckSpec) }))
}
