package stack

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/jsii-runtime-go"

	"github.com/mecd/mecd/internal/backend"
	"github.com/mecd/mecd/internal/mec"
)

// MecdStackProps configures the stack. Zero values take the defaults below.
type MecdStackProps struct {
	awscdk.StackProps
	// FunctionsDir holds <name>/bootstrap for every function: the `make build`
	// output. Tests point it at a directory of dummy files.
	FunctionsDir string
	// RepoRoot is where backend.StateMachine files are read from (default:
	// the module root above the working directory).
	RepoRoot string
	// AllowedRegions are the regions MECs may run in (default: the stack's).
	AllowedRegions []string
	// RecordRetention is how long a DELETED record stays before its TTL removes it.
	RecordRetention time.Duration
	// SweepRate is how often the sweeper looks for expired MECs.
	SweepRate time.Duration
	// LogRetention applies to every log group of the stack.
	LogRetention awslogs.RetentionDays
	// LogLevel is the functions' LOG_LEVEL (debug, info, warn, error).
	LogLevel string
	// Production waits; the local runtime scales them instead.
	NodeOnlineTimeout time.Duration
	CommandTimeout    time.Duration
	PollInterval      time.Duration
	// SweepBatch is how many teardowns one sweep starts at most.
	SweepBatch int
	// SpareNodeRoles is how many node roles launch-nodes keeps made ahead
	// of any MEC, so a launch need not wait for IAM to propagate a new
	// instance profile (default 2; -1 for none).
	SpareNodeRoles int
	// API stage throttling (requests per second, burst).
	APIRateLimit  float64
	APIBurstLimit int
	// KeepAPIAccountSettings leaves the region's API Gateway CloudWatch role
	// (an account setting) alone, for accounts that manage it centrally; the
	// API's logs then need it set already.
	KeepAPIAccountSettings bool
	// OwnerOnly lets only a MEC's creator (the same IAM principal, or any
	// session of the same role) and AdminRoleArns delete it or read its
	// kubeconfig; listing and reading records stay open to every caller IAM
	// lets in. IAM alone cannot do this: a policy names routes, not owners.
	OwnerOnly bool
	// AdminRoleArns are IAM role ARNs (literal, with or without a path) whose
	// sessions may delete every MEC and read every kubeconfig under OwnerOnly.
	AdminRoleArns []string
	// EBSKeyArns are the customer managed KMS keys MECs may encrypt their
	// volumes with (spec ebsKmsKeyId). Empty: any key of the account tagged
	// mecd:ebs-key=true.
	EBSKeyArns []string
	// TableRemovalPolicy decides what `cdk destroy` does to the records
	// (default RETAIN: they are the audit trail of every MEC).
	TableRemovalPolicy awscdk.RemovalPolicy
	// Definitions replaces internal/backend's lists; only tests set it, to
	// exercise parts (the API, the sweeper) before the backend has them.
	Definitions *Definitions
}

// Definitions are the backend resources the stack builds.
type Definitions struct {
	Functions     []backend.Function
	StateMachines []backend.StateMachine
	EventRules    []backend.EventRule
}

// BackendDefinitions are internal/backend's lists: what the stack deploys
// and the local runtime runs.
func BackendDefinitions() Definitions {
	return Definitions{Functions: backend.Functions, StateMachines: backend.StateMachines, EventRules: backend.EventRules}
}

// Defaults. The three waits equal the functions' own defaults
// (internal/config), so an unset variable and the deployed value agree.
const (
	DefaultRecordRetention   = 30 * 24 * time.Hour
	DefaultSweepRate         = 5 * time.Minute
	DefaultLogLevel          = "info"
	DefaultNodeOnlineTimeout = 15 * time.Minute
	DefaultCommandTimeout    = 30 * time.Minute
	DefaultPollInterval      = 10 * time.Second
	DefaultSweepBatch        = 25
	DefaultSpareNodeRoles    = 2
	DefaultAPIRateLimit      = 20
	DefaultAPIBurstLimit     = 40
)

// DefaultLogRetention keeps a month of logs: enough to debug a failed
// provisioning, little storage.
const DefaultLogRetention = awslogs.RetentionDays_ONE_MONTH

