package steps

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/mecd/mecd/internal/config"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/nodepolicy"
	"github.com/mecd/mecd/internal/spec"
	"github.com/mecd/mecd/internal/store"
)

// waitStore keeps one MEC and one command wait in memory.
type waitStore struct {
	Store // methods not overridden are not called
	m     *mec.MEC
	w     store.Wait
}

func (f *waitStore) Get(context.Context, string) (*mec.MEC, error) { c := *f.m; return &c, nil }
func (f *waitStore) Update(_ context.Context, _ string, fn func(*mec.MEC) error) (*mec.MEC, error) {
	return f.m, fn(f.m)
}
func (f *waitStore) SetWaitStatus(_ context.Context, _, inst, st string) (*store.Wait, error) {
	f.w.Statuses[inst] = st
	c := f.w
	return &c, nil
}
func (f *waitStore) ClaimWait(_ context.Context, _, tok string) (bool, error) {
	if f.w.ResolvedToken == tok {
		return false, nil
	}
	f.w.ResolvedToken = tok
	return true, nil
}
func (f *waitStore) ReleaseWait(_ context.Context, _, tok string) error {
	if f.w.ResolvedToken == tok {
		f.w.ResolvedToken = ""
	}
	return nil
}

// oneInvocation answers for a command that succeeded on one instance.
type oneInvocation struct{ SSMAPI }

func (oneInvocation) GetCommandInvocation(context.Context, *ssm.GetCommandInvocationInput, ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error) {
	return &ssm.GetCommandInvocationOutput{Status: ssmtypes.CommandInvocationStatusSuccess}, nil
}

type ssmOnly struct{ c SSMAPI }

func (r ssmOnly) EC2(string) EC2API { return nil }
func (r ssmOnly) SSM(string) SSMAPI { return r.c }

// flakySFN fails SendTaskSuccess the first time, as a throttled call does.
type flakySFN struct {
	SFNAPI
	calls int
}

func (f *flakySFN) SendTaskSuccess(context.Context, *sfn.SendTaskSuccessInput, ...func(*sfn.Options)) (*sfn.SendTaskSuccessOutput, error) {
	f.calls++
	if f.calls == 1 {
		return nil, &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}
	}
	return &sfn.SendTaskSuccessOutput{}, nil
}

// policyIAM records the node role policies written.
type policyIAM struct {
	IAMAPI
	docs []string
}

func (p *policyIAM) PutRolePolicy(_ context.Context, in *iam.PutRolePolicyInput, _ ...func(*iam.Options)) (*iam.PutRolePolicyOutput, error) {
	p.docs = append(p.docs, aws.ToString(in.PolicyDocument))
	return &iam.PutRolePolicyOutput{}, nil
}

// A resumption that fails gives its claim back: the event's redelivery
// resumes the workflow, instead of the execution waiting out its timeout
// and sending the command again.
func TestFailedResumeIsRetriedByTheNextEvent(t *testing.T) {
	m := &mec.MEC{ID: "mec-1", Status: mec.Creating, Nodes: []mec.Node{{Index: 0, InstanceID: "i-1"}}}
	m.StartStep(mec.StepFinalize, m.CreatedAt)
	m.Step(mec.StepFinalize).CommandID = "cmd-1"
	st := &waitStore{m: m, w: store.Wait{CommandID: "cmd-1", Token: "tok-1", ClusterID: "mec-1", Step: mec.StepFinalize,
		Instances: []string{"i-1"}, Statuses: map[string]string{}}}
	sf := &flakySFN{}
	pol := &policyIAM{}
	s := &Steps{Store: st, AWS: ssmOnly{oneInvocation{}}, SFN: sf, IAM: pol, Log: slog.New(slog.DiscardHandler)}
	detail, _ := json.Marshal(SSMStatusDetail{CommandID: "cmd-1", InstanceID: "i-1", Status: "Success"})
	ev := events.CloudWatchEvent{ID: "e-1", Detail: detail}
	var apiErr smithy.APIError
	if err := s.CommandEvents(context.Background(), ev); !errors.As(err, &apiErr) {
		t.Fatalf("first delivery: %v, want the throttling error (so EventBridge retries)", err)
	}
	if st.w.ResolvedToken != "" {
		t.Fatal("the failed resumption kept its claim")
	}
	if err := s.CommandEvents(context.Background(), ev); err != nil || sf.calls != 2 {
		t.Fatalf("redelivery: %v after %d SendTaskSuccess calls, want the workflow resumed", err, sf.calls)
	}
	// A finished finalize seals the node role before the workflow goes on.
	if want := nodepolicy.Inline("mec-1", "", nodepolicy.Phase{Stage: nodepolicy.Sealed}); len(pol.docs) == 0 || pol.docs[len(pol.docs)-1] != want {
		t.Fatalf("node role policies written %q, want the last sealed", pol.docs)
	}
	if got := aws.ToString(&st.w.ResolvedToken); got != "tok-1" {
		t.Fatalf("claim after the resumption: %q", got)
	}
}

