// Package node owns the shell scripts mecd runs on MEC nodes through SSM Run
// Command, their rendering from non-secret inputs, and the progress they print.
//
// It renders the shell scripts mecd runs on MEC nodes through SSM
// Run Command (AWS-RunShellScript). A script gets only non-secret inputs as
// shell variables; it reads the join token and writes the kubeconfig through
// Parameter Store itself (DESIGN section 7).
package node
