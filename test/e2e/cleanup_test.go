package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/steps"
	"github.com/mecd/mecd/test/localrt"
)

// Two cleanups of one MEC at once, as Step Functions makes them when it
// retries an invoke that did not answer while the first still runs: one
// does the work, the other looks again later. Without that, both listed
// the node role and both deleted it, and the second's calls on a role
// already gone are refused on AWS (the IAM proof at the end of this
// package fails on them).
func TestConcurrentCleanupsOfOneMEC(t *testing.T) {
	t.Parallel()
	rt := localrt.Get(t)
	m := accepted(t, rt, fmt.Sprintf(`{"name":%q,"nodeCount":1}`, localrt.UniqueName("twice")))
	waitStatus(t, rt, m.ID, mec.Ready, 2*time.Minute)
	payload := []byte(fmt.Sprintf(`{"purpose":"teardown","state":{"clusterId":%q}}`, m.ID))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := false
	for round := 0; !done && round < 400; round++ {
		var wg sync.WaitGroup
		res := make([]steps.CleanupResult, 2)
		errs := make([]error, 2)
		for i := range res {
			wg.Go(func() {
				out, err := rt.Clients("").Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(localrt.FunctionName("cleanup")), Payload: payload})
				switch {
				case err != nil:
					errs[i] = err
				case out.FunctionError != nil:
					errs[i] = fmt.Errorf("%s", out.Payload)
				default:
					errs[i] = json.Unmarshal(out.Payload, &res[i])
				}
			})
		}
		wg.Wait()
		for i := range res {
			if errs[i] != nil {
				t.Fatalf("round %d, cleanup %d: %v", round, i, errs[i])
			}
			done = done || res[i].Done
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !done {
		t.Fatal("the cleanups never ended")
	}
	deleteClean(t, rt, m.ID)
}
