// Package mec is the vocabulary of the MEC lifecycle: the record every part
// of mecd reads and writes, its statuses, the one ordered step plan, and how
// a MEC's AWS resources, parameters and executions are named.
//
// It imports no AWS service client: the API, the CLI, the dashboard, the
// steps and the stack all speak it, and none of them repeats it.
package mec
