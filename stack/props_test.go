package stack

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"

	"github.com/mecd/mecd/internal/backend"
)

func TestConfigFromContext(t *testing.T) {
	t.Setenv("CDK_DEFAULT_REGION", "")
	t.Setenv("CDK_DEFAULT_ACCOUNT", "123456789012")
	ctx := map[string]any{
		CtxRegion:           "eu-central-1",
		CtxRegions:          []any{"us-east-1", "eu-west-1"}, // as cdk.json has it
		CtxRecordRetention:  "240h",
		CtxSweepRate:        "10m",
		CtxLogRetentionDays: float64(90),
		CtxFunctionsDir:     "build",
		CtxRetainTable:      false,
		CtxAPIAccountRole:   false,
	}
	c, err := ConfigFromContext(func(k string) any { return ctx[k] }, "/repo")
	if err != nil {
		t.Fatal(err)
	}
	p := c.Props
	if c.StackName != "mecd" || *p.Env.Region != "eu-central-1" || *p.Env.Account != "123456789012" {
		t.Errorf("stack %s env %v/%v", c.StackName, *p.Env.Account, *p.Env.Region)
	}
	// The home region always serves MECs: it is the spec's default region.
	if !slices.Equal(p.AllowedRegions, []string{"eu-central-1", "us-east-1", "eu-west-1"}) {
		t.Errorf("regions %v", p.AllowedRegions)
	}
	if p.RecordRetention != 240*time.Hour || p.SweepRate != 10*time.Minute || p.LogRetention != awslogs.RetentionDays_THREE_MONTHS {
		t.Errorf("retention %v sweep %v logs %v", p.RecordRetention, p.SweepRate, p.LogRetention)
	}
	if p.FunctionsDir != filepath.Join("/repo", "build") || p.TableRemovalPolicy != awscdk.RemovalPolicy_DESTROY || !p.KeepAPIAccountSettings {
		t.Errorf("functions %s removal %v keep API account settings %v", p.FunctionsDir, p.TableRemovalPolicy, p.KeepAPIAccountSettings)
	}

	// `-c` overrides arrive as strings.
	ctx = map[string]any{CtxRegions: "us-east-1,eu-west-1", CtxLogRetentionDays: "7"}
	if c, err = ConfigFromContext(func(k string) any { return ctx[k] }, "/repo"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Props.AllowedRegions, []string{"us-east-1", "eu-west-1"}) || c.Props.Env.Region != nil ||
		c.Props.LogRetention != awslogs.RetentionDays_ONE_WEEK {
		t.Errorf("regions %v region %v logs %v", c.Props.AllowedRegions, c.Props.Env.Region, c.Props.LogRetention)
	}

	for _, bad := range []map[string]any{
		{CtxRecordRetention: "30 days"}, {CtxSweepRate: "often"}, {CtxLogRetentionDays: "31"}, {CtxRetainTable: "maybe"}, {CtxAPIAccountRole: "yes please"},
	} {
		if _, err := ConfigFromContext(func(k string) any { return bad[k] }, "/repo"); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := &MecdStackProps{FunctionsDir: functionsDir, Definitions: ptr(withLifecycle(BackendDefinitions()))}
	if err := Validate(ok); err != nil {
		t.Fatalf("valid props: %v", err)
	}
	empty := t.TempDir()
	cases := map[string]*MecdStackProps{
		"make build":                 {FunctionsDir: empty},
		"FunctionsDir":               {},
		"whole minutes":              {FunctionsDir: functionsDir, SweepRate: 90 * time.Second},
		"has no IAM policy":          {FunctionsDir: functionsDir, Definitions: &Definitions{Functions: []backend.Function{{Name: "mystery"}}}},
		"unknown function":           {FunctionsDir: functionsDir, Definitions: &Definitions{EventRules: []backend.EventRule{{Name: "r", Function: "nope", Pattern: `{}`}}}},
		"state machine \"x\"":        {FunctionsDir: functionsDir, Definitions: &Definitions{StateMachines: []backend.StateMachine{{Name: "x", File: "statemachine/none.asl.json"}}}},
		"no deployed function fills": {FunctionsDir: functionsDir, Definitions: &Definitions{StateMachines: []backend.StateMachine{{Name: "p", File: "statemachine/provision.asl.json"}}}},
	}
	for want, p := range cases {
		err := Validate(p)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v", want, err)
		}
	}
}

func TestEventPatternRejectsWhatCDKCannotExpress(t *testing.T) {
	for _, r := range backend.EventRules {
		if _, err := eventPattern(r.Pattern); err != nil {
			t.Errorf("%s: %v", r.Name, err)
		}
	}
	if _, err := eventPattern(`{"source":["aws.ssm"],"replay-name":["x"]}`); err == nil {
		t.Error("an unknown top-level key was accepted")
	}
}