// A task whose Lambda died before it recorded its start (Runtime.ExitError
// at launch) still fails the MEC at a named step: the plan's next one.
func TestFailureWithoutARunningStepNamesThePendingOne(t *testing.T) {
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	m := &mec.MEC{ID: "mec-1", Status: mec.Creating, Spec: spec.Spec{NodeCount: 1}}
	for _, st := range []string{mec.StepRecord, mec.StepResolve} {
		m.StartStep(st, now)
		m.EndStep(st, mec.OutcomeSucceeded, "", now)
	}
	s := &Steps{Store: &waitStore{m: m}, Log: slog.New(slog.DiscardHandler)}
	out, err := s.RecordStatus(context.Background(), StatusInput{Status: mec.Failed, State: State{ClusterID: "mec-1",
		Error: &ErrorInfo{Error: "States.TaskFailed", Cause: `{"errorType":"Runtime.ExitError","errorMessage":"Runtime exited with error: signal: killed"}`}}})
	if err != nil {
		t.Fatal(err)
	}
	if out.FailedStep != mec.StepSecurityGroup || !strings.Contains(out.FailureCause, "signal: killed") {
		t.Fatalf("failed step %q cause %q, want %s and the crash", out.FailedStep, out.FailureCause, mec.StepSecurityGroup)
	}
}

// sentSSM has one command already running, sent by an invocation that died;
// sending another (or making a new join token) is a test failure.
type sentSSM struct {
	SSMAPI
	t *testing.T
}

func (f sentSSM) ListCommandInvocations(_ context.Context, in *ssm.ListCommandInvocationsInput, _ ...func(*ssm.Options)) (*ssm.ListCommandInvocationsOutput, error) {
	inv := ssmtypes.CommandInvocation{CommandId: aws.String("cmd-old"), InstanceId: aws.String("i-0"), Comment: aws.String("mecd mec-1 install"),
		Status: ssmtypes.CommandInvocationStatusInProgress}
	if in.CommandId != nil && aws.ToString(in.CommandId) != "cmd-old" {
		return &ssm.ListCommandInvocationsOutput{}, nil
	}
	return &ssm.ListCommandInvocationsOutput{CommandInvocations: []ssmtypes.CommandInvocation{inv}}, nil
}

func (f sentSSM) SendCommand(context.Context, *ssm.SendCommandInput, ...func(*ssm.Options)) (*ssm.SendCommandOutput, error) {
	f.t.Fatal("a second command was sent for the same attempt")
	return nil, nil
}

func (f sentSSM) PutParameter(context.Context, *ssm.PutParameterInput, ...func(*ssm.Options)) (*ssm.PutParameterOutput, error) {
	f.t.Fatal("a new join token was made for an attempt whose command already runs")
	return nil, nil
}

type registeringStore struct {
	waitStore
	registered []store.Wait
}

func (f *registeringStore) RegisterWait(_ context.Context, w store.Wait) (*store.Wait, error) {
	f.registered = append(f.registered, w)
	w.Statuses = map[string]string{}
	return &w, nil
}

