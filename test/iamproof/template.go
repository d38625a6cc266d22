package iamproof

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/mecd/mecd/internal/backend"
	"github.com/mecd/mecd/test/iameval"
)

// Deployed names the stack's own resources as this deployment has them, so
// the template's references resolve to the ARNs the recorded calls name.
type Deployed struct {
	StackName, Account, Region string
	Regions                    []string
	// TableArn is the one table's ARN; BoundaryArn the node boundary's.
	TableArn, BoundaryArn string
}

// Policies are the synthesized stack's IAM documents, resolved.
type Policies struct {
	// Functions are each backend function's role policies.
	Functions map[string]iameval.Principal
	// NodeBoundary is the node roles' permissions boundary.
	NodeBoundary iameval.Policy
}

type template struct {
	Resources map[string]struct {
		Type       string
		Properties map[string]any
	}
}

// policies finds each function's role and every policy on it.
func (t template) policies(d Deployed) (*Policies, error) {
	r := resolver{t: t, d: d}
	byDescription := map[string]string{}
	for _, f := range backend.Functions {
		byDescription[f.Description] = f.Name
	}
	roleOf := map[string]string{} // role logical id -> function
	for _, res := range t.Resources {
		if res.Type != "AWS::Lambda::Function" {
			continue
		}
		name, ok := byDescription[fmt.Sprint(res.Properties["Description"])]
		if !ok {
			continue
		}
		if id := refID(res.Properties["Role"]); id != "" {
			roleOf[id] = name
		}
	}
	p := &Policies{Functions: map[string]iameval.Principal{}}
	for _, id := range slices.Sorted(maps.Keys(t.Resources)) {
		res := t.Resources[id]
		switch res.Type {
		case "AWS::IAM::Role":
			fn, ok := roleOf[id]
			if !ok {
				continue
			}
			pr := p.Functions[fn]
			for i, pol := range asList(res.Properties["Policies"]) {
				doc, err := r.document(pol.(map[string]any)["PolicyDocument"])
				if err != nil {
					return nil, fmt.Errorf("%s inline policy %d: %w", id, i, err)
				}
				pr.Identity = append(pr.Identity, iameval.Policy{Name: fmt.Sprintf("%s-%d", id, i), Document: doc})
			}
			p.Functions[fn] = pr
		case "AWS::IAM::Policy":
			doc, err := r.document(res.Properties["PolicyDocument"])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", id, err)
			}
			for _, role := range asList(res.Properties["Roles"]) {
				if fn, ok := roleOf[refID(role)]; ok {
					pr := p.Functions[fn]
					pr.Identity = append(pr.Identity, iameval.Policy{Name: id, Document: doc})
					p.Functions[fn] = pr
				}
			}
		case "AWS::IAM::ManagedPolicy":
			if strings.Contains(fmt.Sprint(res.Properties["Description"]), "permissions boundary") {
				doc, err := r.document(res.Properties["PolicyDocument"])
				if err != nil {
					return nil, fmt.Errorf("%s: %w", id, err)
				}
				p.NodeBoundary = iameval.Policy{Name: id, Document: doc}
			}
		}
	}
	for _, f := range backend.Functions {
		if _, ok := p.Functions[f.Name]; !ok {
			return nil, fmt.Errorf("no role policies found for function %s", f.Name)
		}
	}
	if p.NodeBoundary.Document == nil {
		return nil, fmt.Errorf("no node boundary in the template")
	}
	return p, nil
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// refID is the logical id a {"Ref"} or {"Fn::GetAtt"} names.
func refID(v any) string {
	m, _ := v.(map[string]any)
	for k, arg := range m {
		switch k {
		case "Ref":
			s, _ := arg.(string)
			return s
		case "Fn::GetAtt":
			if l := asList(arg); len(l) > 0 {
				s, _ := l[0].(string)
				return s
			}
		}
	}
	return ""
}

// resolver renders CloudFormation intrinsics to the deployment's values.
type resolver struct {
	t template
	d Deployed
}

func (r resolver) document(v any) (json.RawMessage, error) {
	out, err := r.value(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

// value resolves every intrinsic inside v.
func (r resolver) value(v any) (any, error) {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			var err error
			if out[i], err = r.value(e); err != nil {
				return nil, err
			}
		}
		return out, nil
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				if k == "Ref" || strings.HasPrefix(k, "Fn::") {
					return r.intrinsic(k, arg)
				}
			}
		}
		out := map[string]any{}
		for k, e := range x {
			var err error
			if out[k], err = r.value(e); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return v, nil
}