func TestHelpers(t *testing.T) {
	for d, want := range map[time.Duration]string{720 * time.Hour: "720h", 5 * time.Minute: "5m", 10 * time.Second: "10s", 90 * time.Minute: "1h30m"} {
		if got := goDuration(d); got != want {
			t.Errorf("goDuration(%v) = %s, want %s", d, got, want)
		}
		if back, err := time.ParseDuration(goDuration(d)); err != nil || back != d {
			t.Errorf("%s does not parse back to %v", goDuration(d), d)
		}
	}
	if pascal("launch-nodes") != "LaunchNodes" || pascal("api") != "Api" {
		t.Error("pascal")
	}
	if _, err := RetentionDays(31); err == nil {
		t.Error("31 days accepted")
	}
	if got := nagID(arnJoinToken); got != "Resource::arn:<AWS::Partition>:ssm:*:<AWS::AccountId>:parameter/mecd/*/join-token" {
		t.Errorf("nagID %s", got)
	}
}

func ptr[T any](v T) *T { return &v }

func TestPropsOwnerOnly(t *testing.T) {
	const admin, ops = "arn:aws:iam::123456789012:role/platform/MecdAdmin", "arn:aws:iam::123456789012:role/Ops"
	for _, tc := range []struct {
		name    string
		ctx     map[string]any
		on      bool
		admins  []string
		wantErr string
	}{
		{name: "default off", ctx: map[string]any{}},
		{name: "cdk.json", ctx: map[string]any{CtxOwnerOnly: true, CtxAdminRoleArns: []any{admin, ops}}, on: true, admins: []string{admin, ops}},
		{name: "-c strings", ctx: map[string]any{CtxOwnerOnly: "true", CtxAdminRoleArns: admin + "," + ops}, on: true, admins: []string{admin, ops}},
		{name: "not a bool", ctx: map[string]any{CtxOwnerOnly: "owners"}, wantErr: CtxOwnerOnly},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ConfigFromContext(func(k string) any { return tc.ctx[k] }, "/repo")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || c.Props.OwnerOnly != tc.on || !slices.Equal(c.Props.AdminRoleArns, tc.admins) {
				t.Fatalf("owner-only %v admins %v (%v), want %v %v", c.Props.OwnerOnly, c.Props.AdminRoleArns, err, tc.on, tc.admins)
			}
		})
	}
	// The stack refuses what the api function would: a session, a user, a comma.
	for _, bad := range []string{"arn:aws:sts::123456789012:assumed-role/MecdAdmin/dave", "arn:aws:iam::123456789012:user/bob",
		"arn:aws:iam::123456789012:role/a,b", "MecdAdmin"} {
		err := Validate(&MecdStackProps{FunctionsDir: functionsDir, OwnerOnly: true, AdminRoleArns: []string{bad}})
		if err == nil || !strings.Contains(err.Error(), "AdminRoleArns") {
			t.Errorf("admin %q: error %v", bad, err)
		}
	}
}

func TestPropsEBSKeyArns(t *testing.T) {
	key := "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	c, err := ConfigFromContext(func(k string) any { return map[string]any{CtxEBSKeyArns: []any{key}}[k] }, "/repo")
	if err != nil || !slices.Equal(c.Props.EBSKeyArns, []string{key}) {
		t.Fatalf("keys %v (%v), want [%s]", c.Props.EBSKeyArns, err, key)
	}
	bad := MecdStackProps{FunctionsDir: "build", EBSKeyArns: []string{"arn:aws:kms:eu-west-1:123456789012:alias/mecd"}}
	if _, err := bad.withDefaults(); err == nil || !strings.Contains(err.Error(), "EBSKeyArns") {
		t.Fatalf("an alias ARN: %v, want an error naming EBSKeyArns", err)
	}
}

// mecd:spareNodeRoles reaches launch-nodes' SPARE_NODE_ROLES: 2 when unset,
// 0 (none, and the reaper deletes the pool) when asked for, never negative.
func TestSpareNodeRolesFromContext(t *testing.T) {
	cases := []struct {
		name    string
		value   any // nil: unset
		want    int
		wantErr bool
	}{
		{name: "unset", want: DefaultSpareNodeRoles},
		{name: "cdk.json number", value: float64(5), want: 5},
		{name: "-c string", value: "3", want: 3},
		{name: "none", value: "0", want: 0},
		{name: "negative", value: "-1", wantErr: true},
		{name: "not a number", value: "some", wantErr: true},
		{name: "over IAM's sense", value: "51", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := map[string]any{}
			if tc.value != nil {
				ctx[CtxSpareNodeRoles] = tc.value
			}
			c, err := ConfigFromContext(func(k string) any { return ctx[k] }, "/repo")
			if err == nil {
				c.Props, err = c.Props.withDefaults()
			}
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error, spare node roles %d", c.Props.SpareNodeRoles)
				}
				return
			}
			if err != nil || c.Props.SpareNodeRoles != tc.want {
				t.Fatalf("spare node roles %d (%v), want %d", c.Props.SpareNodeRoles, err, tc.want)
			}
		})
	}
}
