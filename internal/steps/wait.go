package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/store"
)

// terminalStatus are the SSM invocation statuses after which nothing more
// happens to an invocation.
var terminalStatus = map[string]bool{
	"Success": true, "Failed": true, "TimedOut": true, "Cancelled": true, "Undeliverable": true,
	"Terminated": true, "DeliveryTimedOut": true, "ExecutionTimedOut": true, "InvalidPlatform": true, "AccessDenied": true,
}

// register stores the task token with the command's targets (ids; nil when
// re-registering after a task timeout, in which case the targets come from
// SSM), then asks SSM for the statuses: CommandEvents records a status only
// for a registered command, so whatever ended before the registration (or
// whose event was lost) is learnt here.
func (s *Steps) register(ctx context.Context, m *mec.MEC, step, cmdID, token string, ids []string) error {
	if ids == nil {
		var err error
		if ids, err = s.commandTargets(ctx, m.Region, cmdID); err != nil {
			return err
		}
	}
	failFast := ""
	if n0 := m.Node0(); step == mec.StepInstall && n0 != nil && len(m.Nodes) > 1 {
		failFast = n0.InstanceID // the joiners wait for node 0's token
	}
	w, err := s.Store.RegisterWait(ctx, store.Wait{CommandID: cmdID, Token: token, ClusterID: m.ID, Step: step, Region: m.Region,
		Instances: ids, FailFast: failFast})
	if err != nil {
		return err
	}
	if w, err = s.pollStatuses(ctx, w); err != nil {
		return err
	}
	return s.maybeResolve(ctx, w)
}

// commandTargets lists the instances a command was sent to.
func (s *Steps) commandTargets(ctx context.Context, region, cmdID string) ([]string, error) {
	var ids []string
	err := s.eachInvocation(ctx, region, cmdID, func(inv ssmtypes.CommandInvocation) error {
		ids = append(ids, aws.ToString(inv.InstanceId))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, stepErr(ErrStep, "command %s has no invocations", cmdID)
	}
	return ids, nil
}

// eachInvocation calls fn on every invocation of a command, 50 a page.
func (s *Steps) eachInvocation(ctx context.Context, region, cmdID string, fn func(ssmtypes.CommandInvocation) error) error {
	p := ssm.NewListCommandInvocationsPaginator(s.AWS.SSM(region), &ssm.ListCommandInvocationsInput{CommandId: aws.String(cmdID), MaxResults: aws.Int32(50)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list command invocations: %w", err)
		}
		for _, inv := range page.CommandInvocations {
			if err := fn(inv); err != nil {
				return err
			}
		}
	}
	return nil
}

// pollStatuses records every terminal status SSM reports for w's targets
// that w does not have yet. An invocation SSM does not list yet (it may
// lag SendCommand) is left to its event.
func (s *Steps) pollStatuses(ctx context.Context, w *store.Wait) (*store.Wait, error) {
	err := s.eachInvocation(ctx, w.Region, w.CommandID, func(inv ssmtypes.CommandInvocation) error {
		id, st := aws.ToString(inv.InstanceId), string(inv.Status)
		if !terminalStatus[st] || w.Statuses[id] == st {
			return nil
		}
		next, err := s.Store.SetWaitStatus(ctx, w.CommandID, id, st)
		if err != nil {
			return err
		}
		w = next
		return nil
	})
	return w, err
}

// SSMStatusDetail is the detail of "EC2 Command Invocation Status-change Notification".
type SSMStatusDetail struct {
	CommandID  string `json:"command-id"`
	InstanceID string `json:"instance-id"`
	Status     string `json:"status"`
}

// CommandEvents handles SSM's command status events from EventBridge.
func (s *Steps) CommandEvents(ctx context.Context, ev events.CloudWatchEvent) error {
	var d SSMStatusDetail
	if err := json.Unmarshal(ev.Detail, &d); err != nil || d.CommandID == "" || d.InstanceID == "" {
		s.Log.WarnContext(ctx, "ignoring malformed SSM event", "id", ev.ID)
		return nil
	}
	if !terminalStatus[d.Status] {
		return nil
	}
	w, err := s.Store.SetWaitStatus(ctx, d.CommandID, d.InstanceID, d.Status)
	if errors.Is(err, store.ErrNotFound) {
		// Not a command mecd registered: another document's (if a rule
		// matched more than mecd's), one of a MEC already cleaned up, or
		// one whose sender has not registered yet (it polls SSM next).
		s.Log.DebugContext(ctx, "status of an unregistered command", "commandId", d.CommandID)
		return nil
	}
	if err != nil {
		return err
	}
	return s.maybeResolve(ctx, w)
}

// complete says whether w's token is known and every target has ended, or
// the one the others wait on failed.
func complete(w *store.Wait) bool {
	if w.Token == "" || len(w.Instances) == 0 {
		return false // not registered yet: the registration will resolve
	}
	if st := w.Statuses[w.FailFast]; w.FailFast != "" && terminalStatus[st] && st != "Success" {
		return true
	}
	for _, id := range w.Instances {
		if !terminalStatus[w.Statuses[id]] {
			return false
		}
	}
	return true
}

// maybeResolve completes the task once every instance of the command has a
// terminal status and the token is known; a conditional write makes sure
// only one caller does it per token.
func (s *Steps) maybeResolve(ctx context.Context, w *store.Wait) error {
	if !complete(w) || w.ResolvedToken == w.Token {
		return nil
	}
	ok, err := s.Store.ClaimWait(ctx, w.CommandID, w.Token)
	if err != nil || !ok {
		return err // !ok: someone else resolves it
	}
	if err := s.finishCommand(ctx, w); err != nil {
		// The workflow was not resumed: give the claim back, so the event's
		// redelivery (or the task's timeout poll) resolves it, instead of
		// the execution waiting out its timeout and sending the command again.
		if rerr := s.Store.ReleaseWait(ctx, w.CommandID, w.Token); rerr != nil {
			return fmt.Errorf("%w (and %v)", err, rerr)
		}
		return err
	}
	return nil
}
