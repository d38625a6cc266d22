// Package store owns mecd's DynamoDB table: every read and write of MEC
// records, name claims, idempotency keys and command waits, and the listing
// and expiry queries, with key, index and attribute names taken from the one
// table definition (schema.go), which the stack deploys and the local runtime creates.
//
// Callers declare the few methods they use as an interface of their own and
// test against a fake; this package is tested against a real DynamoDB API.
package store
