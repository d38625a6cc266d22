package localrt

import (
	"encoding/json"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// kumo's proxy events carry the resource template as the path; the front
// turns them into AWS's shape, which is all the API handler understands.
func TestFixProxyEventGivesTheConcretePath(t *testing.T) {
	tests := []struct {
		name, path string
		params     map[string]string
		want       string
	}{
		{"greedy resource", "/{proxy+}", map[string]string{"proxy": "mecs/mec-1/kubeconfig"}, "/mecs/mec-1/kubeconfig"},
		{"resource per route", "/mecs/{id}", map[string]string{"id": "mec-1"}, "/mecs/mec-1"},
		{"already concrete", "/mecs", nil, "/mecs"},
		{"parameter missing stays", "/mecs/{id}", nil, "/mecs/{id}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := events.APIGatewayProxyRequest{HTTPMethod: "GET", Resource: tt.path, Path: tt.path, PathParameters: tt.params}
			in.RequestContext.Stage = "v1"
			b, _ := json.Marshal(in)
			var out events.APIGatewayProxyRequest
			if err := json.Unmarshal(fixProxyEvent(b, nil), &out); err != nil {
				t.Fatal(err)
			}
			if out.Path != tt.want || out.Resource != tt.path {
				t.Fatalf("path %q resource %q, want %q and %q", out.Path, out.Resource, tt.want, tt.path)
			}
			if tt.want != tt.path && out.RequestContext.Path != "/v1"+tt.want {
				t.Fatalf("requestContext.path %q", out.RequestContext.Path)
			}
		})
	}
	if got := string(fixProxyEvent([]byte(`{"clusterId":"mec-1"}`), nil)); got != `{"clusterId":"mec-1"}` {
		t.Fatalf("a non-proxy payload changed: %s", got)
	}
}

// API Gateway reports the SigV4 signer of an AWS_IAM method's request.
func TestFixProxyEventNamesTheCaller(t *testing.T) {
	in := events.APIGatewayProxyRequest{HTTPMethod: "POST", Resource: "/mecs", Path: "/mecs",
		Headers: map[string]string{"Authorization": "AWS4-HMAC-SHA256 Credential=AKIDALICE/20261202/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=x"}}
	b, _ := json.Marshal(in)
	alice := "arn:aws:sts::000000000000:assumed-role/Dev/alice"
	var out events.APIGatewayProxyRequest
	if err := json.Unmarshal(fixProxyEvent(b, func(k string) (string, bool) { return alice, k == "AKIDALICE" }), &out); err != nil {
		t.Fatal(err)
	}
	if id := out.RequestContext.Identity; id.UserArn != alice || id.AccountID != "000000000000" || id.AccessKey != "AKIDALICE" {
		t.Fatalf("identity %+v, want alice's", id)
	}
}