// An invocation that died after SendCommand but before recording it is
// retried (Lambda.Unknown): the retry adopts the running command instead
// of running install twice at once with a new join token.
func TestARetriedSendAdoptsTheCommandSent(t *testing.T) {
	started := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	m := &mec.MEC{ID: "mec-1", Status: mec.Creating, Region: "us-east-1",
		Nodes: []mec.Node{{Index: 0, InstanceID: "i-0"}, {Index: 1, InstanceID: "i-1"}}}
	m.StartStep(mec.StepInstall, started) // the dead invocation's StartStep
	st := &registeringStore{waitStore: waitStore{m: m}}
	s := &Steps{Store: st, AWS: ssmOnly{sentSSM{t: t}}, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return started.Add(time.Minute) }}
	if _, err := s.NodeCommand(context.Background(), CommandInput{TaskToken: "tok-2", ClusterID: "mec-1", Step: mec.StepInstall}); err != nil {
		t.Fatal(err)
	}
	if got := m.Step(mec.StepInstall); got.CommandID != "cmd-old" || got.Attempt != 1 || len(m.CommandIDs) != 1 {
		t.Fatalf("step %+v, commands %v: want the sent command adopted in attempt 1", got, m.CommandIDs)
	}
	if len(st.registered) != 1 || st.registered[0].CommandID != "cmd-old" || st.registered[0].Token != "tok-2" {
		t.Fatalf("registered %+v, want cmd-old with the new token", st.registered)
	}
}

// lockedStore is a waitStore whose record another goroutine may change.
type lockedStore struct {
	registeringStore
	mu sync.Mutex
}

func (f *lockedStore) Get(context.Context, string) (*mec.MEC, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, _ := json.Marshal(f.m) // a deep copy, as the store reads one
	var c mec.MEC
	return &c, json.Unmarshal(b, &c)
}

func (f *lockedStore) Update(ctx context.Context, id string, fn func(*mec.MEC) error) (*mec.MEC, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.registeringStore.Update(ctx, id, fn)
}

// laggingSSM's listing by instance does not show the new command yet (it
// lags); by command id it does. It must not be asked to send.
type laggingSSM struct {
	SSMAPI
	t *testing.T
}

func (f laggingSSM) ListCommandInvocations(_ context.Context, in *ssm.ListCommandInvocationsInput, _ ...func(*ssm.Options)) (*ssm.ListCommandInvocationsOutput, error) {
	if aws.ToString(in.CommandId) != "cmd-first" {
		return &ssm.ListCommandInvocationsOutput{}, nil // listing by instance: not there yet
	}
	return &ssm.ListCommandInvocationsOutput{CommandInvocations: []ssmtypes.CommandInvocation{{CommandId: in.CommandId, InstanceId: aws.String("i-0"),
		Comment: aws.String("mecd mec-1 finalize"), Status: ssmtypes.CommandInvocationStatusInProgress}}}, nil
}

func (f laggingSSM) SendCommand(context.Context, *ssm.SendCommandInput, ...func(*ssm.Options)) (*ssm.SendCommandOutput, error) {
	f.t.Error("a second command was sent while the first invocation still held the step")
	return nil, &smithy.GenericAPIError{Code: "Test", Message: "no"}
}

