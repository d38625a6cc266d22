package localrt

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// AuthCall is one authorization an AWS call of a function needs, as AWS
// builds it: the IAM action, the resource ARN and the request context's
// condition keys. One API call may need several (RunInstances authorises
// every resource it touches, tags them, and passes a role). The IAM proof
// (test/iamproof) evaluates each against the stack's policies.
type AuthCall struct {
	Function string              `json:"function"`
	API      string              `json:"api"` // the call made, service:Operation
	Action   string              `json:"action"`
	Resource string              `json:"resource"`
	Context  map[string][]string `json:"context,omitempty"`
	// Gone: the EC2 resource did not exist (already deleted), so its tags,
	// which the policies check, were none.
	Gone bool `json:"gone,omitempty"`
}

func (c AuthCall) key() string {
	b, _ := json.Marshal(c)
	return string(b)
}

// AuthLog records, per function, the distinct authorizations its calls
// needed.
type AuthLog struct {
	mu    sync.Mutex
	calls map[string]AuthCall
	// roles and profiles seen created (name -> path, boundary), for ARNs
	// and iam:PermissionsBoundary of later calls that name only the role.
	rolePath, roleBoundary, profilePath map[string]string
}

// NewAuthLog makes an empty log.
func NewAuthLog() *AuthLog {
	return &AuthLog{calls: map[string]AuthCall{}, rolePath: map[string]string{}, roleBoundary: map[string]string{}, profilePath: map[string]string{}}
}

// Calls lists what was recorded, sorted.
func (l *AuthLog) Calls() []AuthCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]AuthCall, 0, len(l.calls))
	for _, c := range l.calls {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out
}

// tagSource answers the tags EC2 resources carry now.
type tagSource interface {
	InstanceTags(id string) map[string]string
	GroupTags(id string) map[string]string
	KMSKeyTags(arn string) map[string]string
}

// functionKeyPrefix starts the access key each function's processes sign
// with here (AWS gives each its role's credentials): the front tells the
// functions' calls apart by it.
const functionKeyPrefix = "mecdfn-"

// FunctionAccessKey is the access key function name's processes sign with.
func FunctionAccessKey(name string) string { return functionKeyPrefix + name }

// notePaths keeps what IAM calls (anyone's) say of roles and profiles that
// later calls name only by name.
func (l *AuthLog) notePaths(c Call) {
	if c.Service != "iam" {
		return
	}
	form, _ := url.ParseQuery(string(c.Body))
	l.mu.Lock()
	defer l.mu.Unlock()
	switch c.Action {
	case "CreateRole":
		l.rolePath[form.Get("RoleName")] = orRoot(form.Get("Path"))
		l.roleBoundary[form.Get("RoleName")] = form.Get("PermissionsBoundary")
	case "CreateInstanceProfile":
		l.profilePath[form.Get("InstanceProfileName")] = orRoot(form.Get("Path"))
	}
}

// forget drops what notePaths kept of a role or profile IAM deleted: IAM
// authorizes a later call that names it by the name alone, without a path
// (no entity holds one), so a policy that allows node roles by path
// refuses it, AccessDenied rather than NoSuchEntity (as a policy scoped by
// tag does: keikoproj/iam-manager#31).
func (l *AuthLog) forget(action, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch action {
	case "DeleteRole":
		delete(l.rolePath, name)
		delete(l.roleBoundary, name)
	case "DeleteInstanceProfile":
		delete(l.profilePath, name)
	}
}

// record adds the authorizations call needs.
func (l *AuthLog) record(fn string, c Call, tags tagSource) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.authorizations(c, tags) {
		a.Function, a.API = fn, c.Service+":"+c.Action
		if a.Context == nil {
			a.Context = map[string][]string{}
		}
		if c.Service != "iam" && c.Service != "sts" {
			a.Context["aws:RequestedRegion"] = []string{c.Region}
		}
		l.calls[a.key()] = a
	}
}

// arn builds an ARN in the local account.
func arn(service, region, resource string) string {
	return fmt.Sprintf("arn:aws:%s:%s:%s:%s", service, region, Account, resource)
}

// tagContext is the condition keys of tags: prefix + key -> value.
func tagContext(prefix string, tags map[string]string, ctx map[string][]string) map[string][]string {
	if ctx == nil {
		ctx = map[string][]string{}
	}
	var keys []string
	for k, v := range tags {
		ctx[prefix+k] = []string{v}
		keys = append(keys, k)
	}
	if prefix == "aws:RequestTag/" && len(keys) > 0 {
		sort.Strings(keys)
		ctx["aws:TagKeys"] = keys
	}
	return ctx
}

