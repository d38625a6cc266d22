package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func testDefaults() Defaults {
	return Defaults{Region: "eu-west-1", Now: func() time.Time { return testNow }}
}

// withName builds a body with a valid name plus the given fields.
func withName(fields string) string {
	if fields == "" {
		return `{"name":"edge-1"}`
	}
	return `{"name":"edge-1",` + fields + `}`
}

func at(d time.Duration) string { return testNow.Add(d).Format(time.RFC3339) }

func jsonList(n int, f func(i int) string) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf("%q", f(i))
	}
	return "[" + strings.Join(items, ",") + "]"
}

func jsonTags(n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`"k%d":"v"`, i)
	}
	return "{" + strings.Join(items, ",") + "}"
}

// checkErr asserts that err is a *ValidationError on exactly the fields in
// want, each message containing the wanted text; want == nil means no error.
func checkErr(t *testing.T, err error, want map[string]string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("want *ValidationError on %v, got %T %v", want, err, err)
	}
	var got, exp []string
	for k := range verr.Fields {
		got = append(got, k)
	}
	for k := range want {
		exp = append(exp, k)
	}
	sort.Strings(got)
	sort.Strings(exp)
	if !slices.Equal(got, exp) {
		t.Fatalf("error fields = %v, want %v\n%v", got, exp, verr)
	}
	for k, sub := range want {
		if !strings.Contains(verr.Fields[k], sub) {
			t.Errorf("%s: message %q does not contain %q", k, verr.Fields[k], sub)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	s, err := Parse([]byte(`{"name":"edge-1"}`), testDefaults())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		field string
		got   any
		want  any
	}{
		{"name", s.Name, "edge-1"},
		{"region", s.Region, "eu-west-1"},
		{"nodeCount", s.NodeCount, 3},
		{"instanceType", s.InstanceType, "t4g.medium"},
		{"amiId", s.AmiID, ""},
		{"vpcId", s.VpcID, ""},
		{"subnetId", s.SubnetID, ""},
		{"microk8sChannel", s.Microk8sChannel, "1.35/stable"},
		{"addons", fmt.Sprint(s.Addons), "[dns]"},
		{"apiAccessCidrs", len(s.APIAccessCIDRs), 0},
		{"nodePortCidrs", len(s.NodePortCIDRs), 0},
		{"publicEndpoint", s.PublicEndpoint, false},
		{"allowWorldAccess", s.AllowWorldAccess, false},
		{"ebsKmsKeyId", s.EBSKmsKeyID, ""},
		{"haControlPlane", s.HAControlPlane != nil && *s.HAControlPlane, true},
		{"rootVolumeGiB", s.RootVolumeGiB, 30},
		{"dataVolumes", s.DataVolumeCount(), 0},
		{"ttl", s.TTL, ""},
		{"expiresAt", s.ExpiresAt == nil, true},
		{"tags", len(s.Tags), 0},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s default = %v, want %v", tt.field, tt.got, tt.want)
		}
	}
	if len(tests) != len(jsonFields) {
		t.Errorf("defaults table covers %d fields, spec has %d", len(tests), len(jsonFields))
	}
}

func TestParseKeepsGivenValues(t *testing.T) {
	body := `{"name":"edge-2","region":"us-east-1","nodeCount":5,"instanceType":"m7g.large",
		"amiId":"ami-0123456789abcdef0","vpcId":"vpc-12345678","subnetId":"subnet-0123456789abcdef0",
		"microk8sChannel":"1.34/candidate","addons":["ingress","dns"],"apiAccessCidrs":["203.0.113.0/24"],
		"nodePortCidrs":["198.51.100.7/32"],"publicEndpoint":true,"haControlPlane":false,"rootVolumeGiB":100,
		"dataVolumes":{"count":2,"sizeGiB":50},"expiresAt":"` + at(48*time.Hour) + `","tags":{"owner":"edge team"}}`
	s, err := Parse([]byte(body), testDefaults())
	if err != nil {
		t.Fatal(err)
	}
	want := Spec{
		Name: "edge-2", Region: "us-east-1", NodeCount: 5, InstanceType: "m7g.large",
		AmiID: "ami-0123456789abcdef0", VpcID: "vpc-12345678", SubnetID: "subnet-0123456789abcdef0",
		Microk8sChannel: "1.34/candidate", Addons: []string{"ingress", "dns"},
		APIAccessCIDRs: []string{"203.0.113.0/24"}, NodePortCIDRs: []string{"198.51.100.7/32"},
		PublicEndpoint: true, RootVolumeGiB: 100, DataVolumes: &DataVolumes{Count: 2, SizeGiB: 50},
		Tags: map[string]string{"owner": "edge team"},
	}
	exp := testNow.Add(48 * time.Hour)
	want.ExpiresAt = &exp
	f := false
	want.HAControlPlane = &f
	if fmt.Sprintf("%+v", deref(s)) != fmt.Sprintf("%+v", deref(want)) {
		t.Errorf("got  %+v\nwant %+v", deref(s), deref(want))
	}
}

