// Package steps owns the provisioning and teardown steps the state machines
// chain; functions/<name> serves each, and no other package imports it.
//
// It is the logic of the provisioning and teardown steps the
// state machines chain: each step is a method on Steps, which functions/<name>
// serves on the Lambda runtime. It reaches EC2, IAM, SSM and the nodes, and
// records progress through the store; no other package imports it.
package steps