// Step Functions retried an invoke the Lambda service reported failed while
// the first invocation still ran and was about to send: the retry waits for
// it, then adopts its command instead of sending a second finalize.
func TestARetryWaitsForTheInvocationStillSending(t *testing.T) {
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	m := &mec.MEC{ID: "mec-1", Status: mec.Creating, Region: "us-east-1", Nodes: []mec.Node{{Index: 0, InstanceID: "i-0"}}}
	m.StartStep(mec.StepFinalize, now)
	m.Lease = &mec.Lease{Step: mec.StepFinalize, Until: now.Add(time.Minute)}
	st := &lockedStore{registeringStore: registeringStore{waitStore: waitStore{m: m}}}
	s := &Steps{Store: st, AWS: ssmOnly{laggingSSM{t: t}}, IAM: &policyIAM{}, Env: config.Env{PollInterval: 100 * time.Millisecond},
		Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }}
	go func() {
		time.Sleep(300 * time.Millisecond) // the first invocation sends and records, then returns
		st.mu.Lock()
		m.Step(mec.StepFinalize).CommandID = "cmd-first"
		m.CommandIDs = append(m.CommandIDs, "cmd-first")
		m.Lease = nil
		st.mu.Unlock()
	}()
	if err := s.nodeCommand(context.Background(), CommandInput{TaskToken: "tok-2", ClusterID: "mec-1", Step: mec.StepFinalize}); err != nil {
		t.Fatal(err)
	}
	if len(st.registered) != 1 || st.registered[0].CommandID != "cmd-first" || st.registered[0].Token != "tok-2" {
		t.Fatalf("registered %+v, want cmd-first with the retry's token", st.registered)
	}
}

// timedOutSFN answers as Step Functions does for a task that timed out.
type timedOutSFN struct{ SFNAPI }

func (timedOutSFN) SendTaskSuccess(context.Context, *sfn.SendTaskSuccessInput, ...func(*sfn.Options)) (*sfn.SendTaskSuccessOutput, error) {
	return nil, &smithy.GenericAPIError{Code: "TaskTimedOut", Message: "The task token has either expired or the task associated with the token has already been closed"}
}

// A step with nothing to do (a single node joins nobody) whose task timed
// out meanwhile is not a failure: the task's retry skips it again.
func TestASkippedStepOfATimedOutTaskIsNoFailure(t *testing.T) {
	m := &mec.MEC{ID: "mec-1", Status: mec.Creating, Nodes: []mec.Node{{Index: 0, InstanceID: "i-0"}}}
	s := &Steps{Store: &waitStore{m: m}, SFN: timedOutSFN{}, Log: slog.New(slog.DiscardHandler)}
	if err := s.nodeCommand(context.Background(), CommandInput{TaskToken: "tok", ClusterID: "mec-1", Step: mec.StepJoin}); err != nil {
		t.Fatalf("%v, want the skip to stand", err)
	}
}

// statusByInstance answers GetCommandInvocation with a status per instance.
type statusByInstance struct {
	SSMAPI
	status map[string]ssmtypes.CommandInvocationStatus
	code   int32
	stdout map[string]string
}

func (f statusByInstance) GetCommandInvocation(_ context.Context, in *ssm.GetCommandInvocationInput, _ ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error) {
	id := aws.ToString(in.InstanceId)
	return &ssm.GetCommandInvocationOutput{Status: f.status[id], ResponseCode: f.code, StandardOutputContent: aws.String(f.stdout[id])}, nil
}

func (f statusByInstance) GetParameter(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	return nil, &smithy.GenericAPIError{Code: "ParameterNotFound"}
}

func (f statusByInstance) DeleteParameter(context.Context, *ssm.DeleteParameterInput, ...func(*ssm.Options)) (*ssm.DeleteParameterOutput, error) {
	return &ssm.DeleteParameterOutput{}, nil
}

// failureSFN records how the task ended.
type failureSFN struct {
	SFNAPI
	errName string
	ok      bool
}

func (f *failureSFN) SendTaskFailure(_ context.Context, in *sfn.SendTaskFailureInput, _ ...func(*sfn.Options)) (*sfn.SendTaskFailureOutput, error) {
	f.errName = aws.ToString(in.Error)
	return &sfn.SendTaskFailureOutput{}, nil
}

func (f *failureSFN) SendTaskSuccess(context.Context, *sfn.SendTaskSuccessInput, ...func(*sfn.Options)) (*sfn.SendTaskSuccessOutput, error) {
	f.ok = true
	return &sfn.SendTaskSuccessOutput{}, nil
}

