// Package config owns a function's start-up: its environment (names from
// internal/backend), its JSON logger and its AWS SDK configuration.
//
// It reads a function's environment (names from internal/backend)
// and builds its logger and AWS SDK configuration. Everything production reads comes
// from the environment, so the same binaries run on AWS and locally.
package config
