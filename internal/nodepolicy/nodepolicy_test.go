package nodepolicy

import (
	"encoding/json"
	"strings"
	"testing"
)

// Every stage allows only within the cluster's own path and denies every
// parameter outside it. What each stage lets which node do is proven with
// AWS's evaluation logic in test/iameval.
func TestNodePolicyReachesOnlyItsOwnCluster(t *testing.T) {
	own := "arn:aws:ssm:eu-central-1:*:parameter/mecd/mec-aaa/"
	for _, p := range []Phase{{Stage: Sealed}, {Stage: Forming, Node0: "i-0", Joiners: []string{"i-1"}}, {Stage: Joined, Node0: "i-0"}} {
		t.Run(p.Stage.String(), func(t *testing.T) {
			doc := Inline("mec-aaa", "eu-central-1", p)
			var pol struct {
				Statement []struct {
					Sid, Effect string
					Resource    any
					NotResource []string
				}
			}
			if err := json.Unmarshal([]byte(doc), &pol); err != nil {
				t.Fatal(err)
			}
			denied := false
			for _, st := range pol.Statement {
				switch st.Effect {
				case "Allow":
					if r, _ := st.Resource.(string); !strings.HasPrefix(r, own) {
						t.Errorf("%s allows %v beyond %s", st.Sid, st.Resource, own)
					}
				case "Deny":
					denied = denied || (len(st.NotResource) == 1 && st.NotResource[0] == own+"*")
				}
			}
			if !denied {
				t.Fatalf("no deny of every parameter outside %s: %s", own, doc)
			}
		})
	}
}