// How a finished command ends its task: an invocation GetCommandInvocation
// still shows unfinished is a failure unless the node the others wait on
// failed; any failure of a join command is a JoinFailed (reset and retry).
func TestFinishedCommandOutcome(t *testing.T) {
	tests := []struct {
		name     string
		step     string
		failFast string
		status   map[string]ssmtypes.CommandInvocationStatus
		code     int32
		stdout   map[string]string
		want     string // SendTaskFailure's error, "" for success
	}{
		{"an unfinished status is no success", mec.StepFinalize, "",
			map[string]ssmtypes.CommandInvocationStatus{"i-0": ssmtypes.CommandInvocationStatusInProgress}, 0, nil, ErrCommandFailed},
		{"node 0 failed: the joiners still running are left to the rollback", mec.StepInstall, "i-0",
			map[string]ssmtypes.CommandInvocationStatus{"i-0": ssmtypes.CommandInvocationStatusFailed, "i-1": ssmtypes.CommandInvocationStatusInProgress}, 1, nil, ErrCommandFailed},
		{"a join command killed at its time limit is retried", mec.StepJoin, "",
			map[string]ssmtypes.CommandInvocationStatus{"i-1": ssmtypes.CommandInvocationStatusTimedOut}, 137, nil, ErrJoinFailed},
		{"a joiner's exit 3 in the install step is a join failure", mec.StepInstall, "i-0",
			map[string]ssmtypes.CommandInvocationStatus{"i-0": ssmtypes.CommandInvocationStatusSuccess, "i-1": ssmtypes.CommandInvocationStatusFailed}, joinFailedExit, nil, ErrJoinFailed},
		{"everyone succeeded", mec.StepInstall, "i-0",
			map[string]ssmtypes.CommandInvocationStatus{"i-0": ssmtypes.CommandInvocationStatusSuccess, "i-1": ssmtypes.CommandInvocationStatusSuccess}, 0, nil, ""},
		// A scale has no finalize step: its grow is done only once node 0
		// finished (addons, every node Ready, the kubeconfig).
		{"a grow whose node 0 did not finish fails", mec.StepGrow, "i-0",
			map[string]ssmtypes.CommandInvocationStatus{"i-0": ssmtypes.CommandInvocationStatusSuccess, "i-1": ssmtypes.CommandInvocationStatusSuccess}, 0,
			map[string]string{"i-0": "::mecd-addon-dns enabled\n"}, ErrCommandFailed},
		{"a grow that node 0 finished", mec.StepGrow, "i-0",
			map[string]ssmtypes.CommandInvocationStatus{"i-0": ssmtypes.CommandInvocationStatusSuccess, "i-1": ssmtypes.CommandInvocationStatusSuccess}, 0,
			map[string]string{"i-0": "::mecd-nodes-ready 2\n::mecd-finalized yes\n"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &mec.MEC{ID: "mec-1", Status: mec.Creating, Nodes: []mec.Node{{Index: 0, InstanceID: "i-0"}, {Index: 1, InstanceID: "i-1"}}}
			m.StartStep(tc.step, m.CreatedAt)
			m.Step(tc.step).CommandID = "cmd-1"
			var ids []string
			for id := range tc.status {
				ids = append(ids, id)
			}
			w := store.Wait{CommandID: "cmd-1", Token: "tok-1", ClusterID: "mec-1", Step: tc.step, Instances: ids, FailFast: tc.failFast, Statuses: map[string]string{}}
			sf := &failureSFN{}
			s := &Steps{Store: &waitStore{m: m, w: w}, AWS: ssmOnly{statusByInstance{status: tc.status, code: tc.code, stdout: tc.stdout}}, SFN: sf, IAM: &policyIAM{},
				Log: slog.New(slog.DiscardHandler)}
			if err := s.finishCommand(context.Background(), &w); err != nil {
				t.Fatal(err)
			}
			if sf.errName != tc.want || (tc.want == "") != sf.ok {
				t.Fatalf("task ended with %q (success %v), want %q", sf.errName, sf.ok, tc.want)
			}
		})
	}
}
