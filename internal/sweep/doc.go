// Package sweep owns expiry: on the schedule it starts the teardown of every
// READY or FAILED MEC past its expiresAt.
//
// It tears down expired MECs: run by an EventBridge schedule, it
// finds READY and FAILED MECs past expiresAt and starts their teardown. The
// teardown's fixed execution name makes a double start (two sweeps, or a
// sweep and a DELETE) harmless.
package sweep
