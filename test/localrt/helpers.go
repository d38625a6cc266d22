package localrt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/steps"
	"github.com/mecd/mecd/internal/store"
)

var shared struct {
	mu   sync.Mutex
	opts Options
	rt   *Runtime
	err  error
	done bool
}

// Main runs a test binary's tests with one shared runtime, started on the
// first Get (packages whose tests never call Get pay nothing), and stops
// every process it started before exiting. Use from TestMain.
func Main(m *testing.M, opts Options) { MainThen(m, opts, nil) }

// MainThen is Main, with after run on the runtime once every test ran (if
// any started it): an error it returns fails the test binary.
func MainThen(m *testing.M, opts Options, after func(*Runtime) error) {
	// kumo's in-process services log through the default logger; tests read
	// the Lambdas' logs from the LogStore instead.
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	shared.mu.Lock()
	shared.opts = opts
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	if shared.rt != nil {
		if after != nil {
			if err := after(shared.rt); err != nil {
				fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
				code = 1
			}
		}
		shared.rt.Close()
	}
	shared.mu.Unlock()
	os.Exit(code)
}

// Get returns the test binary's runtime, starting it on first use. All
// tests of a binary share it (kumo has no reset): use unique names.
func Get(t testing.TB) *Runtime {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.done {
		shared.done = true
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
		defer cancel()
		start := time.Now()
		shared.rt, shared.err = Start(ctx, shared.opts)
		if shared.err == nil {
			fmt.Fprintf(os.Stderr, "local runtime up in %v (front %s, kumo %s)\n", time.Since(start).Round(time.Millisecond), shared.rt.Endpoint, shared.rt.KumoURL)
		}
	}
	if shared.err != nil {
		t.Fatalf("local runtime: %v", shared.err)
	}
	return shared.rt
}

// Clients are SDK clients on the front for one region.
type Clients struct {
	DynamoDB *dynamodb.Client
	SSM      *ssm.Client
	SFN      *sfn.Client
	EC2      *ec2.Client
	Lambda   *lambda.Client
	Events   *eventbridge.Client
}

// Clients returns clients for region ("" = the runtime's region).
func (rt *Runtime) Clients(region string) Clients {
	cfg := rt.AWSConfig(region)
	return Clients{
		DynamoDB: dynamodb.NewFromConfig(cfg),
		SSM:      ssm.NewFromConfig(cfg),
		SFN:      sfn.NewFromConfig(cfg),
		EC2:      ec2.NewFromConfig(cfg),
		Lambda:   lambda.NewFromConfig(cfg),
		Events:   eventbridge.NewFromConfig(cfg),
	}
}

// CreateStateMachine creates a state machine from a definition (tests of
// the runtime itself; the backend's are created by Start).
func (rt *Runtime) CreateStateMachine(ctx context.Context, name, definition string) (string, error) {
	out, err := rt.Clients("").SFN.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{
		Name:       aws.String(name),
		Definition: aws.String(definition),
		RoleArn:    aws.String(fmt.Sprintf("arn:aws:iam::%s:role/mecd-states", Account)),
	})
	if err != nil {
		return "", fmt.Errorf("create state machine %s: %w", name, err)
	}
	return aws.ToString(out.StateMachineArn), nil
}

// StartExecution starts an execution of the state machine arn.
func (rt *Runtime) StartExecution(ctx context.Context, arn, name, input string) (string, error) {
	in := &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Input: aws.String(input)}
	if name != "" {
		in.Name = aws.String(name)
	}
	out, err := rt.Clients("").SFN.StartExecution(ctx, in)
	if err != nil {
		return "", fmt.Errorf("start execution: %w", err)
	}
	return aws.ToString(out.ExecutionArn), nil
}

// ErrStillRunning is returned by WaitExecution when the timeout passes first.
var ErrStillRunning = errors.New("execution still running")

// WaitExecution polls the execution until it leaves RUNNING or timeout
// passes (Step Functions has no SDK waiter for executions).
func (rt *Runtime) WaitExecution(ctx context.Context, arn string, timeout time.Duration) (*sfn.DescribeExecutionOutput, error) {
	c := rt.Clients("").SFN
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		out, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w after %v: %s", ErrStillRunning, timeout, arn)
			}
			return nil, fmt.Errorf("describe execution: %w", err)
		}
		if out.Status != sfntypes.ExecutionStatusRunning {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return out, fmt.Errorf("%w after %v: %s", ErrStillRunning, timeout, arn)
		case <-tick.C:
		}
	}
}

