package localrt

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mecd/mecd/test/iameval"
	"github.com/mecd/mecd/test/nodesim"
)

// nodeAuth decides node calls as AWS would: the node role's identity
// policies (its inline policies and attached managed ones) and its
// permissions boundary, evaluated by AWS's logic (iameval), with the
// request context AWS builds for a call signed with EC2 instance role
// credentials. kumo enforces no IAM, so the front follows the role calls
// that pass through it (the functions write node roles) and keeps the
// documents; the managed policies the stack (here: the deploy) creates are
// given to it.
type nodeAuth struct {
	ev *iameval.Evaluator

	mu      sync.Mutex
	managed map[string]string // policy ARN -> document
	roles   map[string]*roleState
	// propagation is how long a role's new inline policy takes to apply:
	// IAM is eventually consistent ("Changes that I make are not always
	// immediately visible", IAM User Guide, Troubleshooting), and until
	// then calls are decided by the policy it replaced.
	propagation time.Duration
}

type roleState struct {
	boundary string   // policy ARN
	attached []string // policy ARNs
	inline   map[string]string
	// replaced are the inline policies a change has not reached yet, with
	// when it applies.
	replaced map[string]pendingPolicy
}

type pendingPolicy struct {
	old   string
	until time.Time
}

func newNodeAuth(ev *iameval.Evaluator) *nodeAuth {
	return &nodeAuth{ev: ev, managed: map[string]string{}, roles: map[string]*roleState{}}
}

// SetIAMPropagation sets how long node roles' policy changes take to apply.
func (f *Front) SetIAMPropagation(d time.Duration) {
	f.nodes.mu.Lock()
	defer f.nodes.mu.Unlock()
	f.nodes.propagation = d
}

// addManaged registers a customer- or AWS-managed policy's document.
func (a *nodeAuth) addManaged(arn, doc string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.managed[arn] = doc
}

// note follows one IAM call (query protocol form) on its way to kumo.
func (a *nodeAuth) note(action string, form url.Values) {
	name := form.Get("RoleName")
	if name == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.roles[name]
	if r == nil {
		r = &roleState{inline: map[string]string{}, replaced: map[string]pendingPolicy{}}
		a.roles[name] = r
	}
	switch action {
	case "CreateRole":
		if b := form.Get("PermissionsBoundary"); b != "" {
			r.boundary = b
		}
	case "PutRolePermissionsBoundary":
		r.boundary = form.Get("PermissionsBoundary")
	case "PutRolePolicy":
		name := form.Get("PolicyName")
		if old, ok := r.inline[name]; ok && a.propagation > 0 {
			r.replaced[name] = pendingPolicy{old: old, until: time.Now().Add(a.propagation)}
		}
		r.inline[name] = form.Get("PolicyDocument")
	case "DeleteRolePolicy":
		delete(r.inline, form.Get("PolicyName"))
	case "AttachRolePolicy":
		if arn := form.Get("PolicyArn"); !slices.Contains(r.attached, arn) {
			r.attached = append(r.attached, arn)
		}
	case "DetachRolePolicy":
		r.attached = slices.DeleteFunc(r.attached, func(arn string) bool { return arn == form.Get("PolicyArn") })
	case "DeleteRole":
		delete(a.roles, name)
	}
}

// principal is what decides for role, from what the front saw.
func (a *nodeAuth) principal(role string) (iameval.Principal, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.roles[role]
	if r == nil {
		return iameval.Principal{}, false
	}
	var p iameval.Principal
	for name, doc := range r.inline {
		if old, ok := r.replaced[name]; ok && time.Now().Before(old.until) {
			doc = old.old
		}
		p.Identity = append(p.Identity, iameval.Policy{Name: name, Document: json.RawMessage(doc)})
	}
	for _, arn := range r.attached {
		if doc, ok := a.managed[arn]; ok {
			p.Identity = append(p.Identity, iameval.Policy{Name: arn, Document: json.RawMessage(doc)})
		}
	}
	if doc, ok := a.managed[r.boundary]; ok {
		p.Boundary = []iameval.Policy{{Name: r.boundary, Document: json.RawMessage(doc)}}
	}
	return p, true
}

// decide answers whether node may make call: "" if allowed, else AWS's
// AccessDeniedException message.
func (a *nodeAuth) decide(ctx context.Context, call Call, node nodesim.NodeCaller) (string, error) {
	principal := fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", Account, node.Role, node.InstanceID)
	action := call.Service + ":" + call.Action
	var in struct {
		Name      string
		Overwrite *bool
	}
	_ = json.Unmarshal(call.Body, &in)
	resource := fmt.Sprintf("arn:aws:ssm:%s:%s:parameter/%s", node.Region, Account, strings.TrimPrefix(in.Name, "/"))
	p, ok := a.principal(node.Role)
	if !ok {
		return fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %s because no identity-based policy allows the %s action", principal, action, resource, action), nil
	}
	// What AWS puts in the request context of a call signed with instance
	// role credentials (IAM User Guide, global condition keys; EC2 User
	// Guide: ec2:SourceInstanceARN is global), and PutParameter's
	// ssm:Overwrite (Service Authorization Reference, Systems Manager).
	rc := map[string][]string{
		"ec2:SourceInstanceARN": {fmt.Sprintf("arn:aws:ec2:%s:%s:instance/%s", node.Region, Account, node.InstanceID)},
		"aws:RequestedRegion":   {node.Region},
	}
	if call.Action == "PutParameter" {
		rc["ssm:Overwrite"] = []string{fmt.Sprint(in.Overwrite != nil && *in.Overwrite)}
	}
	ans, err := a.ev.Evaluate(ctx, p, iameval.Request{Principal: principal, Action: action, Resource: resource, Account: Account, Context: rc})
	if err != nil {
		return "", err
	}
	switch ans.Decision {
	case iameval.Allowed:
		return "", nil
	case iameval.ExplicitlyDenied:
		return fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %s with an explicit deny in an identity-based policy", principal, action, resource), nil
	}
	return fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %s because no identity-based policy allows the %s action", principal, action, resource, action), nil
}