func (p MecdStackProps) withDefaults() (MecdStackProps, error) {
	if p.FunctionsDir == "" {
		return p, fmt.Errorf("FunctionsDir is required (the `make build` output, e.g. build/)")
	}
	if p.RepoRoot == "" {
		root, err := backend.RepoRoot(".")
		if err != nil {
			return p, err
		}
		p.RepoRoot = root
	}
	if p.Definitions == nil {
		d := BackendDefinitions()
		p.Definitions = &d
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setDur(&p.RecordRetention, DefaultRecordRetention)
	setDur(&p.SweepRate, DefaultSweepRate)
	setDur(&p.NodeOnlineTimeout, DefaultNodeOnlineTimeout)
	setDur(&p.CommandTimeout, DefaultCommandTimeout)
	setDur(&p.PollInterval, DefaultPollInterval)
	if p.SweepRate < time.Minute || p.SweepRate%time.Minute != 0 {
		return p, fmt.Errorf("SweepRate %v: EventBridge rates are whole minutes, at least 1m", p.SweepRate)
	}
	if p.LogRetention == "" {
		p.LogRetention = DefaultLogRetention
	}
	if p.LogLevel == "" {
		p.LogLevel = DefaultLogLevel
	}
	if p.SweepBatch == 0 {
		p.SweepBatch = DefaultSweepBatch
	}
	switch {
	case p.SpareNodeRoles == 0:
		p.SpareNodeRoles = DefaultSpareNodeRoles
	case p.SpareNodeRoles < 0:
		p.SpareNodeRoles = 0
	case p.SpareNodeRoles > 50:
		return p, fmt.Errorf("SpareNodeRoles %d: at most 50 (launch-nodes refuses more: IAM allows 1,000 roles per account)", p.SpareNodeRoles)
	}
	if p.APIRateLimit == 0 {
		p.APIRateLimit = DefaultAPIRateLimit
	}
	if p.APIBurstLimit == 0 {
		p.APIBurstLimit = DefaultAPIBurstLimit
	}
	if p.TableRemovalPolicy == "" {
		p.TableRemovalPolicy = awscdk.RemovalPolicy_RETAIN
	}
	for _, k := range p.EBSKeyArns {
		if !reKeyArn.MatchString(k) {
			return p, fmt.Errorf("EBSKeyArns: %q is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/KEY-ID)", k)
		}
	}
	for _, a := range p.AdminRoleArns {
		// The api function gets them comma-separated (a role name may hold a comma).
		if !mec.ValidRoleARN(a) || strings.Contains(a, ",") {
			return p, fmt.Errorf("AdminRoleArns: %q is not an IAM role ARN without commas (arn:aws:iam::ACCOUNT:role/NAME)", a)
		}
	}
	return p, nil
}

// Context keys read from cdk.json (or `-c key=value`).
const (
	CtxStackName        = "mecd:stackName"
	CtxRegion           = "mecd:region"
	CtxRegions          = "mecd:regions"
	CtxRecordRetention  = "mecd:recordRetention"
	CtxSweepRate        = "mecd:sweepRate"
	CtxLogRetentionDays = "mecd:logRetentionDays"
	CtxLogLevel         = "mecd:logLevel"
	CtxFunctionsDir     = "mecd:functionsDir"
	CtxRetainTable      = "mecd:retainTable"
	CtxAPIAccountRole   = "mecd:apiAccountRole"
	CtxOwnerOnly        = "mecd:ownerOnly"
	CtxAdminRoleArns    = "mecd:adminRoleArns"
	CtxEBSKeyArns       = "mecd:ebsKmsKeyArns"
	CtxSpareNodeRoles   = "mecd:spareNodeRoles"
)

// AppConfig is what the app reads from its context.
type AppConfig struct {
	StackName string
	Props     MecdStackProps
}

// ConfigFromContext builds the app's stack configuration from context
// values (as the CDK hands them over: JSON types, or strings from `-c`).
// root resolves a relative functions directory.
func ConfigFromContext(get func(key string) any, root string) (AppConfig, error) {
	var c AppConfig
	var err error
	str := func(k string) string {
		switch v := get(k).(type) {
		case string:
			return strings.TrimSpace(v)
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64)
		case bool:
			return strconv.FormatBool(v)
		}
		return ""
	}
	// strs reads a list: a JSON array from cdk.json, or "a,b" from `-c`.
	strs := func(k string) []string {
		var out []string
		switch v := get(k).(type) {
		case []any:
			for _, x := range v {
				if s, ok := x.(string); ok && strings.TrimSpace(s) != "" {
					out = append(out, strings.TrimSpace(s))
				}
			}
		case string:
			for _, x := range strings.Split(strings.Trim(v, "[]"), ",") {
				if x = strings.Trim(strings.TrimSpace(x), `"`); x != "" {
					out = append(out, x)
				}
			}
		}
		return out
	}
	c.StackName = str(CtxStackName)
	if c.StackName == "" {
		c.StackName = "mecd"
	}
	p := &c.Props
	// The home region: the context, else the CLI's (from the AWS profile);
	// with neither the template stays region-agnostic.
	region := str(CtxRegion)
	if region == "" {
		region = os.Getenv("CDK_DEFAULT_REGION")
	}
	env := &awscdk.Environment{}
	if region != "" {
		env.Region = jsii.String(region)
	}
	if acct := os.Getenv("CDK_DEFAULT_ACCOUNT"); acct != "" {
		env.Account = jsii.String(acct)
	}
	p.Env = env
	p.AllowedRegions = strs(CtxRegions)
	if len(p.AllowedRegions) > 0 && region != "" && !slices.Contains(p.AllowedRegions, region) {
		// The home region always serves MECs too: it is the spec's default.
		p.AllowedRegions = append([]string{region}, p.AllowedRegions...)
	}
	if s := str(CtxRecordRetention); s != "" {
		if p.RecordRetention, err = time.ParseDuration(s); err != nil || p.RecordRetention <= 0 {
			return c, fmt.Errorf("%s=%q: want a Go duration such as 720h", CtxRecordRetention, s)
		}
	}
	if s := str(CtxSweepRate); s != "" {
		if p.SweepRate, err = time.ParseDuration(s); err != nil || p.SweepRate <= 0 {
			return c, fmt.Errorf("%s=%q: want a Go duration such as 5m", CtxSweepRate, s)
		}
	}
	if s := str(CtxLogRetentionDays); s != "" {
		days, err := strconv.Atoi(s)
		if err != nil {
			return c, fmt.Errorf("%s=%q: want a number of days", CtxLogRetentionDays, s)
		}
		if p.LogRetention, err = RetentionDays(days); err != nil {
			return c, err
		}
	}
	p.LogLevel = str(CtxLogLevel)
	dir := str(CtxFunctionsDir)
	if dir == "" {
		dir = "build"
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	p.FunctionsDir = dir
	p.RepoRoot = root
	if s := str(CtxAPIAccountRole); s != "" {
		set, err := strconv.ParseBool(s)
		if err != nil {
			return c, fmt.Errorf("%s=%q: want true or false", CtxAPIAccountRole, s)
		}
		p.KeepAPIAccountSettings = !set
	}
	if s := str(CtxOwnerOnly); s != "" {
		if p.OwnerOnly, err = strconv.ParseBool(s); err != nil {
			return c, fmt.Errorf("%s=%q: want true or false", CtxOwnerOnly, s)
		}
	}
	if s := str(CtxSpareNodeRoles); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return c, fmt.Errorf("%s=%q: want a number of spare node roles, 0 for none", CtxSpareNodeRoles, s)
		}
		p.SpareNodeRoles = n
		if n == 0 {
			p.SpareNodeRoles = -1 // none (0 in the props is the default)
		}
	}
	p.AdminRoleArns = strs(CtxAdminRoleArns)
	p.EBSKeyArns = strs(CtxEBSKeyArns)
	if s := str(CtxRetainTable); s != "" {
		retain, err := strconv.ParseBool(s)
		if err != nil {
			return c, fmt.Errorf("%s=%q: want true or false", CtxRetainTable, s)
		}
		if !retain {
			p.TableRemovalPolicy = awscdk.RemovalPolicy_DESTROY
		}
	}
	return c, nil
}

