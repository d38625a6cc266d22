// Package lifecycle owns starting a MEC's workflows: the provision and teardown
// executions, named so that a repeated start finds the run already going.
//
// It starts a MEC's workflows: the provisioning and the
// teardown state machines, under execution names that make a repeated start
// find the run already going instead of making a second one. The API, the
// sweeper and the reconciler start workflows only through it.
package lifecycle
