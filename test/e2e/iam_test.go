package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/jsii-runtime-go"

	"github.com/mecd/mecd/internal/backend"
	"github.com/mecd/mecd/test/iameval"
	"github.com/mecd/mecd/test/iamproof"
	"github.com/mecd/mecd/test/localrt"
)

// proveIAM runs once every test of the package ran: every authorization
// the functions' calls needed here is evaluated against the synthesized
// stack's policies (test/iamproof), with the must-denies. A call the stack
// does not allow fails the suite, as it would fail on AWS. The report goes
// to test/artifacts/iam-proof.json.
func proveIAM(rt *localrt.Runtime) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d := iamproof.Deployed{
		StackName: "mecd", Account: localrt.Account, Region: rt.Region,
		Regions:     strings.Split(rt.Deployed.Resources.AllowedRegions, ","),
		TableArn:    fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s", rt.Region, localrt.Account, localrt.TableName),
		BoundaryArn: rt.Deployed.NodeBoundaryArn,
	}
	pol, err := iamproof.Synthesize(d)
	jsii.Close() // the CDK's Node process: nothing else here synthesizes
	if err != nil {
		return fmt.Errorf("IAM proof: %w", err)
	}
	ev, err := iameval.Start()
	if err != nil {
		return fmt.Errorf("IAM proof: %w", err)
	}
	defer ev.Close()
	// The local runtime's stand-in for AWS's managed policy has its own ARN.
	aliases := map[string]string{rt.Deployed.NodeCorePolicyArn: "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"}
	rep, err := iamproof.Prove(ctx, ev, pol, d, rt.Front.Auth.Calls(), aliases)
	if err != nil {
		return fmt.Errorf("IAM proof: %w", err)
	}
	if root, err := backend.RepoRoot("."); err == nil {
		dir := filepath.Join(root, "test", "artifacts")
		b, _ := json.MarshalIndent(rep, "", "  ")
		if os.MkdirAll(dir, 0o755) == nil {
			_ = os.WriteFile(filepath.Join(dir, "iam-proof.json"), append(b, '\n'), 0o644)
		}
	}
	fmt.Fprintf(os.Stderr, "IAM proof:\n%s", rep.Summary())
	var missing []string
	// With -run, a chosen few tests call only some functions.
	all := flag.Lookup("test.run") == nil || flag.Lookup("test.run").Value.String() == ""
	for _, f := range backend.Functions {
		if !all {
			break
		}
		if r := rep.Functions[f.Name]; r == nil || r.Allowed == 0 {
			missing = append(missing, f.Name)
		}
	}
	if len(missing) > 0 {
		rep.Failures = append(rep.Failures, "no call recorded for "+strings.Join(missing, ", ")+": the proof says nothing of them")
	}
	if len(rep.Failures) > 0 {
		return fmt.Errorf("IAM proof: %d failures:\n%s", len(rep.Failures), strings.Join(rep.Failures, "\n"))
	}
	return nil
}