// retentionDays are the values CloudWatch Logs accepts.
var retentionDays = map[int]awslogs.RetentionDays{
	1: awslogs.RetentionDays_ONE_DAY, 3: awslogs.RetentionDays_THREE_DAYS, 5: awslogs.RetentionDays_FIVE_DAYS,
	7: awslogs.RetentionDays_ONE_WEEK, 14: awslogs.RetentionDays_TWO_WEEKS, 30: awslogs.RetentionDays_ONE_MONTH,
	60: awslogs.RetentionDays_TWO_MONTHS, 90: awslogs.RetentionDays_THREE_MONTHS, 120: awslogs.RetentionDays_FOUR_MONTHS,
	150: awslogs.RetentionDays_FIVE_MONTHS, 180: awslogs.RetentionDays_SIX_MONTHS, 365: awslogs.RetentionDays_ONE_YEAR,
	400: awslogs.RetentionDays_THIRTEEN_MONTHS, 545: awslogs.RetentionDays_EIGHTEEN_MONTHS, 731: awslogs.RetentionDays_TWO_YEARS,
	1096: awslogs.RetentionDays_THREE_YEARS, 1827: awslogs.RetentionDays_FIVE_YEARS, 3653: awslogs.RetentionDays_TEN_YEARS,
}

// RetentionDays maps a number of days to a CloudWatch Logs retention.
func RetentionDays(days int) (awslogs.RetentionDays, error) {
	if r, ok := retentionDays[days]; ok {
		return r, nil
	}
	valid := make([]int, 0, len(retentionDays))
	for d := range retentionDays {
		valid = append(valid, d)
	}
	slices.Sort(valid)
	return "", fmt.Errorf("log retention %d days: CloudWatch Logs accepts %v", days, valid)
}

// reKeyArn is a KMS key's ARN (an alias ARN names no key IAM can scope to).
var reKeyArn = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[a-z0-9-]+$`)
