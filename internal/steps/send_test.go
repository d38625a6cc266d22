package steps

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/store"
)

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
