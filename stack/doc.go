// Package stack owns mecd's deployment: the CDK stack (table, functions,
// workflows, API, schedule, rules, IAM, alarms) built from internal/backend.
//
// It is mecd's AWS deployment as a CDK stack in Go. It builds
// every resource from internal/backend, the definitions the local runtime
// uses too, so a deployment and a local run cannot drift apart: the table
// and its indexes, one Lambda per backend function with exactly the
// environment it declares, the state machines from statemachine/*.asl.json,
// the EventBridge rules, and, once the backend has them, the REST API and
// the sweeper's schedule.
package stack
