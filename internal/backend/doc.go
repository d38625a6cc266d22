// Package backend owns the one definition of mecd's AWS resources: the table,
// functions, environment, state machines, rules and API routes the stack and the local runtime build.
//
// It is the one definition of mecd's AWS resources that both the
// CDK stack and the local runtime build from: the table's keys and indexes, the
// functions with the environment each reads, and the state machines with their
// definition substitutions. Keeping it in one place is what stops a local run
// and a deployment from drifting apart.
package backend
