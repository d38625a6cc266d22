// Package steps owns the provisioning and teardown steps the state machines
// chain, the API's region check and the orphan reaper; functions/<name>
// serves each, and no other package imports it.
//
// Each step is a method on Steps, which functions/<name> serves on the Lambda
// runtime. It reaches EC2, IAM, SSM and the nodes, and records progress
// through the store. Steps that create resources hold a lease on the record
// while they run, so a teardown never looks before they are done.
package steps
