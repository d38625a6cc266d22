package nodepolicy

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestNodePolicyReachesOnlyItsOwnCluster(t *testing.T) {
	doc := Inline("mec-aaa", "eu-central-1")
	var pol struct {
		Statement []struct {
			Sid, Effect string
			Action      any
			Resource    any
			NotResource []string
		}
	}
	if err := json.Unmarshal([]byte(doc), &pol); err != nil {
		t.Fatal(err)
	}
	own := "arn:aws:ssm:eu-central-1:*:parameter/mecd/mec-aaa/"
	denied := false
	for _, st := range pol.Statement {
		switch st.Effect {
		case "Allow":
			if r, _ := st.Resource.(string); !strings.HasPrefix(r, own) {
				t.Errorf("%s allows %v beyond %s", st.Sid, st.Resource, own)
			}
		case "Deny":
			denied = len(st.NotResource) == 1 && st.NotResource[0] == own+"*"
		}
	}
	if !denied {
		t.Fatalf("no deny of every parameter outside %s: %s", own, doc)
	}
}