// authorizations maps one call to what AWS authorises for it (Service
// Authorization Reference: the action's resource types and condition keys).
func (l *AuthLog) authorizations(c Call, tags tagSource) []AuthCall {
	one := func(action, resource string, ctx map[string][]string) []AuthCall {
		return []AuthCall{{Action: action, Resource: resource, Context: ctx}}
	}
	switch c.Service {
	case "dynamodb":
		return dynamoAuth(c)
	case "ssm":
		return ssmAuth(c, tags)
	case "states":
		var in struct{ StateMachineArn, ExecutionArn string }
		_ = json.Unmarshal(c.Body, &in)
		switch c.Action {
		case "StartExecution":
			return one("states:StartExecution", in.StateMachineArn, nil)
		case "DescribeExecution", "StopExecution":
			return one("states:"+c.Action, in.ExecutionArn, nil)
		}
		return one("states:"+c.Action, "*", nil)
	case "lambda":
		return one("lambda:InvokeFunction", arn("lambda", c.Region, "function:"+c.Function), nil)
	case "ec2":
		form, _ := url.ParseQuery(string(c.Body))
		return ec2Auth(c, form, tags)
	case "iam":
		form, _ := url.ParseQuery(string(c.Body))
		return l.iamAuth(c.Action, form)
	}
	return one(c.Service+":"+c.Action, "*", nil)
}

