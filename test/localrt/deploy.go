package localrt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	etypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	stypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/mecd/mecd/internal/backend"
	"github.com/mecd/mecd/internal/nodepolicy"
	"github.com/mecd/mecd/internal/store"
)

// Local resource names. On AWS the stack lets CloudFormation name them.
const (
	TableName = "mecd"
	// NodeCorePolicyName stands in for AWS's AmazonSSMManagedInstanceCore,
	// which kumo cannot attach (it has no AWS-managed policies).
	NodeCorePolicyName = "AmazonSSMManagedInstanceCore"
	NodeBoundaryName   = "mecd-node-boundary"
	functionNamePrefix = "mecd-"
)

// FunctionSource is a function to build and run: a backend function, or a
// test-only one (Package set to its import path).
type FunctionSource struct {
	backend.Function
	Package string // "./functions/<Name>" for backend functions
}

// Deployed names what the runtime created.
type Deployed struct {
	TableName         string
	FunctionNames     map[string]string // by backend name
	FunctionArns      map[string]string
	StateMachineArns  map[string]string // by backend.StateMachine.Name
	NodeCorePolicyArn string
	NodeBoundaryArn   string
	APIID             string
	Resources         backend.Resources
}

// FunctionName is the deployed (kumo) name of a function.
func FunctionName(name string) string { return functionNamePrefix + name }

func (rt *Runtime) functionArn(name string) string {
	return fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", rt.Region, Account, FunctionName(name))
}

func (rt *Runtime) sources() []FunctionSource {
	if rt.opts.Functions != nil {
		return rt.opts.Functions
	}
	out := make([]FunctionSource, 0, len(backend.Functions))
	for _, f := range backend.Functions {
		out = append(out, FunctionSource{Function: f, Package: "./functions/" + f.Name})
	}
	return out
}

