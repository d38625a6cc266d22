package stack

import (
	"strings"
	"testing"

	"github.com/mecd/mecd/internal/backend"
)

// apiPaths maps each API Gateway resource's logical id to its path,
// rebuilt from its parents ("" is the root).
func (s *synthesized) apiPaths() map[string]string {
	res := map[string]resource{}
	for _, r := range s.resources("AWS::ApiGateway::Resource") {
		res[r.ID] = r
	}
	var path func(id string) string
	path = func(id string) string {
		r, ok := res[id]
		if !ok {
			return "" // the root
		}
		return path(refID(r.Props["ParentId"])) + "/" + r.Props["PathPart"].(string)
	}
	paths := map[string]string{}
	for id := range res {
		paths[id] = path(id)
	}
	return paths
}

// GET /mecs/{id}/kubeconfig, the one answer with a secret, is a resource
// and method of its own rather than left to a greedy {proxy+}: its
// execute-api ARN is .../STAGE/GET/mecs/*/kubeconfig, which IAM policies
// allow or deny apart from the records (README, "Who may do what").
func TestAPIKubeconfigIsItsOwnIAMResource(t *testing.T) {
	s, _ := full(t)
	paths := s.apiPaths()
	var found int
	for _, m := range s.resources("AWS::ApiGateway::Method") {
		if paths[refID(m.Props["ResourceId"])] != "/mecs/{id}/kubeconfig" {
			continue
		}
		found++
		p := m.Props
		// ANY is authorized with the request's verb, so GET is named apart from the others.
		if p["AuthorizationType"] != "AWS_IAM" || (p["HttpMethod"] != "GET" && p["HttpMethod"] != "ANY") {
			t.Errorf("kubeconfig method %v with %v, want GET (or ANY) with AWS_IAM", p["HttpMethod"], p["AuthorizationType"])
		}
		if rp, _ := p["RequestParameters"].(map[string]any); rp["method.request.path.id"] != true {
			t.Errorf("kubeconfig method parameters %v, want the id required", p["RequestParameters"])
		}
	}
	if found != 1 {
		t.Fatalf("%d methods on /mecs/{id}/kubeconfig, want 1 (resources %v)", found, paths)
	}
	for _, path := range paths {
		if strings.Contains(path, "+}") && path != "/{proxy+}" {
			t.Errorf("greedy resource %s: a route under it would share its ARNs with whatever else it catches", path)
		}
	}
}

// The owner-only option reaches the api function: off, with no admin roles,
// in the test stack.
func TestAPIFunctionGetsTheOwnerOnlyOption(t *testing.T) {
	s, _ := full(t)
	fn := s.function(t, backend.Function{Name: APIFunction, Description: descriptionOf(s.defs, APIFunction)})
	env, _ := fn.Props["Environment"].(map[string]any)
	vars, _ := env["Variables"].(map[string]any)
	if vars[backend.EnvOwnerOnly] != "false" || vars[backend.EnvAdminRoleArns] != "" {
		t.Errorf("%s=%v %s=%v, want false and none", backend.EnvOwnerOnly, vars[backend.EnvOwnerOnly],
			backend.EnvAdminRoleArns, vars[backend.EnvAdminRoleArns])
	}
}
