// Package sweep owns what the schedule does to MEC records: expiry, and
// reconciling MECs stuck in a transient status.
//
// On an EventBridge schedule it finds READY and FAILED MECs past expiresAt
// and starts their teardown (the teardown's fixed execution name makes a
// double start, two sweeps or a sweep and a DELETE, harmless). It also
// restarts failed teardowns (numbered, bounded) and rolls back CREATING MECs
// whose provisioning execution ended or went quiet.
package sweep
