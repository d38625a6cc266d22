// Package client owns talking to the mecd API from outside AWS: SigV4-signed
// requests, endpoint and region resolution, error answers and retries.
//
// It is a Go client of the mecd API (internal/api/openapi.yaml).
// Every request is signed with AWS SigV4 for the "execute-api" service, with
// credentials from the SDK's default chain (environment, shared profiles,
// SSO, ...), as API Gateway's IAM authorization requires.
package client
