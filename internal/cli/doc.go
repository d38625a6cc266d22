// Package cli owns mecctl, the API's command line: its commands, flags,
// output formats, kubeconfig merging and the dashboard command.
//
// mecctl manages MECs through the mecd API, signing every request
// with AWS SigV4 from the normal credential chain (environment, profiles,
// SSO). It also serves a local web dashboard over the same API.
//
//	mecctl create edge-1 --nodes 3 --ttl 8h --wait
//	mecctl list
//	mecctl kubeconfig edge-1
//	mecctl delete edge-1 --wait
//	mecctl dashboard --port 8080
//
// The endpoint comes from --endpoint, MECD_ENDPOINT, or the ApiUrl output of
// the CloudFormation stack (--stack, default "mecd"). Exit codes: 0 ok,
// 1 an API or runtime error, 2 a usage error.
package cli