// deref makes pointer fields printable for comparison.
func deref(s Spec) map[string]any {
	b, _ := json.Marshal(s)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func TestParseFieldRules(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name   string
		fields string // added to a body with a valid name
		body   string // whole body, when set
		d      *Defaults
		want   map[string]string
	}{
		// name
		{name: "name missing", body: `{}`, want: map[string]string{"name": "is required"}},
		{name: "name empty", body: `{"name":""}`, want: map[string]string{"name": "is required"}},
		{name: "name null", body: `{"name":null}`, want: map[string]string{"name": "is required"}},
		{name: "name 1 char", body: `{"name":"a"}`},
		{name: "name 40 chars", body: `{"name":"` + long(40) + `"}`},
		{name: "name 41 chars", body: `{"name":"` + long(41) + `"}`, want: map[string]string{"name": "1-40 lowercase"}},
		{name: "name leading digit", body: `{"name":"1edge"}`},
		{name: "name uppercase", body: `{"name":"Edge"}`, want: map[string]string{"name": "DNS-1123"}},
		{name: "name leading dash", body: `{"name":"-edge"}`, want: map[string]string{"name": "DNS-1123"}},
		{name: "name trailing dash", body: `{"name":"edge-"}`, want: map[string]string{"name": "DNS-1123"}},
		{name: "name underscore", body: `{"name":"edge_1"}`, want: map[string]string{"name": "DNS-1123"}},
		{name: "name dot", body: `{"name":"edge.1"}`, want: map[string]string{"name": "DNS-1123"}},
		{name: "name wrong type", body: `{"name":7}`, want: map[string]string{"name": "DNS-1123"}},

		// region
		{name: "region given", fields: `"region":"ap-southeast-2"`},
		{name: "region gov", fields: `"region":"us-gov-west-1"`},
		{name: "region iso", fields: `"region":"us-isob-east-1"`},
		// An empty string is refused, not replaced by the default.
		{name: "region empty string", fields: `"region":""`, want: map[string]string{"region": "must not be empty; leave the field out"}},
		{name: "instanceType empty string", fields: `"instanceType":""`, want: map[string]string{"instanceType": "must not be empty; leave the field out"}},
		{name: "microk8sChannel empty string", fields: `"microk8sChannel":""`, want: map[string]string{"microk8sChannel": "must not be empty"}},
		{name: "region no number", fields: `"region":"eu-west"`, want: map[string]string{"region": `such as "eu-west-1"`}},
		{name: "region uppercase", fields: `"region":"EU-WEST-1"`, want: map[string]string{"region": "AWS region name"}},
		{name: "region az not region", fields: `"region":"eu-west-1a"`, want: map[string]string{"region": "AWS region name"}},
		{name: "region wrong type", fields: `"region":1`, want: map[string]string{"region": "AWS region name"}},
		{name: "region no default", d: &Defaults{Now: testDefaults().Now}, want: map[string]string{"region": "is required"}},
		{name: "region in allowed list", fields: `"region":"us-east-1"`,
			d: &Defaults{Region: "eu-west-1", Now: testDefaults().Now, Regions: []string{"eu-west-1", "us-east-1"}}},
		{name: "region not in allowed list", fields: `"region":"us-west-2"`,
			d:    &Defaults{Region: "eu-west-1", Now: testDefaults().Now, Regions: []string{"eu-west-1", "us-east-1"}},
			want: map[string]string{"region": "must be one of the regions this stack serves: eu-west-1, us-east-1"}},

		// nodeCount
		{name: "nodeCount explicit 0", fields: `"nodeCount":0`, want: map[string]string{"nodeCount": "must be 1-20"}},
		{name: "nodeCount -1", fields: `"nodeCount":-1`, want: map[string]string{"nodeCount": "must be 1-20"}},
		{name: "nodeCount 1", fields: `"nodeCount":1`},
		{name: "nodeCount 20", fields: `"nodeCount":20`},
		{name: "nodeCount 21", fields: `"nodeCount":21`, want: map[string]string{"nodeCount": "must be 1-20"}},
		{name: "nodeCount fraction", fields: `"nodeCount":2.5`, want: map[string]string{"nodeCount": "whole number, 1-20"}},
		{name: "nodeCount string", fields: `"nodeCount":"3"`, want: map[string]string{"nodeCount": "whole number, 1-20"}},
		{name: "nodeCount null takes default", fields: `"nodeCount":null`},

		// instanceType
		{name: "instanceType graviton", fields: `"instanceType":"c7g.2xlarge"`},
		{name: "instanceType metal size", fields: `"instanceType":"c7i.metal-24xl"`},
		{name: "instanceType dashed family", fields: `"instanceType":"u-6tb1.metal"`},
		{name: "instanceType no size", fields: `"instanceType":"t4g"`, want: map[string]string{"instanceType": `"family.size"`}},
		{name: "instanceType empty size", fields: `"instanceType":"t4g."`, want: map[string]string{"instanceType": `"family.size"`}},
		{name: "instanceType uppercase", fields: `"instanceType":"T4G.medium"`, want: map[string]string{"instanceType": `"family.size"`}},
		{name: "instanceType wrong type", fields: `"instanceType":true`, want: map[string]string{"instanceType": `"family.size"`}},

		// amiId
		{name: "amiId 8 hex", fields: `"amiId":"ami-1234abcd"`},
		{name: "amiId 17 hex", fields: `"amiId":"ami-0123456789abcdef0"`},
		{name: "amiId 7 hex", fields: `"amiId":"ami-1234abc"`, want: map[string]string{"amiId": "8 or 17"}},
		{name: "amiId 9 hex", fields: `"amiId":"ami-1234abcde"`, want: map[string]string{"amiId": "8 or 17"}},
		{name: "amiId 18 hex", fields: `"amiId":"ami-0123456789abcdef01"`, want: map[string]string{"amiId": "8 or 17"}},
		{name: "amiId uppercase", fields: `"amiId":"ami-1234ABCD"`, want: map[string]string{"amiId": "lowercase hex"}},
		{name: "amiId wrong prefix", fields: `"amiId":"img-1234abcd"`, want: map[string]string{"amiId": `"ami-"`}},

		// vpcId, subnetId
		{name: "vpcId 8 hex", fields: `"vpcId":"vpc-1234abcd"`},
		{name: "vpcId 17 hex", fields: `"vpcId":"vpc-0123456789abcdef0"`},
		{name: "vpcId bad", fields: `"vpcId":"vpc-xyz"`, want: map[string]string{"vpcId": `"vpc-"`}},
		{name: "vpcId wrong type", fields: `"vpcId":["vpc-1234abcd"]`, want: map[string]string{"vpcId": `"vpc-"`}},
		{name: "subnetId 8 hex", fields: `"subnetId":"subnet-1234abcd"`},
		{name: "subnetId 17 hex", fields: `"subnetId":"subnet-0123456789abcdef0"`},
		{name: "subnetId alone", fields: `"subnetId":"subnet-1234abcd"`},
		{name: "subnetId bad", fields: `"subnetId":"sn-1234abcd"`, want: map[string]string{"subnetId": `"subnet-"`}},
		{name: "subnetId 9 hex", fields: `"subnetId":"subnet-1234abcde"`, want: map[string]string{"subnetId": "8 or 17"}},

		// microk8sChannel
		{name: "channel bare track", fields: `"microk8sChannel":"1.35"`},
		{name: "channel stable", fields: `"microk8sChannel":"1.35/stable"`},
		{name: "channel candidate", fields: `"microk8sChannel":"1.34/candidate"`},
		{name: "channel beta", fields: `"microk8sChannel":"1.36/beta"`},
		{name: "channel edge", fields: `"microk8sChannel":"1.36/edge"`},
		{name: "channel latest", fields: `"microk8sChannel":"latest/stable"`, want: map[string]string{"microk8sChannel": `such as "1.35/stable"`}},
		{name: "channel bad risk", fields: `"microk8sChannel":"1.35/nightly"`, want: map[string]string{"microk8sChannel": `"/edge"`}},
		{name: "channel branch", fields: `"microk8sChannel":"1.35/stable/fix"`, want: map[string]string{"microk8sChannel": "snap channel"}},
		{name: "channel trailing slash", fields: `"microk8sChannel":"1.35/"`, want: map[string]string{"microk8sChannel": "snap channel"}},
		{name: "channel wrong type", fields: `"microk8sChannel":1.35`, want: map[string]string{"microk8sChannel": "snap channel"}},

		// addons
		{name: "addons all allowed", fields: `"instanceType":"t4g.large","dataVolumes":{"count":1},"addons":` + jsonList(len(AllowedAddons), func(i int) string { return AllowedAddons[i] })},
		{name: "edgex without its needs", fields: `"addons":["edgex"]`, want: map[string]string{"addons": "edgex needs dns and one of hostpath-storage, replicated-storage (its services find each other by DNS name, and PostgreSQL's volume claim needs a default StorageClass): add dns and one of hostpath-storage, replicated-storage"}},
		{name: "edgex without storage", fields: `"addons":["dns","edgex"]`, want: map[string]string{"addons": "add one of hostpath-storage, replicated-storage"}},
		{name: "edgex with its needs", fields: `"addons":["edgex","dns","hostpath-storage"]`},
		{name: "edgex on replicated storage", fields: `"instanceType":"t4g.large","dataVolumes":{"count":1},"addons":["edgex","dns","replicated-storage"]`},
		{name: "replicated storage on 1 node", fields: `"nodeCount":1,"dataVolumes":{"count":1},"addons":["dns","replicated-storage"]`,
			want: map[string]string{"nodeCount": "must be at least 3 with replicated-storage (Longhorn keeps 3 replicas of each volume on 3 nodes, on the data volumes): ask for 3 or more nodes, or leave replicated-storage out"}},
		{name: "replicated storage without data volumes", fields: `"addons":["dns","replicated-storage"]`,
			want: map[string]string{"dataVolumes.count": `must be at least 1 with replicated-storage (Longhorn keeps 3 replicas of each volume on 3 nodes, on the data volumes): add "dataVolumes": {"count": 1, "sizeGiB": 100}`}},
		{name: "replicated storage with 0 data volumes", fields: `"dataVolumes":{"count":0},"addons":["dns","replicated-storage"]`,
			want: map[string]string{"dataVolumes.count": "must be at least 1 with replicated-storage"}},
		{name: "replicated storage without dns", fields: `"dataVolumes":{"count":1},"addons":["replicated-storage"]`,
			want: map[string]string{"addons": "replicated-storage needs dns (Longhorn's components reach its manager by Service name): add dns"}},
		{name: "addons explicit none", fields: `"addons":[]`},
		{name: "addons null takes default", fields: `"addons":null`},
		{name: "addons unknown", fields: `"addons":["dns","dashboard"]`, want: map[string]string{"addons[1]": "must be one of: dns, hostpath-storage"}},
		// MicroK8s has no edgex addon (neither repository's addons.yaml): refused
		// up front, not at the node when `microk8s enable edgex` fails.
		{name: "addons kubeflow", fields: `"addons":["dns","kubeflow"]`, want: map[string]string{"addons[1]": "must be one of"}},
		{name: "addons duplicate", fields: `"addons":["dns","ingress","dns"]`, want: map[string]string{"addons[2]": "duplicate of addons[0]"}},
		{name: "addons element type", fields: `"addons":["dns",3]`, want: map[string]string{"addons[1]": "must be a string"}},
		{name: "addons element null", fields: `"addons":[null]`, want: map[string]string{"addons[0]": "must be a string"}},
		{name: "addons not a list", fields: `"addons":"dns"`, want: map[string]string{"addons": "must be a list of addon names"}},

		// ebsKmsKeyId: the forms RunInstances takes, in the MEC's region.
		{name: "kms key id", fields: `"ebsKmsKeyId":"1234abcd-12ab-34cd-56ef-1234567890ab"`},
		{name: "kms multi-region key id", fields: `"ebsKmsKeyId":"mrk-1234abcd12ab34cd56ef1234567890ab"`},
		{name: "kms alias", fields: `"ebsKmsKeyId":"alias/mecd-ebs"`},
		{name: "kms key arn", fields: `"region":"eu-west-1","ebsKmsKeyId":"arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"`},
		{name: "kms alias arn", fields: `"region":"eu-west-1","ebsKmsKeyId":"arn:aws:kms:eu-west-1:111122223333:alias/mecd-ebs"`},
		{name: "kms key of another region", fields: `"region":"eu-west-1","ebsKmsKeyId":"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"`,
			want: map[string]string{"ebsKmsKeyId": "MEC's region eu-west-1"}},
		{name: "kms garbage", fields: `"ebsKmsKeyId":"my-key"`, want: map[string]string{"ebsKmsKeyId": "key id"}},
		{name: "kms arn of something else", fields: `"ebsKmsKeyId":"arn:aws:kms:eu-west-1:111122223333:key/not-a-uuid"`, want: map[string]string{"ebsKmsKeyId": "or alias ARN"}},

		// apiAccessCidrs, nodePortCidrs
		{name: "cidr ok", fields: `"apiAccessCidrs":["203.0.113.0/24","198.51.100.7/32"]`},
		// The whole internet only when meant (the seed opened 16443 to it).
		{name: "cidr everywhere refused", fields: `"apiAccessCidrs":["0.0.0.0/0"]`,
			want: map[string]string{"apiAccessCidrs[0]": `"allowWorldAccess": true`}},
		{name: "nodeport everywhere refused", fields: `"nodePortCidrs":["203.0.113.0/24","0.0.0.0/0"]`,
			want: map[string]string{"nodePortCidrs[1]": "whole internet"}},
		{name: "cidr everywhere when meant", fields: `"apiAccessCidrs":["0.0.0.0/0"],"nodePortCidrs":["0.0.0.0/0"],"allowWorldAccess":true`},
		{name: "allowWorldAccess not a bool", fields: `"allowWorldAccess":"yes"`, want: map[string]string{"allowWorldAccess": "true or false"}},
		{name: "cidr host bits", fields: `"apiAccessCidrs":["10.1.2.3/16"]`,
			want: map[string]string{"apiAccessCidrs[0]": `host bits zero: "10.1.0.0/16" (or "10.1.2.3/32"`}},
		{name: "cidr bare address", fields: `"apiAccessCidrs":["203.0.113.9"]`, want: map[string]string{"apiAccessCidrs[0]": `"203.0.113.9/32"`}},
		{name: "cidr ipv6 everywhere", fields: `"nodePortCidrs":["::/0"],"allowWorldAccess":true`, want: map[string]string{"nodePortCidrs[0]": `"0.0.0.0/0" with "allowWorldAccess": true`}},
		{name: "cidr ipv6", fields: `"apiAccessCidrs":["2001:db8::/32"]`, want: map[string]string{"apiAccessCidrs[0]": "IPv6 is not supported"}},
		{name: "cidr garbage", fields: `"apiAccessCidrs":["10.0.0.0/33"]`, want: map[string]string{"apiAccessCidrs[0]": "IPv4 CIDR"}},
		{name: "cidr bad octet", fields: `"apiAccessCidrs":["300.0.0.0/8"]`, want: map[string]string{"apiAccessCidrs[0]": "IPv4 CIDR"}},
		{name: "cidr leading zero bits", fields: `"apiAccessCidrs":["10.0.0.0/08"]`, want: map[string]string{"apiAccessCidrs[0]": "IPv4 CIDR"}},
		{name: "cidr leading zero octet", fields: `"apiAccessCidrs":["010.0.0.0/8"]`, want: map[string]string{"apiAccessCidrs[0]": "IPv4 CIDR"}},
		{name: "cidr ipv4-mapped ipv6", fields: `"apiAccessCidrs":["::ffff:10.0.0.0/104"]`, want: map[string]string{"apiAccessCidrs[0]": "IPv6 is not supported"}},
		{name: "cidr empty string", fields: `"apiAccessCidrs":[""]`, want: map[string]string{"apiAccessCidrs[0]": "IPv4 CIDR"}},
		{name: "cidr duplicate", fields: `"apiAccessCidrs":["10.0.0.0/8","10.0.0.0/8"]`, want: map[string]string{"apiAccessCidrs[1]": "duplicate of apiAccessCidrs[0]"}},
		{name: "cidr 20", fields: `"apiAccessCidrs":` + jsonList(20, func(i int) string { return fmt.Sprintf("10.%d.0.0/16", i) })},
		{name: "cidr 21", fields: `"apiAccessCidrs":` + jsonList(21, func(i int) string { return fmt.Sprintf("10.%d.0.0/16", i) }),
			want: map[string]string{"apiAccessCidrs": "at most 20 CIDRs, got 21"}},
		{name: "cidr not a list", fields: `"apiAccessCidrs":"10.0.0.0/8"`, want: map[string]string{"apiAccessCidrs": "list of IPv4 CIDRs"}},
		{name: "nodeport cidr ok", fields: `"nodePortCidrs":["192.0.2.0/24"]`},
		{name: "nodeport cidr host bits", fields: `"nodePortCidrs":["192.0.2.1/24"]`, want: map[string]string{"nodePortCidrs[0]": `"192.0.2.0/24"`}},
		{name: "nodeport cidr duplicate", fields: `"nodePortCidrs":["192.0.2.0/24","192.0.2.0/24"]`, want: map[string]string{"nodePortCidrs[1]": "duplicate"}},
		{name: "nodeport cidr 20", fields: `"nodePortCidrs":` + jsonList(20, func(i int) string { return fmt.Sprintf("10.%d.0.0/16", i) })},
		{name: "nodeport cidr 21", fields: `"nodePortCidrs":` + jsonList(21, func(i int) string { return fmt.Sprintf("10.%d.0.0/16", i) }),
			want: map[string]string{"nodePortCidrs": "at most 20"}},
		{name: "nodeport cidr element type", fields: `"nodePortCidrs":[{}]`, want: map[string]string{"nodePortCidrs[0]": "must be a string"}},

		// publicEndpoint
		{name: "publicEndpoint true", fields: `"publicEndpoint":true`},
		{name: "publicEndpoint false", fields: `"publicEndpoint":false`},
		{name: "publicEndpoint string", fields: `"publicEndpoint":"true"`, want: map[string]string{"publicEndpoint": "true or false"}},

		// haControlPlane
		{name: "ha off with 3", fields: `"haControlPlane":false`},
		{name: "ha on with 3", fields: `"haControlPlane":true,"nodeCount":3`},
		{name: "ha off with 1", fields: `"haControlPlane":false,"nodeCount":1`},
		{name: "ha on with 2", fields: `"haControlPlane":true,"nodeCount":2`, want: map[string]string{"haControlPlane": "nodeCount >= 3"}},
		{name: "ha wrong type", fields: `"haControlPlane":"no"`, want: map[string]string{"haControlPlane": "true or false"}},

		// rootVolumeGiB
		{name: "root explicit 0", fields: `"rootVolumeGiB":0`, want: map[string]string{"rootVolumeGiB": "must be 20-500"}},
		{name: "root 19", fields: `"rootVolumeGiB":19`, want: map[string]string{"rootVolumeGiB": "must be 20-500"}},
		{name: "root 20", fields: `"rootVolumeGiB":20`},
		{name: "root 500", fields: `"rootVolumeGiB":500`},
		{name: "root 501", fields: `"rootVolumeGiB":501`, want: map[string]string{"rootVolumeGiB": "must be 20-500"}},
		{name: "root string", fields: `"rootVolumeGiB":"30"`, want: map[string]string{"rootVolumeGiB": "whole number, 20-500"}},

		// ttl
		{name: "ttl below", fields: `"ttl":"9m59s"`, want: map[string]string{"ttl": "between 10m and 2160h (90 days)"}},
		{name: "ttl at min", fields: `"ttl":"10m"`},
		{name: "ttl at max", fields: `"ttl":"2160h"`},
		{name: "ttl above", fields: `"ttl":"2160h1s"`, want: map[string]string{"ttl": "between 10m and 2160h"}},
		{name: "ttl days unit", fields: `"ttl":"7d"`, want: map[string]string{"ttl": "Go duration"}},
		{name: "ttl negative", fields: `"ttl":"-8h"`, want: map[string]string{"ttl": "Go duration"}},
		{name: "ttl number", fields: `"ttl":3600`, want: map[string]string{"ttl": "Go duration"}},
		{name: "ttl empty string", fields: `"ttl":""`, want: map[string]string{"ttl": "must not be empty; leave the field out"}},
		{name: "expiresAt empty string", fields: `"expiresAt":""`, want: map[string]string{"expiresAt": "must not be empty"}},

		// expiresAt
		{name: "expiresAt below", fields: `"expiresAt":"` + at(9*time.Minute) + `"`, want: map[string]string{"expiresAt": "at least 10 minutes"}},
		{name: "expiresAt past", fields: `"expiresAt":"` + at(-time.Hour) + `"`, want: map[string]string{"expiresAt": "2030-01-02T03:14:05Z"}},
		{name: "expiresAt at min", fields: `"expiresAt":"` + at(10*time.Minute) + `"`},
		{name: "expiresAt at max", fields: `"expiresAt":"` + at(90*24*time.Hour) + `"`},
		{name: "expiresAt above", fields: `"expiresAt":"` + at(90*24*time.Hour+time.Second) + `"`, want: map[string]string{"expiresAt": "at most 90 days"}},
		{name: "expiresAt with offset", fields: `"expiresAt":"2030-01-03T05:00:00+02:00"`},
		{name: "expiresAt not rfc3339", fields: `"expiresAt":"2030-01-03 05:00"`, want: map[string]string{"expiresAt": "RFC 3339"}},
		{name: "expiresAt date only", fields: `"expiresAt":"2030-01-03"`, want: map[string]string{"expiresAt": "RFC 3339"}},
		{name: "expiresAt number", fields: `"expiresAt":1893456000`, want: map[string]string{"expiresAt": "RFC 3339"}},
		{name: "ttl and expiresAt", fields: `"ttl":"8h","expiresAt":"` + at(8*time.Hour) + `"`,
			want: map[string]string{"ttl": "either ttl or expiresAt, not both", "expiresAt": "either ttl or expiresAt, not both"}},
		{name: "ttl and null expiresAt", fields: `"ttl":"8h","expiresAt":null`},

		// dataVolumes
		{name: "dataVolumes 3 x 100", fields: `"dataVolumes":{"count":3,"sizeGiB":100}`},
		{name: "dataVolumes size default", fields: `"dataVolumes":{"count":1}`},
		{name: "dataVolumes none", fields: `"dataVolumes":{"count":0}`},
		{name: "dataVolumes null", fields: `"dataVolumes":null`},
		{name: "dataVolumes bounds", fields: `"dataVolumes":{"count":1,"sizeGiB":10}`},
		{name: "dataVolumes 4", fields: `"dataVolumes":{"count":4}`, want: map[string]string{"dataVolumes.count": "must be 0-3"}},
		{name: "dataVolumes negative", fields: `"dataVolumes":{"count":-1}`, want: map[string]string{"dataVolumes.count": "must be 0-3"}},
		{name: "dataVolumes small", fields: `"dataVolumes":{"count":1,"sizeGiB":9}`, want: map[string]string{"dataVolumes.sizeGiB": "must be 10-1000"}},
		{name: "dataVolumes large", fields: `"dataVolumes":{"count":1,"sizeGiB":1001}`, want: map[string]string{"dataVolumes.sizeGiB": "must be 10-1000"}},
		{name: "dataVolumes size 0", fields: `"dataVolumes":{"count":1,"sizeGiB":0}`, want: map[string]string{"dataVolumes.sizeGiB": "must be 10-1000"}},
		{name: "dataVolumes fraction", fields: `"dataVolumes":{"count":1.5}`, want: map[string]string{"dataVolumes.count": "whole number"}},
		{name: "dataVolumes no count", fields: `"dataVolumes":{"sizeGiB":50}`, want: map[string]string{"dataVolumes.count": "is required"}},
		{name: "dataVolumes unknown key", fields: `"dataVolumes":{"count":1,"type":"io2"}`, want: map[string]string{"dataVolumes.type": `takes "count" and "sizeGiB"`}},
		{name: "dataVolumes repeated key", fields: `"dataVolumes":{"count":1,"count":2}`, want: map[string]string{"dataVolumes.count": "more than once"}},
		{name: "dataVolumes a number", fields: `"dataVolumes":3`, want: map[string]string{"dataVolumes": `{"count": 1, "sizeGiB": 100}`}},

		// tags
		{name: "tags ok", fields: `"tags":{"owner":"edge team","cost-center":"42","env:stage":"a/b=c+d@e.f_g","café":"crème"}`},
		{name: "tags 40", fields: `"tags":` + jsonTags(40)},
		{name: "tags 41", fields: `"tags":` + jsonTags(41), want: map[string]string{"tags": "at most 40 tags, got 41"}},
		{name: "tag key 128", fields: `"tags":{"` + long(128) + `":"v"}`},
		{name: "tag key 129", fields: `"tags":{"` + long(129) + `":"v"}`, want: map[string]string{"tags." + long(129): "1-128 characters"}},
		{name: "tag key empty", fields: `"tags":{"":"v"}`, want: map[string]string{"tags.": "1-128 characters"}},
		{name: "tag key 128 multibyte", fields: `"tags":{"` + strings.Repeat("é", 128) + `":"v"}`},
		{name: "tag value empty", fields: `"tags":{"k":""}`},
		{name: "tag value 256", fields: `"tags":{"k":"` + long(256) + `"}`},
		{name: "tag value 257", fields: `"tags":{"k":"` + long(257) + `"}`, want: map[string]string{"tags.k": "0-256 characters"}},
		{name: "tag key aws prefix", fields: `"tags":{"aws:cloudformation:stack":"x"}`, want: map[string]string{"tags.aws:cloudformation:stack": "reserved"}},
		{name: "tag key AWS prefix", fields: `"tags":{"AWS:x":"x"}`, want: map[string]string{"tags.AWS:x": "reserved"}},
		{name: "tag key mecd prefix", fields: `"tags":{"mecd:cluster-id":"x"}`, want: map[string]string{"tags.mecd:cluster-id": "reserved"}},
		{name: "tag key bad char", fields: `"tags":{"team#1":"x"}`, want: map[string]string{"tags.team#1": "letters, digits, spaces"}},
		{name: "tag value bad char", fields: `"tags":{"k":"a;b"}`, want: map[string]string{"tags.k": "letters, digits, spaces"}},
		{name: "tag value number", fields: `"tags":{"k":1}`, want: map[string]string{"tags.k": "must be a string"}},
		{name: "tag value null", fields: `"tags":{"k":null}`, want: map[string]string{"tags.k": "must be a string"}},
		{name: "tag duplicate key", fields: `"tags":{"k":"a","k":"b"}`, want: map[string]string{"tags.k": "more than once"}},
		{name: "tags not an object", fields: `"tags":["owner"]`, want: map[string]string{"tags": "object of tag keys"}},
		{name: "tags empty", fields: `"tags":{}`},
		{name: "tags null", fields: `"tags":null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if body == "" {
				body = withName(tt.fields)
			}
			d := testDefaults()
			if tt.d != nil {
				d = *tt.d
			}
			s, err := Parse([]byte(body), d)
			checkErr(t, err, tt.want)
			if err == nil {
				// What Parse returns must pass Validate on its own too.
				if err := s.Validate(d); err != nil {
					t.Errorf("parsed spec fails Validate: %v", err)
				}
			} else if s.Name != "" {
				t.Errorf("spec returned with error: %+v", s)
			}
		})
	}
}

func TestParseBody(t *testing.T) {
	tests := []struct {
		name string
		body string
		want map[string]string
	}{
		{"empty", ``, map[string]string{"body": "is empty"}},
		{"whitespace", " \n\t", map[string]string{"body": "is empty"}},
		{"null", `null`, map[string]string{"body": "not null"}},
		{"array", `[{"name":"a"}]`, map[string]string{"body": "not an array"}},
		{"string", `"edge-1"`, map[string]string{"body": "not a string"}},
		{"number", `3`, map[string]string{"body": "not a number"}},
		{"boolean", `true`, map[string]string{"body": "not a boolean"}},
		{"truncated", `{"name":"edge-1"`, map[string]string{"body": "must be one JSON object"}},
		{"truncated value", `{"name":`, map[string]string{"body": "must be one JSON object"}},
		{"syntax", `{"name" "edge-1"}`, map[string]string{"body": "must be one JSON object"}},
		{"trailing comma", `{"name":"edge-1",}`, map[string]string{"body": "must be one JSON object"}},
		{"second object", `{"name":"edge-1"} {"name":"edge-2"}`, map[string]string{"body": "exactly one JSON object"}},
		{"trailing garbage", `{"name":"edge-1"}x`, map[string]string{"body": "exactly one JSON object"}},
		{"trailing whitespace ok", "{\"name\":\"edge-1\"}\n  ", nil},
		{"unknown field", `{"name":"edge-1","nodes":3}`, map[string]string{"nodes": "unknown field; valid fields are name, region, nodeCount"}},
		{"unknown fields all reported", `{"name":"edge-1","a":1,"b":2}`, map[string]string{"a": "unknown field", "b": "unknown field"}},
		{"wrong case", `{"Name":"edge-1"}`, map[string]string{"Name": `did you mean "name"?`, "name": "is required"}},
		{"wrong case nested", `{"name":"edge-1","NodeCount":3}`, map[string]string{"NodeCount": `did you mean "nodeCount"?`}},
		{"duplicate field", `{"name":"edge-1","name":"edge-2"}`, map[string]string{"name": "more than once"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.body), testDefaults())
			checkErr(t, err, tt.want)
		})
	}
}

func TestParseReportsAllErrors(t *testing.T) {
	body := `{"name":"Bad_Name","region":"nowhere","nodeCount":"three","instanceType":"big",
		"addons":["dns","helm"],"apiAccessCidrs":["10.0.0.1/8"],"rootVolumeGiB":5,"ttl":"1m",
		"tags":{"aws:x":"y"},"extra":true}`
	_, err := Parse([]byte(body), testDefaults())
	checkErr(t, err, map[string]string{
		"name": "DNS-1123", "region": "AWS region", "nodeCount": "whole number", "instanceType": "family.size",
		"addons[1]": "one of", "apiAccessCidrs[0]": "10.0.0.0/8", "rootVolumeGiB": "20-500", "ttl": "10m",
		"tags.aws:x": "reserved", "extra": "unknown field",
	})
}

func TestParseResolvesTTL(t *testing.T) {
	s, err := Parse([]byte(withName(`"ttl":"8h"`)), testDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if s.TTL != "8h" {
		t.Errorf("TTL = %q, want kept as 8h", s.TTL)
	}
	if s.ExpiresAt == nil || !s.ExpiresAt.Equal(testNow.Add(8*time.Hour)) {
		t.Errorf("ExpiresAt = %v, want %v", s.ExpiresAt, testNow.Add(8*time.Hour))
	}
}

func TestParseExpiresAtInUTC(t *testing.T) {
	s, err := Parse([]byte(withName(`"expiresAt":"2030-01-03T05:00:00+02:00"`)), testDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if got := s.ExpiresAt.Format(time.RFC3339); got != "2030-01-03T03:00:00Z" {
		t.Errorf("ExpiresAt = %s, want 2030-01-03T03:00:00Z", got)
	}
}

func TestValidateDerivedExpiresAt(t *testing.T) {
	s, err := Parse([]byte(withName(`"ttl":"10m"`)), testDefaults())
	if err != nil {
		t.Fatal(err)
	}
	later := testDefaults()
	later.Now = func() time.Time { return testNow.Add(5 * time.Minute) }
	if err := s.Validate(later); err != nil {
		t.Errorf("re-validating a parsed ttl spec later: %v", err)
	}
}

func TestValidationErrorString(t *testing.T) {
	e := &ValidationError{Fields: map[string]string{"nodeCount": "must be 1-20", "addons[0]": "must be one of: dns", "name": "is required"}}
	want := "invalid spec: addons[0]: must be one of: dns; name: is required; nodeCount: must be 1-20"
	for range 5 {
		if got := e.Error(); got != want {
			t.Fatalf("Error() = %q, want %q", got, want)
		}
	}
	b, _ := json.Marshal(e)
	if !strings.Contains(string(b), `"fields":{"addons[0]"`) {
		t.Errorf("JSON = %s", b)
	}
}

func TestApplyDefaults(t *testing.T) {
	var s Spec
	s.ApplyDefaults(testDefaults())
	once := s
	s.ApplyDefaults(Defaults{Region: "us-east-1"})
	if s.Region != "eu-west-1" || s.NodeCount != once.NodeCount || *s.HAControlPlane != *once.HAControlPlane {
		t.Errorf("ApplyDefaults is not idempotent: %+v then %+v", once, s)
	}
	s.Addons[0] = "changed"
	if DefaultAddons[0] != "dns" {
		t.Error("ApplyDefaults shares DefaultAddons' backing array")
	}
	two := Spec{NodeCount: 2}
	two.ApplyDefaults(testDefaults())
	if *two.HAControlPlane {
		t.Error("HA defaulted on for 2 nodes")
	}
	none := Spec{Addons: []string{}}
	none.ApplyDefaults(testDefaults())
	if len(none.Addons) != 0 {
		t.Errorf("explicit no addons replaced by %v", none.Addons)
	}
}

func TestRoles(t *testing.T) {
	off, on := false, true
	cp, w := RoleControlPlane, RoleWorker
	tests := []struct {
		name  string
		nodes int
		ha    *bool
		cps   int
		roles []Role
	}{
		{"1 node", 1, nil, 1, []Role{cp}},
		{"2 nodes", 2, nil, 1, []Role{cp, w}},
		{"3 nodes", 3, nil, 3, []Role{cp, cp, cp}},
		{"3 nodes HA explicit", 3, &on, 3, []Role{cp, cp, cp}},
		{"5 nodes", 5, nil, 3, []Role{cp, cp, cp, w, w}},
		{"3 nodes HA off", 3, &off, 1, []Role{cp, w, w}},
		{"5 nodes HA off", 5, &off, 1, []Role{cp, w, w, w, w}},
		{"1 node HA off", 1, &off, 1, []Role{cp}},
		{"no nodes", 0, nil, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Spec{NodeCount: tt.nodes, HAControlPlane: tt.ha}
			if got := s.ControlPlaneCount(); got != tt.cps {
				t.Errorf("ControlPlaneCount() = %d, want %d", got, tt.cps)
			}
			if got := s.Roles(); !slices.Equal(got, tt.roles) {
				t.Errorf("Roles() = %v, want %v", got, tt.roles)
			}
		})
	}
}

func TestHash(t *testing.T) {
	parse := func(body string, now time.Time) Spec {
		t.Helper()
		d := testDefaults()
		d.Now = func() time.Time { return now }
		s, err := Parse([]byte(body), d)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := parse(withName(`"ttl":"8h","addons":["ingress","dns"],"apiAccessCidrs":["10.0.0.0/8","192.0.2.0/24"]`), testNow)
	h := base.Hash()
	if len(h) != 64 {
		t.Fatalf("Hash() = %q, want 64 hex chars", h)
	}
	if h != base.Hash() {
		t.Error("Hash() is not stable")
	}

	same := map[string]Spec{
		"same body a minute later": parse(withName(`"ttl":"8h","addons":["ingress","dns"],"apiAccessCidrs":["10.0.0.0/8","192.0.2.0/24"]`), testNow.Add(time.Minute)),
		"lists reordered":          parse(withName(`"ttl":"8h","addons":["dns","ingress"],"apiAccessCidrs":["192.0.2.0/24","10.0.0.0/8"]`), testNow),
		"defaults spelled out": parse(withName(`"ttl":"8h","addons":["dns","ingress"],"apiAccessCidrs":["192.0.2.0/24","10.0.0.0/8"],
			"region":"eu-west-1","nodeCount":3,"instanceType":"t4g.medium","microk8sChannel":"1.35/stable","rootVolumeGiB":30,"haControlPlane":true,"tags":{}`), testNow),
	}
	for name, s := range same {
		if s.Hash() != h {
			t.Errorf("%s: hash differs", name)
		}
	}
	// A JSON round trip (state machine input) keeps the hash.
	b, _ := json.Marshal(base)
	var back Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Hash() != h {
		t.Errorf("hash changed over a JSON round trip: %s", b)
	}

	differ := map[string]string{
		"nodeCount":      `"ttl":"8h","addons":["ingress","dns"],"apiAccessCidrs":["10.0.0.0/8","192.0.2.0/24"],"nodeCount":5`,
		"ttl":            `"ttl":"9h","addons":["ingress","dns"],"apiAccessCidrs":["10.0.0.0/8","192.0.2.0/24"]`,
		"addons":         `"ttl":"8h","addons":["dns"],"apiAccessCidrs":["10.0.0.0/8","192.0.2.0/24"]`,
		"cidrs moved":    `"ttl":"8h","addons":["ingress","dns"],"nodePortCidrs":["10.0.0.0/8","192.0.2.0/24"]`,
		"ha off":         `"ttl":"8h","addons":["ingress","dns"],"apiAccessCidrs":["10.0.0.0/8","192.0.2.0/24"],"haControlPlane":false`,
		"tags":           `"ttl":"8h","addons":["ingress","dns"],"apiAccessCidrs":["10.0.0.0/8","192.0.2.0/24"],"tags":{"a":"b"}`,
		"publicEndpoint": `"ttl":"8h","addons":["ingress","dns"],"apiAccessCidrs":["10.0.0.0/8","192.0.2.0/24"],"publicEndpoint":true`,
	}
	for name, fields := range differ {
		if parse(withName(fields), testNow).Hash() == h {
			t.Errorf("changing %s keeps the hash", name)
		}
	}
	e1 := parse(withName(`"expiresAt":"`+at(time.Hour)+`"`), testNow)
	e2 := parse(withName(`"expiresAt":"`+at(2*time.Hour)+`"`), testNow)
	if e1.Hash() == e2.Hash() {
		t.Error("different expiresAt hash the same")
	}
	none := parse(withName(`"addons":[]`), testNow)
	dflt := parse(withName(``), testNow)
	if none.Hash() == dflt.Hash() {
		t.Error("no addons hashes like the default addons")
	}
}

// An explicit "no addons" must survive the JSON round trip into the state machine.
func TestNoAddonsRoundTrip(t *testing.T) {
	s, err := Parse([]byte(withName(`"addons":[]`)), testDefaults())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(s)
	back, err := Parse(b, testDefaults())
	if err != nil {
		t.Fatalf("re-parsing %s: %v", b, err)
	}
	if back.Addons == nil || len(back.Addons) != 0 {
		t.Errorf("addons after round trip = %#v (%s)", back.Addons, b)
	}
}

// A data volume's size defaults to the seed's 100 GiB, and asking for no
// volumes is the same request as not asking.
func TestDataVolumesDefaultAndHash(t *testing.T) {
	s, err := Parse([]byte(withName(`"dataVolumes":{"count":2}`)), testDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if got := *s.DataVolumes; got != (DataVolumes{Count: 2, SizeGiB: DefaultDataVolumeGiB}) {
		t.Errorf("dataVolumes = %+v, want 2 x %d GiB", got, DefaultDataVolumeGiB)
	}
	none, err := Parse([]byte(withName(`"dataVolumes":{"count":0}`)), testDefaults())
	if err != nil {
		t.Fatal(err)
	}
	absent, err := Parse([]byte(withName("")), testDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if none.Hash() != absent.Hash() {
		t.Error(`{"count": 0} hashes unlike no dataVolumes`)
	}
	if s.Hash() == absent.Hash() {
		t.Error("2 data volumes hash like none")
	}
}

// A spec whose addons will not fit its instance type's memory is refused on
// addons, naming the addons that weigh and the smallest type of the family
// that fits; a family the table does not know is left to EC2.
func TestFitCheck(t *testing.T) {
	for _, tc := range []struct {
		name, instanceType string
		addons             []string
		want               []string // in the addons message; none: accepted
	}{
		{name: "observability on 2 GiB", instanceType: "t4g.small", addons: []string{"dns", "observability"},
			want: []string{"will not fit t4g.small's 2048 MiB", "dns 170, observability 1536 (MiB)", "choose instanceType t4g.medium or larger"}},
		{name: "dns on 1 GiB", instanceType: "t4g.micro", addons: []string{"dns"},
			want: []string{"t4g.micro's 1024 MiB", "choose instanceType t4g.small or larger"}},
		{name: "nothing on 0.5 GiB", instanceType: "t3.nano", addons: []string{},
			want: []string{"t3.nano's 512 MiB: MicroK8s with room for workloads need", "t3.small or larger"}},
		{name: "c7g.medium is 2 GiB", instanceType: "c7g.medium", addons: []string{"observability"},
			want: []string{"c7g.medium's 2048 MiB", "c7g.large or larger"}},
		{name: "every addon on t4g.medium", instanceType: "t4g.medium", addons: AllowedAddons,
			want: []string{"observability 1536, replicated-storage 768, edgex 512 (MiB) need about 4921 MiB", "choose instanceType t4g.large or larger"}},
		{name: "every addon on t4g.large", instanceType: "t4g.large", addons: AllowedAddons},
		{name: "every addon on m7g.large", instanceType: "m7g.large", addons: AllowedAddons},
		{name: "every addon on m5.large", instanceType: "m5.large", addons: AllowedAddons},
		{name: "a family the table does not know", instanceType: "x2gd.medium", addons: AllowedAddons},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Spec{Name: "edge-1", InstanceType: tc.instanceType, Addons: tc.addons, DataVolumes: &DataVolumes{Count: 1}}
			s.ApplyDefaults(testDefaults())
			err := s.Validate(testDefaults())
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("accepted, want a refusal on addons")
			}
			for _, w := range tc.want {
				if !strings.Contains(verr.Fields["addons"], w) {
					t.Errorf("addons: %q lacks %q", verr.Fields["addons"], w)
				}
			}
		})
	}
}

// Over every combination of addons (an addon's needs added), on t4g.small
// (2 GiB) those with the observability stack are refused, naming it and a
// larger size, and every refusal names the fix; on t4g.medium (the default
// type) every combination without the observability stack fits, with room
// for workloads; on t4g.large every one does.
func TestFitEveryCombination(t *testing.T) {
	for mask := range 1 << len(AllowedAddons) {
		addons := []string{}
		for i, a := range AllowedAddons {
			if mask&(1<<i) != 0 {
				addons = append(addons, a)
			}
		}
		needs := map[string][]string{"edgex": {"dns", "hostpath-storage"}, "replicated-storage": {"dns"}}
		for own, list := range needs {
			for _, need := range list {
				if slices.Contains(addons, own) && !slices.Contains(addons, need) {
					addons = append(addons, need)
				}
			}
		}
		list := jsonList(len(addons), func(i int) string { return addons[i] })
		parse := func(instanceType string) error {
			_, err := Parse([]byte(`{"name":"edge-1","instanceType":"`+instanceType+`","dataVolumes":{"count":1},"addons":`+list+`}`), testDefaults())
			return err
		}
		if err := parse("t4g.large"); err != nil {
			t.Errorf("%v refused on t4g.large: %v", addons, err)
		}
		if err := parse("t4g.medium"); err != nil && !slices.Contains(addons, "observability") {
			t.Errorf("%v refused on t4g.medium: %v", addons, err)
		}
		var verr *ValidationError
		err := parse("t4g.small")
		if err != nil && (!errors.As(err, &verr) || len(verr.Fields) != 1 ||
			!regexp.MustCompile(`choose instanceType t4g\.(medium|large) or larger, or fewer addons`).MatchString(verr.Fields["addons"])) {
			t.Errorf("%v on t4g.small: %v, want a refusal on addons naming a larger size", addons, err)
		}
		if !slices.Contains(addons, "observability") {
			continue
		}
		if err == nil || !strings.Contains(verr.Fields["addons"], "observability 1536") {
			t.Errorf("%v: %v, want a refusal naming observability and a larger size", addons, err)
		}
	}
}