func dynamoAuth(c Call) []AuthCall {
	var in struct {
		TableName, IndexName string
		TransactItems        []map[string]struct{ TableName string }
	}
	_ = json.Unmarshal(c.Body, &in)
	table := func(name string) string { return arn("dynamodb", c.Region, "table/"+name) }
	switch c.Action {
	case "TransactWriteItems", "TransactGetItems":
		// No IAM action of its own: each item's operation is authorised.
		var out []AuthCall
		ops := map[string]string{"Put": "PutItem", "Delete": "DeleteItem", "Update": "UpdateItem", "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
		for _, item := range in.TransactItems {
			for op, v := range item {
				out = append(out, AuthCall{Action: "dynamodb:" + ops[op], Resource: table(v.TableName)})
			}
		}
		return out
	case "Query", "Scan":
		if in.IndexName != "" {
			return []AuthCall{{Action: "dynamodb:" + c.Action, Resource: table(in.TableName) + "/index/" + in.IndexName}}
		}
	}
	return []AuthCall{{Action: "dynamodb:" + c.Action, Resource: table(in.TableName)}}
}

func ssmAuth(c Call, tags tagSource) []AuthCall {
	var in struct {
		Name, Path, DocumentName string
		Names, InstanceIds       []string
		Overwrite                *bool
	}
	_ = json.Unmarshal(c.Body, &in)
	param := func(name string) string { return arn("ssm", c.Region, "parameter/"+strings.TrimPrefix(name, "/")) }
	act := "ssm:" + c.Action
	switch c.Action {
	case "GetParameter", "DeleteParameter":
		return []AuthCall{{Action: act, Resource: param(in.Name)}}
	case "PutParameter":
		return []AuthCall{{Action: act, Resource: param(in.Name), Context: map[string][]string{"ssm:Overwrite": {fmt.Sprint(in.Overwrite != nil && *in.Overwrite)}}}}
	case "GetParameters", "DeleteParameters":
		var out []AuthCall
		for _, n := range in.Names {
			out = append(out, AuthCall{Action: act, Resource: param(n)})
		}
		return out
	case "GetParametersByPath":
		return []AuthCall{{Action: act, Resource: param(strings.TrimSuffix(in.Path, "/"))}}
	case "SendCommand":
		doc := in.DocumentName
		if !strings.HasPrefix(doc, "arn:") {
			doc = arn("ssm", c.Region, "document/"+doc)
		}
		out := []AuthCall{{Action: act, Resource: doc}}
		for _, id := range in.InstanceIds {
			out = append(out, AuthCall{Action: act, Resource: arn("ec2", c.Region, "instance/"+id),
				Context: tagContext("ssm:resourceTag/", tags.InstanceTags(id), tagContext("aws:ResourceTag/", tags.InstanceTags(id), nil))})
		}
		return out
	}
	return []AuthCall{{Action: act, Resource: "*"}}
}

// formList reads a query-protocol list: Name.1, Name.2, ...
func formList(form url.Values, name string) []string {
	var out []string
	for i := 1; ; i++ {
		v := form.Get(fmt.Sprintf("%s.%d", name, i))
		if v == "" {
			return out
		}
		out = append(out, v)
	}
}

// formTags reads TagSpecification.N (ResourceType, Tag.M.Key/Value).
func formTags(form url.Values) map[string]map[string]string {
	out := map[string]map[string]string{}
	for i := 1; ; i++ {
		p := fmt.Sprintf("TagSpecification.%d.", i)
		rt := form.Get(p + "ResourceType")
		if rt == "" {
			return out
		}
		tags := map[string]string{}
		for j := 1; ; j++ {
			k := form.Get(fmt.Sprintf("%sTag.%d.Key", p, j))
			if k == "" {
				break
			}
			tags[k] = form.Get(fmt.Sprintf("%sTag.%d.Value", p, j))
		}
		out[rt] = tags
	}
}

func ec2Auth(c Call, form url.Values, tags tagSource) []AuthCall {
	act := "ec2:" + c.Action
	res := func(kind, id string) string { return arn("ec2", c.Region, kind+"/"+id) }
	tagged := func(kind, id string, t map[string]string) AuthCall {
		return AuthCall{Action: act, Resource: res(kind, id), Context: tagContext("aws:ResourceTag/", t, tagContext("ec2:ResourceTag/", t, nil)), Gone: t == nil}
	}
	switch c.Action {
	case "RunInstances":
		specs := formTags(form)
		instCtx := tagContext("aws:RequestTag/", specs["instance"], map[string][]string{})
		if v := form.Get("MetadataOptions.HttpTokens"); v != "" {
			instCtx["ec2:MetadataHttpTokens"] = []string{v}
		}
		volCtx := tagContext("aws:RequestTag/", specs["volume"], map[string][]string{})
		if v := form.Get("BlockDeviceMapping.1.Ebs.Encrypted"); v != "" {
			volCtx["ec2:Encrypted"] = []string{v}
		}
		out := []AuthCall{
			{Action: act, Resource: res("instance", "*"), Context: instCtx},
			{Action: act, Resource: res("volume", "*"), Context: volCtx},
			{Action: act, Resource: res("network-interface", "*")},
			{Action: act, Resource: res("subnet", form.Get("SubnetId"))},
			{Action: act, Resource: fmt.Sprintf("arn:aws:ec2:%s::image/%s", c.Region, form.Get("ImageId"))},
		}
		for _, g := range formList(form, "SecurityGroupId") {
			out = append(out, tagged("security-group", g, tags.GroupTags(g)))
		}
		// Tags given at launch are authorised as CreateTags with ec2:CreateAction.
		for kind, t := range specs {
			out = append(out, AuthCall{Action: "ec2:CreateTags", Resource: res(kind, "*"),
				Context: tagContext("aws:RequestTag/", t, map[string][]string{"ec2:CreateAction": {"RunInstances"}})})
		}
		// A volume encrypted with a customer managed key: EC2 uses the key as
		// the caller and creates a grant on it for the volume ("Requirements
		// for Amazon EBS encryption", EBS User Guide; kms:ViaService, "AWS
		// KMS condition keys").
		for i := 1; ; i++ {
			p := fmt.Sprintf("BlockDeviceMapping.%d.", i)
			if form.Get(p+"DeviceName") == "" {
				break
			}
			key := form.Get(p + "Ebs.KmsKeyId")
			if key == "" {
				continue
			}
			if !strings.HasPrefix(key, "arn:") {
				key = arn("kms", c.Region, "key/"+key)
			}
			kc := tagContext("aws:ResourceTag/", tags.KMSKeyTags(key), map[string][]string{
				"kms:ViaService": {"ec2." + c.Region + ".amazonaws.com"}, "kms:CallerAccount": {Account}})
			for _, a := range []string{"kms:GenerateDataKeyWithoutPlaintext", "kms:Decrypt", "kms:DescribeKey"} {
				out = append(out, AuthCall{Action: a, Resource: key, Context: kc})
			}
			grant := map[string][]string{"kms:GrantIsForAWSResource": {"true"}}
			for k, v := range kc {
				grant[k] = v
			}
			out = append(out, AuthCall{Action: "kms:CreateGrant", Resource: key, Context: grant})
		}
		// Launching with an instance profile passes its role to EC2.
		if p := form.Get("IamInstanceProfile.Arn"); p != "" {
			role := p[strings.LastIndex(p, "/")+1:]
			path := strings.TrimSuffix(strings.SplitN(p, ":instance-profile", 2)[1], role)
			out = append(out, AuthCall{Action: "iam:PassRole", Resource: fmt.Sprintf("arn:aws:iam::%s:role%s%s", Account, path, role),
				Context: map[string][]string{"iam:PassedToService": {"ec2.amazonaws.com"}, "iam:AssociatedResourceArn": {res("instance", "*")}}})
		}
		return out
	case "CreateSecurityGroup":
		t := formTags(form)["security-group"]
		out := []AuthCall{
			{Action: act, Resource: res("security-group", "*"), Context: tagContext("aws:RequestTag/", t, nil)},
			{Action: act, Resource: res("vpc", form.Get("VpcId"))},
		}
		if len(t) > 0 {
			out = append(out, AuthCall{Action: "ec2:CreateTags", Resource: res("security-group", "*"),
				Context: tagContext("aws:RequestTag/", t, map[string][]string{"ec2:CreateAction": {"CreateSecurityGroup"}})})
		}
		return out
	case "AuthorizeSecurityGroupIngress", "DeleteSecurityGroup":
		g := form.Get("GroupId")
		return []AuthCall{tagged("security-group", g, tags.GroupTags(g))}
	case "TerminateInstances":
		var out []AuthCall
		for _, id := range formList(form, "InstanceId") {
			out = append(out, tagged("instance", id, tags.InstanceTags(id)))
		}
		return out
	}
	return []AuthCall{{Action: act, Resource: "*"}}
}

func (l *AuthLog) iamAuth(action string, form url.Values) []AuthCall {
	act := "iam:" + action
	role := form.Get("RoleName")
	profile := form.Get("InstanceProfileName")
	roleARN := fmt.Sprintf("arn:aws:iam::%s:role%s%s", Account, orRoot(l.rolePath[role]), role)
	profileARN := fmt.Sprintf("arn:aws:iam::%s:instance-profile%s%s", Account, orRoot(l.profilePath[profile]), profile)
	// IAM sends the role's boundary with the role's own mutations.
	bounded := map[string][]string{}
	if b := l.roleBoundary[role]; b != "" {
		bounded["iam:PermissionsBoundary"] = []string{b}
	}
	tagsOf := func() map[string]string {
		t := map[string]string{}
		for i := 1; ; i++ {
			k := form.Get(fmt.Sprintf("Tags.member.%d.Key", i))
			if k == "" {
				return t
			}
			t[k] = form.Get(fmt.Sprintf("Tags.member.%d.Value", i))
		}
	}
	switch action {
	case "CreateRole":
		ctx := tagContext("aws:RequestTag/", tagsOf(), map[string][]string{})
		if b := form.Get("PermissionsBoundary"); b != "" {
			ctx["iam:PermissionsBoundary"] = []string{b}
		}
		out := []AuthCall{{Action: act, Resource: roleARN, Context: ctx}}
		if t := tagsOf(); len(t) > 0 {
			out = append(out, AuthCall{Action: "iam:TagRole", Resource: roleARN, Context: tagContext("aws:RequestTag/", t, nil)})
		}
		return out
	case "PutRolePolicy", "DeleteRolePolicy", "DetachRolePolicy", "DeleteRole":
		return []AuthCall{{Action: act, Resource: roleARN, Context: bounded}}
	case "AttachRolePolicy":
		ctx := map[string][]string{"iam:PolicyARN": {form.Get("PolicyArn")}}
		for k, v := range bounded {
			ctx[k] = v
		}
		return []AuthCall{{Action: act, Resource: roleARN, Context: ctx}}
	case "CreateInstanceProfile":
		out := []AuthCall{{Action: act, Resource: profileARN, Context: tagContext("aws:RequestTag/", tagsOf(), nil)}}
		if t := tagsOf(); len(t) > 0 {
			out = append(out, AuthCall{Action: "iam:TagInstanceProfile", Resource: profileARN, Context: tagContext("aws:RequestTag/", t, nil)})
		}
		return out
	case "AddRoleToInstanceProfile":
		// It also needs iam:PassRole on the role (IAM API Reference). AWS
		// documents iam:AssociatedResourceArn for it, as
		// arn:aws:ec2:*:<account>:instance/*, and not iam:PassedToService:
		// the proof evaluates the pass with the former and with no key at all.
		return []AuthCall{
			{Action: act, Resource: profileARN},
			{Action: "iam:PassRole", Resource: roleARN, Context: map[string][]string{"iam:AssociatedResourceArn": {fmt.Sprintf("arn:aws:ec2:*:%s:instance/*", Account)}}},
			{Action: "iam:PassRole", Resource: roleARN},
		}
	case "TagRole":
		// A spare node role takes its MEC's tags (Service Authorization
		// Reference: aws:RequestTag and aws:TagKeys, no boundary key).
		return []AuthCall{{Action: act, Resource: roleARN, Context: tagContext("aws:RequestTag/", tagsOf(), nil)}}
	case "TagInstanceProfile":
		return []AuthCall{{Action: act, Resource: profileARN, Context: tagContext("aws:RequestTag/", tagsOf(), nil)}}
	case "GetInstanceProfile", "RemoveRoleFromInstanceProfile", "DeleteInstanceProfile":
		return []AuthCall{{Action: act, Resource: profileARN}}
	case "ListRoles", "ListInstanceProfiles":
		return []AuthCall{{Action: act, Resource: "*"}}
	}
	if role != "" {
		return []AuthCall{{Action: act, Resource: roleARN}}
	}
	return []AuthCall{{Action: act, Resource: "*"}}
}

func orRoot(p string) string {
	if p == "" {
		return "/"
	}
	return p
}