// deploy creates the backend from internal/backend, as the stack does on AWS.
func (rt *Runtime) deploy(ctx context.Context) error {
	root, err := backend.RepoRoot(".")
	if err != nil {
		return err
	}
	srcs := rt.sources()
	bins, err := buildFunctions(ctx, root, filepath.Join(rt.dir, "bin"), srcs)
	if err != nil {
		return err
	}
	d := Deployed{
		TableName:        TableName,
		FunctionNames:    map[string]string{},
		FunctionArns:     map[string]string{},
		StateMachineArns: map[string]string{},
	}
	for _, s := range srcs {
		d.FunctionNames[s.Name] = FunctionName(s.Name)
		d.FunctionArns[s.Name] = rt.functionArn(s.Name)
	}
	for _, sm := range backend.StateMachines {
		d.StateMachineArns[sm.Name] = fmt.Sprintf("arn:aws:states:%s:%s:stateMachine:%s", rt.Region, Account, functionNamePrefix+sm.Name)
	}
	cfg := rt.AWSConfig(rt.Region)
	if d.NodeCorePolicyArn, d.NodeBoundaryArn, err = createNodePolicies(ctx, iam.NewFromConfig(cfg)); err != nil {
		return err
	}
	rt.Front.nodes.addManaged(d.NodeCorePolicyArn, nodepolicy.AgentCore())
	rt.Front.nodes.addManaged(d.NodeBoundaryArn, nodepolicy.Boundary("aws"))
	regions := append([]string(nil), rt.opts.Regions...)
	sort.Strings(regions)
	d.Resources = backend.Resources{
		TableName:         TableName,
		ProvisionSMArn:    d.StateMachineArns["provision"],
		TeardownSMArn:     d.StateMachineArns["teardown"],
		RollbackSMArn:     d.StateMachineArns["rollback"],
		ScaleSMArn:        d.StateMachineArns["scale"],
		NodeBoundaryArn:   d.NodeBoundaryArn,
		NodeCorePolicyArn: d.NodeCorePolicyArn,
		AllowedRegions:    strings.Join(regions, ","),
		CheckSpecFunction: FunctionName("check-spec"),
		LogLevel:          "debug",
		RecordRetention:   "720h",
		SweepBatch:        "25",
		// Waits scale with the latency model so a local run keeps AWS's proportions.
		NodeOnlineTimeout: rt.scaled(15*time.Minute, 5*time.Second).String(),
		// A command's time also holds the simulator's own work, which does
		// not scale: every stand-in call is a process start, and `make test`
		// runs dozens of hosts at once on 2 cores. Seen: the install of a
		// 3-node MEC with every addon took 4.8 s alone and over the scaled
		// 18 s under the whole suite (TimedOut, exit 137).
		CommandTimeout: (rt.scaled(30*time.Minute, 10*time.Second) + simWorkAllowance).String(),
		PollInterval:   rt.scaled(10*time.Second, 20*time.Millisecond).String(),
		// kumo's Step Functions gives up on a Lambda invoke after 30 s (its
		// HTTP client's timeout); AWS waits for the function's own timeout.
		CheckWait:      (25 * time.Second).String(),
		SpareNodeRoles: strconv.Itoa(rt.spareNodeRoles()),
		FunctionArns:   d.FunctionArns,
	}
	rt.Deployed = d
	if err := store.CreateTable(ctx, dynamodb.NewFromConfig(cfg), TableName); err != nil && !alreadyMade(err) {
		return err
	}
	if err := rt.seedRegions(ctx); err != nil {
		return err
	}
	if err := rt.createNodeDocuments(ctx); err != nil {
		return err
	}
	lc := lambda.NewFromConfig(cfg)
	for _, s := range srcs {
		if err := rt.createFunction(ctx, lc, s, bins[s.Name]); err != nil {
			return err
		}
	}
	// Processes must be polling before anything can invoke them: kumo's
	// EventBridge drops an event for a function nobody polls for yet.
	for _, s := range srcs {
		if !rt.Front.Polls.WaitFor(FunctionName(s.Name), rt.processes(s.Name), 30*time.Second) {
			return fmt.Errorf("deploy: %s processes never polled the runtime API (see its logs)", s.Name)
		}
	}
	if rt.opts.Functions != nil {
		// A custom function set (the runtime's own tests) has no backend workflows.
		return nil
	}
	if err := rt.createStateMachines(ctx, sfn.NewFromConfig(cfg), root); err != nil {
		return err
	}
	if err := rt.createAPI(ctx, apigateway.NewFromConfig(cfg)); err != nil {
		return err
	}
	return rt.createRules(ctx, eventbridge.NewFromConfig(cfg), lc)
}

// scaled is d on AWS scaled like the node latencies, at least floor.
// DefaultSpareNodeRoles is the spare node roles launch-nodes keeps when
// Options.SpareNodeRoles is 0: AWS's default (stack.DefaultSpareNodeRoles).
const DefaultSpareNodeRoles = 2

// spareNodeRoles is Options.SpareNodeRoles as SPARE_NODE_ROLES takes it.
func (rt *Runtime) spareNodeRoles() int {
	switch n := rt.opts.SpareNodeRoles; {
	case n == 0:
		return DefaultSpareNodeRoles
	case n < 0:
		return 0
	default:
		return n
	}
}

// simWorkAllowance is added to each node command's time limit for the
// simulator's unscaled CPU work (see CommandTimeout).
const simWorkAllowance = 45 * time.Second

func (rt *Runtime) scaled(d, floor time.Duration) time.Duration {
	return max(time.Duration(float64(d)*rt.opts.Scale), floor)
}

// buildFunctions compiles every function for the host (kumo runs them here;
// `make build` makes the linux/arm64 ones for AWS) in one go build.
func buildFunctions(ctx context.Context, root, out string, srcs []FunctionSource) (map[string]string, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("build functions: %w", err)
	}
	args := []string{"build", "-trimpath", "-tags", "lambda.norpc", "-o", out + string(os.PathSeparator)}
	bins := map[string]string{}
	for _, s := range srcs {
		args = append(args, s.Package)
		bins[s.Name] = filepath.Join(out, filepath.Base(s.Package))
	}
	if len(srcs) == 0 {
		return bins, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build functions: %w\n%s", err, b)
	}
	return bins, nil
}

