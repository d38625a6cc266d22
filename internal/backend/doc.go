// Package backend owns the one definition of mecd's functions (with the
// environment each reads), state machines, event rules and API routes.
//
// The CDK stack and the local runtime both build from it, which is what stops
// a local run and a deployment from drifting apart; the table's definition
// is internal/store's, which owns the table.
package backend
