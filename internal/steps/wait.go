package steps

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

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
// re-registering, in which case the targets come from SSM and the statuses
// are polled as the fallback for lost events).
func (s *Steps) register(ctx context.Context, m *mec.MEC, step, cmdID, token string, ids []string) error {
	poll := ids == nil
	if poll {
		var err error
		if ids, err = s.commandTargets(ctx, m.Region, cmdID); err != nil {
			return err
		}
	}
	w, err := s.Store.RegisterWait(ctx, store.Wait{CommandID: cmdID, Token: token, ClusterID: m.ID, Step: step, Region: m.Region, Instances: ids})
	if err != nil {
		return err
	}
	if poll {
		// The fallback for a lost event: ask SSM directly.
		if w, err = s.pollStatuses(ctx, w); err != nil {
			return err
		}
	}
	return s.maybeResolve(ctx, w)
}

// commandTargets lists the instances a command was sent to.
func (s *Steps) commandTargets(ctx context.Context, region, cmdID string) ([]string, error) {
	var ids []string
	p := ssm.NewListCommandInvocationsPaginator(s.AWS.SSM(region), &ssm.ListCommandInvocationsInput{CommandId: aws.String(cmdID)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list command invocations: %w", err)
		}
		for _, inv := range page.CommandInvocations {
			ids = append(ids, aws.ToString(inv.InstanceId))
		}
	}
	if len(ids) == 0 {
		return nil, stepErr(ErrStep, "command %s has no invocations", cmdID)
	}
	return ids, nil
}

func (s *Steps) pollStatuses(ctx context.Context, w *store.Wait) (*store.Wait, error) {
	for _, id := range w.Instances {
		if _, ok := w.Statuses[id]; ok {
			continue
		}
		inv, err := s.AWS.SSM(w.Region).GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(w.CommandID), InstanceId: aws.String(id)})
		if err != nil {
			if apiCode(err) == "InvocationDoesNotExist" {
				continue
			}
			return nil, fmt.Errorf("get command invocation: %w", err)
		}
		if terminalStatus[string(inv.Status)] {
			next, err := s.Store.SetWaitStatus(ctx, w.CommandID, id, string(inv.Status))
			if err != nil {
				return nil, err
			}
			w = next
		}
	}
	return w, nil
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
	if err != nil {
		return err
	}
	return s.maybeResolve(ctx, w)
}

// complete says whether w's token is known and every target has ended.
func complete(w *store.Wait) bool {
	if w.Token == "" || len(w.Instances) == 0 {
		return false // not registered yet: the registration will resolve
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