// createNodePolicies makes what the stack makes for node roles: the SSM
// agent's policy and the permissions boundary every node role is created under.
func createNodePolicies(ctx context.Context, c *iam.Client) (core, boundary string, err error) {
	// kumo serves no AWS-managed policies: a customer-managed copy of
	// AmazonSSMManagedInstanceCore stands in for it.
	out, err := c.CreatePolicy(ctx, &iam.CreatePolicyInput{PolicyName: aws.String(NodeCorePolicyName), PolicyDocument: aws.String(nodepolicy.AgentCore())})
	if err != nil {
		return "", "", fmt.Errorf("node core policy: %w", err)
	}
	b, err := c.CreatePolicy(ctx, &iam.CreatePolicyInput{PolicyName: aws.String(NodeBoundaryName), PolicyDocument: aws.String(nodepolicy.Boundary("aws"))})
	if err != nil {
		return "", "", fmt.Errorf("node boundary policy: %w", err)
	}
	return aws.ToString(out.Policy.Arn), aws.ToString(b.Policy.Arn), nil
}

// seedRegions publishes what AWS provides in every region: Canonical's Ubuntu
// 24.04 AMI parameters and the AMIs themselves.
func (rt *Runtime) seedRegions(ctx context.Context) error {
	for _, region := range rt.opts.Regions {
		c := ssm.NewFromConfig(rt.kumoConfig(region))
		for _, arch := range []struct{ param, ec2 string }{{"arm64", "arm64"}, {"amd64", "x86_64"}} {
			// kumo's Parameter Store is not partitioned by region, so the
			// public parameter holds one id that every region's EC2 knows.
			ami := fakeAMI(arch.ec2)
			rt.Sim.EC2Sim.RegisterImage(region, ami, arch.ec2)
			_, err := c.PutParameter(ctx, &ssm.PutParameterInput{
				Name:      aws.String(UbuntuAMIParameter(arch.param)),
				Value:     aws.String(ami),
				Type:      stypes.ParameterTypeString,
				Overwrite: aws.Bool(true),
			})
			if err != nil {
				return fmt.Errorf("seed %s AMI parameter: %w", region, err)
			}
		}
	}
	return nil
}

// createNodeDocuments creates mecd's node document in every MEC region, as
// the stack and its event forwarders do.
func (rt *Runtime) createNodeDocuments(ctx context.Context) error {
	for _, region := range rt.opts.Regions {
		_, err := ssm.NewFromConfig(rt.AWSConfig(region)).CreateDocument(ctx, &ssm.CreateDocumentInput{
			Name: aws.String(backend.NodeDocument.Name), Content: aws.String(backend.NodeDocument.Content),
			DocumentType: stypes.DocumentTypeCommand, DocumentFormat: stypes.DocumentFormatJson,
		})
		if err != nil && !alreadyMade(err) {
			return fmt.Errorf("create the node document in %s: %w", region, err)
		}
	}
	return nil
}

// UbuntuAMIParameter is Canonical's public parameter for Ubuntu 24.04 on arch ("arm64"|"amd64").
func UbuntuAMIParameter(arch string) string {
	return "/aws/service/canonical/ubuntu/server/24.04/stable/current/" + arch + "/hvm/ebs-gp3/ami-id"
}

func fakeAMI(arch string) string {
	h := sha256.Sum256([]byte("ubuntu-24.04/" + arch))
	return "ami-" + hex.EncodeToString(h[:])[:17]
}

func (rt *Runtime) createFunction(ctx context.Context, lc *lambda.Client, s FunctionSource, bin string) error {
	env := s.EnvFrom(rt.Deployed.Resources)
	timeout := int32(s.TimeoutSeconds)
	if timeout == 0 {
		timeout = 30
	}
	_, err := lc.CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName:  aws.String(FunctionName(s.Name)),
		Role:          aws.String(fmt.Sprintf("arn:aws:iam::%s:role/%s", Account, FunctionName(s.Name))),
		Runtime:       ltypes.RuntimeProvidedal2023,
		Handler:       aws.String("bootstrap"),
		Architectures: []ltypes.Architecture{ltypes.ArchitectureArm64},
		Timeout:       aws.Int32(timeout),
		MemorySize:    aws.Int32(int32(max(s.MemoryMB, 128))),
		Code:          &ltypes.FunctionCode{ZipFile: []byte("built locally: " + bin)},
		Environment:   &ltypes.Environment{Variables: env},
	})
	if err != nil && !alreadyMade(err) {
		return fmt.Errorf("create function %s: %w", s.Name, err)
	}
	// Each function signs with a key of its own, as each has its role on AWS.
	env["AWS_ACCESS_KEY_ID"] = FunctionAccessKey(s.Name)
	return rt.Sup.Start(Process{Function: FunctionName(s.Name), Binary: bin, Env: env, Count: rt.processes(s.Name)})
}