// LeakAudit lists every resource still alive for a cluster ("" = every
// cluster): instances not terminated, volumes, security groups, node roles and
// instance profiles, and parameters under /mecd/<cluster-id>/ in every
// seeded region. Empty means nothing leaked.
func (rt *Runtime) LeakAudit(ctx context.Context, clusterID string) ([]string, error) {
	var leaks []string
	match := func(tags map[string]string) bool {
		if clusterID == "" {
			return tags[mec.TagManaged] == "true"
		}
		return tags[mec.TagClusterID] == clusterID
	}
	for _, in := range rt.Sim.EC2Sim.Instances() {
		if match(in.Tags) && in.State != "terminated" {
			leaks = append(leaks, fmt.Sprintf("instance %s (%s) in %s is %s", in.ID, in.Tags[mec.TagClusterID], in.Region, in.State))
		}
	}
	for _, v := range rt.Sim.EC2Sim.Volumes() {
		if match(v.Tags) {
			leaks = append(leaks, fmt.Sprintf("volume %s (%s, %d GiB) in %s is %s", v.ID, v.Tags[mec.TagClusterID], v.SizeGiB, v.Region, v.State))
		}
	}
	for _, sg := range rt.Sim.EC2Sim.SecurityGroups() {
		if match(sg.Tags) {
			leaks = append(leaks, fmt.Sprintf("security group %s (%s) in %s", sg.ID, sg.Name, sg.Region))
		}
	}
	iamLeaks, err := rt.iamLeaks(ctx, clusterID)
	if err != nil {
		return nil, err
	}
	leaks = append(leaks, iamLeaks...)
	path := mec.ParamRoot
	if clusterID != "" {
		path = mec.ParamPrefix(clusterID)
	}
	for _, region := range rt.opts.Regions {
		c := ssm.NewFromConfig(rt.kumoConfig(region))
		p := ssm.NewGetParametersByPathPaginator(c, &ssm.GetParametersByPathInput{Path: aws.String(path), Recursive: aws.Bool(true)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("leak audit: parameters in %s: %w", region, err)
			}
			for _, prm := range page.Parameters {
				leaks = append(leaks, fmt.Sprintf("parameter %s in %s", aws.ToString(prm.Name), region))
			}
		}
	}
	waitLeaks, err := rt.waitLeaks(ctx, match)
	if err != nil {
		return nil, err
	}
	leaks = append(leaks, waitLeaks...)
	sort.Strings(leaks)
	return leaks, nil
}

// waitLeaks lists the command waits still in the table for commands the
// simulator ran on instances match selects.
func (rt *Runtime) waitLeaks(ctx context.Context, match func(map[string]string) bool) ([]string, error) {
	tags := map[string]map[string]string{}
	for _, in := range rt.Sim.EC2Sim.Instances() {
		tags[in.ID] = in.Tags
	}
	st := &store.Store{DB: dynamodb.NewFromConfig(rt.AWSConfig(rt.Region)), Table: TableName}
	var leaks []string
	seen := map[string]bool{}
	for _, inv := range rt.Sim.SSMSim.Invocations() {
		if seen[inv.CommandID] || !match(tags[inv.InstanceID]) {
			continue
		}
		seen[inv.CommandID] = true
		w, err := st.GetWait(ctx, inv.CommandID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("leak audit: %w", err)
		default:
			leaks = append(leaks, fmt.Sprintf("command wait %s (%s %s)", w.CommandID, w.ClusterID, w.Step))
		}
	}
	return leaks, nil
}

// iamLeaks lists the node roles and instance profiles of a cluster ("" =
// every cluster) that still exist, with the spares it took (their item
// too). A free spare is the pool's, not a leak.
func (rt *Runtime) iamLeaks(ctx context.Context, clusterID string) ([]string, error) {
	roles, profiles, err := steps.NodeRoleNames(ctx, iam.NewFromConfig(rt.kumoConfig("")))
	if err != nil {
		return nil, fmt.Errorf("leak audit: %w", err)
	}
	spares, err := (&store.Store{DB: dynamodb.NewFromConfig(rt.AWSConfig(rt.Region)), Table: TableName}).Spares(ctx)
	if err != nil {
		return nil, fmt.Errorf("leak audit: %w", err)
	}
	owner := map[string]string{} // spare name -> the cluster that took it ("" free)
	for _, sp := range spares {
		owner[sp.Name] = sp.ClusterID
	}
	mine := func(name string) bool {
		if o, spare := owner[name]; spare {
			return o != "" && (clusterID == "" || o == clusterID)
		}
		return clusterID == "" || name == mec.NodeRoleName(clusterID)
	}
	var names []string
	for _, r := range roles {
		if mine(r) {
			names = append(names, "node role "+r)
		}
	}
	for _, p := range profiles {
		if mine(p) {
			names = append(names, "instance profile "+p)
		}
	}
	for _, sp := range spares {
		if sp.ClusterID != "" && (clusterID == "" || sp.ClusterID == clusterID) {
			names = append(names, fmt.Sprintf("spare node role item %s (taken by %s)", sp.Name, sp.ClusterID))
		}
	}
	return names, nil
}

var nameSeq atomic.Int64

// UniqueName is a DNS-1123 MEC name no other test uses: every test of a
// binary shares one runtime, and runs share nothing but the clock.
func UniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e6, nameSeq.Add(1))
}

// InvokeScheduled invokes a function of the sweep schedule (sweeper,
// reaper) with the event EventBridge's schedule sends, and decodes its
// answer into out.
func (rt *Runtime) InvokeScheduled(ctx context.Context, fn string, out any) error {
	now := time.Now().UTC()
	event := fmt.Sprintf(`{"version":"0","id":"%d","detail-type":"Scheduled Event","source":"aws.events","account":%q,`+
		`"time":%q,"region":%q,"resources":["arn:aws:events:%s:%s:rule/mecd-sweep"],"detail":{}}`,
		now.UnixNano(), Account, now.Format(time.RFC3339), rt.Region, rt.Region, Account)
	res, err := rt.Clients("").Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(FunctionName(fn)), Payload: []byte(event)})
	if err != nil {
		return fmt.Errorf("%s: %w", fn, err)
	}
	if res.FunctionError != nil {
		return fmt.Errorf("%s: %s", fn, res.Payload)
	}
	if err := json.Unmarshal(res.Payload, out); err != nil {
		return fmt.Errorf("%s answered %s: %w", fn, res.Payload, err)
	}
	return nil
}