func (r resolver) intrinsic(fn string, arg any) (any, error) {
	switch fn {
	case "Ref":
		return r.ref(fmt.Sprint(arg))
	case "Fn::GetAtt":
		l := asList(arg)
		if len(l) == 2 && l[1] == "Arn" {
			return r.arn(fmt.Sprint(l[0]))
		}
	case "Fn::Join":
		l := asList(arg)
		if len(l) == 2 {
			parts, err := r.value(l[1])
			if err != nil {
				return nil, err
			}
			var ss []string
			for _, p := range asList(parts) {
				ss = append(ss, fmt.Sprint(p))
			}
			return strings.Join(ss, fmt.Sprint(l[0])), nil
		}
	case "Fn::Sub":
		body, vars := arg, map[string]any{}
		if l := asList(arg); len(l) == 2 {
			body = l[0]
			m, _ := l[1].(map[string]any)
			for k, v := range m {
				rv, err := r.value(v)
				if err != nil {
					return nil, err
				}
				vars[k] = rv
			}
		}
		s := fmt.Sprint(body)
		var b strings.Builder
		for {
			i := strings.Index(s, "${")
			if i < 0 {
				b.WriteString(s)
				return b.String(), nil
			}
			j := strings.Index(s[i:], "}")
			b.WriteString(s[:i])
			name := s[i+2 : i+j]
			if v, ok := vars[name]; ok {
				b.WriteString(fmt.Sprint(v))
			} else if strings.Contains(name, ".") {
				at, err := r.arn(strings.SplitN(name, ".", 2)[0])
				if err != nil {
					return nil, err
				}
				b.WriteString(at)
			} else {
				v, err := r.ref(name)
				if err != nil {
					return nil, err
				}
				b.WriteString(fmt.Sprint(v))
			}
			s = s[i+j+1:]
		}
	}
	return nil, fmt.Errorf("cannot resolve %s %v", fn, arg)
}

func (r resolver) ref(name string) (any, error) {
	switch name {
	case "AWS::Partition":
		return "aws", nil
	case "AWS::AccountId":
		return r.d.Account, nil
	case "AWS::Region":
		return r.d.Region, nil
	case "AWS::URLSuffix":
		return "amazonaws.com", nil
	case "AWS::StackName":
		return r.d.StackName, nil
	}
	res, ok := r.t.Resources[name]
	if !ok {
		return nil, fmt.Errorf("a Ref to unknown %s", name)
	}
	switch res.Type {
	case "AWS::IAM::ManagedPolicy":
		return r.d.BoundaryArn, nil
	case "AWS::DynamoDB::Table":
		return r.d.TableArn[strings.LastIndex(r.d.TableArn, "/")+1:], nil
	}
	if n, ok := res.Properties["Name"].(string); ok {
		return n, nil
	}
	return name, nil
}

func (r resolver) arn(id string) (string, error) {
	res, ok := r.t.Resources[id]
	if !ok {
		return "", fmt.Errorf("GetAtt of unknown %s", id)
	}
	switch res.Type {
	case "AWS::DynamoDB::Table":
		return r.d.TableArn, nil
	case "AWS::Logs::LogGroup":
		name, _ := r.value(res.Properties["LogGroupName"])
		return fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%v:*", r.d.Region, r.d.Account, name), nil
	case "AWS::SQS::Queue":
		return fmt.Sprintf("arn:aws:sqs:%s:%s:%s", r.d.Region, r.d.Account, id), nil
	case "AWS::StepFunctions::StateMachine":
		name, _ := r.value(res.Properties["StateMachineName"])
		return fmt.Sprintf("arn:aws:states:%s:%s:stateMachine:%v", r.d.Region, r.d.Account, name), nil
	case "AWS::Lambda::Function":
		name, _ := r.value(res.Properties["FunctionName"])
		return fmt.Sprintf("arn:aws:lambda:%s:%s:function:%v", r.d.Region, r.d.Account, name), nil
	case "AWS::IAM::Role":
		return fmt.Sprintf("arn:aws:iam::%s:role/%s", r.d.Account, id), nil
	case "AWS::KMS::Key":
		return fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", r.d.Region, r.d.Account, id), nil
	}
	return fmt.Sprintf("arn:aws:unresolved:%s:%s:%s", r.d.Region, r.d.Account, id), nil
}