// processes is how many processes serve function name.
func (rt *Runtime) processes(name string) int {
	if n := rt.opts.FunctionProcesses[name]; n > 0 {
		return n
	}
	return rt.opts.Processes
}

func (rt *Runtime) createStateMachines(ctx context.Context, c *sfn.Client, root string) error {
	subs := backend.Substitutions(rt.Deployed.FunctionArns)
	for _, sm := range backend.StateMachines {
		raw, err := os.ReadFile(filepath.Join(root, sm.File))
		if err != nil {
			return fmt.Errorf("state machine %s: %w", sm.Name, err)
		}
		def, err := backend.Substitute(raw, subs)
		if err != nil {
			return fmt.Errorf("state machine %s: %w", sm.Name, err)
		}
		out, err := c.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{
			Name:       aws.String(functionNamePrefix + sm.Name),
			Definition: aws.String(string(def)),
			RoleArn:    aws.String(fmt.Sprintf("arn:aws:iam::%s:role/mecd-states", Account)),
		})
		if alreadyMade(err) {
			continue // the ARN is the predicted one: it is named
		}
		if err != nil {
			return fmt.Errorf("create state machine %s: %w", sm.Name, err)
		}
		if got := aws.ToString(out.StateMachineArn); got != rt.Deployed.StateMachineArns[sm.Name] {
			// The functions' environment was built from the predicted ARN.
			return fmt.Errorf("state machine %s: ARN %s, predicted %s", sm.Name, got, rt.Deployed.StateMachineArns[sm.Name])
		}
	}
	return nil
}

func (rt *Runtime) createRules(ctx context.Context, eb *eventbridge.Client, lc *lambda.Client) error {
	for _, r := range backend.EventRules {
		rule, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{
			Name:         aws.String(functionNamePrefix + r.Name),
			EventPattern: aws.String(r.Pattern),
			State:        etypes.RuleStateEnabled,
		})
		if err != nil {
			return fmt.Errorf("rule %s: %w", r.Name, err)
		}
		if _, err := lc.AddPermission(ctx, &lambda.AddPermissionInput{
			FunctionName: aws.String(FunctionName(r.Function)),
			StatementId:  aws.String("events-" + r.Name),
			Action:       aws.String("lambda:InvokeFunction"),
			Principal:    aws.String("events.amazonaws.com"),
			SourceArn:    rule.RuleArn,
		}); err != nil && !alreadyMade(err) {
			return fmt.Errorf("rule %s permission: %w", r.Name, err)
		}
		if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{
			Rule:    aws.String(functionNamePrefix + r.Name),
			Targets: []etypes.Target{{Id: aws.String(r.Function), Arn: aws.String(rt.functionArn(r.Function))}},
		}); err != nil {
			return fmt.Errorf("rule %s targets: %w", r.Name, err)
		}
	}
	return nil
}

// PollInterval is the functions' poll interval (scaled like the node latencies).
func (d *Deployed) PollInterval() time.Duration {
	p, err := time.ParseDuration(d.Resources.PollInterval)
	if err != nil {
		panic(fmt.Errorf("deployed poll interval %q: %w", d.Resources.PollInterval, err))
	}
	return p
}

// alreadyMade tells a create whose SDK retry found the first attempt's
// work done (a reused connection broke after the request landed: the
// machine's 2 cores are busy with whatever else `make test` runs).
func alreadyMade(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "StateMachineAlreadyExists", "ResourceConflictException", "DocumentAlreadyExists", "ResourceInUseException":
		return true
	}
	return false
}
