package steps

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/mecd/mecd/internal/mec"
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
	s := &Steps{Store: st, AWS: ssmOnly{oneInvocation{}}, SFN: sf, Log: slog.New(slog.DiscardHandler)}
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
