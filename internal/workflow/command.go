package workflow

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/mecd/mecd/internal/node"
	"github.com/mecd/mecd/internal/record"
)

// Node command steps (the "step" of a node-command task).
const (
	CmdInstall  = "install"
	CmdJoin     = "join"
	CmdReset    = "reset"
	CmdFinalize = "finalize"
)

// MaxJoinAttempts bounds join retries (each after a reset).
const MaxJoinAttempts = 3

// CommandInput is the payload of a node-command callback task.
type CommandInput struct {
	TaskToken string `json:"taskToken"`
	ClusterID string `json:"clusterId"`
	Step      string `json:"step"`
}

// NodeCommand sends a step's node script through SSM Run Command and parks
// the task token; CommandEvents resumes the workflow when SSM reports the
// command finished. Invoked again for a step already running (Retry after
// States.Timeout), it re-registers the new token and checks the command's
// status itself, in case an event was lost.
func (s *Steps) NodeCommand(ctx context.Context, in CommandInput) (*struct{}, error) {
	if err := s.nodeCommand(ctx, in); err != nil {
		// Fail the task here: an engine may not fail a callback task on a
		// Lambda error (kumo waits for its timeout), and the name must reach Catch.
		name, msg := ErrStep, err.Error()
		var e *Error
		if errors.As(err, &e) {
			name, msg = e.Name, e.Msg
		} else if isTransient(err) {
			name = ErrTransient
		}
		s.Log.ErrorContext(ctx, "node command failed", "clusterId", in.ClusterID, "step", in.Step, "error", name, "cause", msg)
		if _, ferr := s.SFN.SendTaskFailure(ctx, &sfn.SendTaskFailureInput{TaskToken: aws.String(in.TaskToken),
			Error: aws.String(name), Cause: aws.String(tail(msg, 4000))}); ferr != nil {
			return nil, fmt.Errorf("%w (and send task failure: %v)", err, ferr)
		}
	}
	return nil, nil
}

func (s *Steps) nodeCommand(ctx context.Context, in CommandInput) error {
	m, err := s.live(ctx, in.ClusterID)
	if err != nil {
		return err
	}
	if st := m.Step(in.Step); st != nil && st.Outcome == record.Running && st.CommandID != "" {
		s.Log.InfoContext(ctx, "re-registering task token", "clusterId", m.ID, "step", in.Step, "commandId", st.CommandID)
		return s.register(ctx, m, in.Step, st.CommandID, in.TaskToken, nil)
	}
	plan, err := s.plan(ctx, m, in.Step)
	if err != nil {
		return err
	}
	if len(plan.targets) == 0 {
		if _, err := s.Store.Update(ctx, m.ID, func(r *record.MEC) error {
			r.EndStep(in.Step, record.Succeeded, plan.skip, s.now())
			return nil
		}); err != nil {
			return err
		}
		_, err := s.SFN.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(in.TaskToken), Output: aws.String(`{"skipped":true}`)})
		return err
	}
	script, err := node.Render(plan.script, plan.vars)
	if err != nil {
		return err
	}
	if _, err := s.Store.Update(ctx, m.ID, func(r *record.MEC) error { r.StartStep(in.Step, s.now()); return nil }); err != nil {
		return err
	}
	ids := make([]string, 0, len(plan.targets))
	for _, n := range plan.targets {
		ids = append(ids, n.InstanceID)
	}
	out, err := s.AWS.SSM(m.Region).SendCommand(ctx, &ssm.SendCommandInput{
		DocumentName: aws.String("AWS-RunShellScript"),
		InstanceIds:  ids,
		Comment:      aws.String(fmt.Sprintf("mecd %s %s", m.ID, in.Step)),
		Parameters: map[string][]string{
			"commands":         {script},
			"executionTimeout": {strconv.Itoa(int(s.Env.CommandTimeout.Seconds()))},
		},
		TimeoutSeconds: aws.Int32(600),
	})
	if err != nil {
		return fmt.Errorf("send %s command: %w", in.Step, err)
	}
	cmdID := aws.ToString(out.Command.CommandId)
	s.Log.InfoContext(ctx, "node command sent", "clusterId", m.ID, "step", in.Step, "commandId", cmdID, "instances", strings.Join(ids, ","))
	if _, err := s.Store.Update(ctx, m.ID, func(r *record.MEC) error {
		if st := r.Step(in.Step); st != nil {
			st.CommandID = cmdID
			st.Detail = "command " + cmdID
		}
		return nil
	}); err != nil {
		return err
	}
	return s.register(ctx, m, in.Step, cmdID, in.TaskToken, ids)
}

type commandPlan struct {
	script  string
	targets []record.Node
	vars    map[string]string
	skip    string // why nothing is sent
}

func (s *Steps) plan(ctx context.Context, m *record.MEC, step string) (commandPlan, error) {
	n0 := m.Node0()
	if n0 == nil {
		return commandPlan{}, stepErr(ErrStep, "MEC %s has no nodes", m.ID)
	}
	endpoint := n0.PrivateIP
	if m.Spec.PublicEndpoint {
		endpoint = n0.PublicIP
	}
	switch step {
	case CmdInstall:
		vars := map[string]string{
			"CHANNEL": m.Spec.Microk8sChannel, "NODE0": n0.InstanceID, "TOKEN_PARAM": "",
			"TOKEN_TTL":     strconv.Itoa(int(3 * s.Env.CommandTimeout.Seconds())),
			"READY_TIMEOUT": strconv.Itoa(int(s.Env.CommandTimeout.Seconds())),
			"EXTRA_SANS":    strings.TrimSpace(endpoint + " " + n0.PrivateIP),
		}
		if len(m.Nodes) > 1 {
			// The token is made here and kept only in Parameter Store: node 0
			// reads it there to register it, joiners read it there to join.
			tok, err := newToken()
			if err != nil {
				return commandPlan{}, err
			}
			if _, err := s.AWS.SSM(m.Region).PutParameter(ctx, &ssm.PutParameterInput{
				Name: aws.String(TokenParam(m.ID)), Value: aws.String(tok), Type: ssmtypes.ParameterTypeSecureString,
				Overwrite: aws.Bool(true), Description: aws.String("mecd join token (deleted once every node joined)"),
			}); err != nil {
				return commandPlan{}, fmt.Errorf("store join token: %w", err)
			}
			vars["TOKEN_PARAM"] = TokenParam(m.ID)
		}
		return commandPlan{script: node.Install, targets: m.Nodes, vars: vars}, nil
	case CmdJoin:
		if st := m.Step(CmdJoin); st != nil && st.Attempt >= MaxJoinAttempts && st.Outcome != record.Running {
			return commandPlan{}, stepErr(ErrJoinExhausted, "nodes failed to join %d times: %s", st.Attempt, st.Detail)
		}
		var workers []string
		var targets []record.Node
		for _, nd := range m.Nodes {
			if nd.Index == 0 || nd.Joined {
				continue
			}
			targets = append(targets, nd)
			if nd.Role == "worker" {
				workers = append(workers, nd.InstanceID)
			}
		}
		if m.JoinCheck == "" && len(targets) > 0 {
			return commandPlan{}, stepErr(ErrStep, "node 0 reported no certificate check")
		}
		return commandPlan{script: node.Join, targets: targets, skip: "no node to join", vars: map[string]string{
			"LEADER_IP": n0.PrivateIP, "CHECK": m.JoinCheck, "TOKEN_PARAM": TokenParam(m.ID), "WORKERS": strings.Join(workers, " "),
		}}, nil
	case CmdReset:
		var failedIPs []string
		targets := []record.Node{*n0}
		for _, nd := range m.Nodes {
			if nd.Index != 0 && !nd.Joined {
				failedIPs = append(failedIPs, nd.PrivateIP)
				targets = append(targets, nd)
			}
		}
		if len(failedIPs) == 0 {
			return commandPlan{skip: "no node to reset"}, nil
		}
		return commandPlan{script: node.Reset, targets: targets, vars: map[string]string{
			"NODE0": n0.InstanceID, "FAILED_IPS": strings.Join(failedIPs, " "),
		}}, nil
	case CmdFinalize:
		return commandPlan{script: node.Finalize, targets: []record.Node{*n0}, vars: map[string]string{
			"ADDONS": strings.Join(m.Spec.Addons, " "), "EXPECTED_NODES": strconv.Itoa(len(m.Nodes)),
			"ENDPOINT_HOST": endpoint, "KUBECONFIG_PARAM": KubeconfigParam(m.ID), "VERIFY_ATTEMPTS": "90",
		}}, nil
	}
	return commandPlan{}, stepErr(ErrStep, "unknown node step %q", step)
}

// newToken is a 48-char join token from crypto/rand (MicroK8s wants 32+).
func newToken() (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 48)
	for i := range b {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			return "", fmt.Errorf("join token: %w", err)
		}
		b[i] = alphabet[n.Int64()]
	}
	return string(b), nil
}

// Command wait items: one per SSM command, written by both NodeCommand (the
// token and expected instances) and CommandEvents (each instance's status),
// in either order; whoever completes the set resolves the task, once.
func cmdKey(id string) map[string]dtypes.AttributeValue {
	return map[string]dtypes.AttributeValue{"pk": &dtypes.AttributeValueMemberS{Value: "cmd#" + id}}
}

func statusAttr(instanceID string) string { return "st_" + instanceID }

var terminalStatus = map[string]bool{
	"Success": true, "Failed": true, "TimedOut": true, "Cancelled": true, "Undeliverable": true,
	"Terminated": true, "DeliveryTimedOut": true, "ExecutionTimedOut": true, "InvalidPlatform": true, "AccessDenied": true,
}

// register stores the task token with the command's targets (ids; nil when
// re-registering, in which case the targets come from SSM and the statuses
// are polled as the fallback for lost events).
func (s *Steps) register(ctx context.Context, m *record.MEC, step, cmdID, token string, ids []string) error {
	checkStatus := ids == nil
	if checkStatus {
		var err error
		if ids, err = s.commandTargets(ctx, m.Region, cmdID); err != nil {
			return err
		}
	}
	out, err := s.Store.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.Store.Table),
		Key:                      cmdKey(cmdID),
		UpdateExpression:         aws.String("SET #tok = :tok, clusterId = :c, step = :s, #reg = :r, instances = if_not_exists(instances, :i), kind = :k, #ttl = :ttl"),
		ExpressionAttributeNames: map[string]string{"#tok": "token", "#reg": "region", "#ttl": "ttl"},
		ExpressionAttributeValues: map[string]dtypes.AttributeValue{
			":tok": &dtypes.AttributeValueMemberS{Value: token},
			":c":   &dtypes.AttributeValueMemberS{Value: m.ID},
			":s":   &dtypes.AttributeValueMemberS{Value: step},
			":r":   &dtypes.AttributeValueMemberS{Value: m.Region},
			":i":   &dtypes.AttributeValueMemberSS{Value: ids},
			":k":   &dtypes.AttributeValueMemberS{Value: "cmd"},
			":ttl": &dtypes.AttributeValueMemberN{Value: strconv.FormatInt(s.now().Add(7*24*time.Hour).Unix(), 10)},
		},
		ReturnValues: dtypes.ReturnValueAllNew,
	})
	if err != nil {
		return fmt.Errorf("register command %s: %w", cmdID, err)
	}
	item := out.Attributes
	if checkStatus {
		// The fallback for a lost event: ask SSM directly.
		if item, err = s.pollStatuses(ctx, m.Region, cmdID, item); err != nil {
			return err
		}
	}
	return s.maybeResolve(ctx, cmdID, item)
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

func (s *Steps) pollStatuses(ctx context.Context, region, cmdID string, item map[string]dtypes.AttributeValue) (map[string]dtypes.AttributeValue, error) {
	for _, id := range stringSet(item["instances"]) {
		if _, ok := item[statusAttr(id)]; ok {
			continue
		}
		inv, err := s.AWS.SSM(region).GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(cmdID), InstanceId: aws.String(id)})
		if err != nil {
			if apiCode(err) == "InvocationDoesNotExist" {
				continue
			}
			return nil, fmt.Errorf("get command invocation: %w", err)
		}
		if terminalStatus[string(inv.Status)] {
			next, err := s.setStatus(ctx, cmdID, id, string(inv.Status))
			if err != nil {
				return nil, err
			}
			item = next
		}
	}
	return item, nil
}

func stringSet(av dtypes.AttributeValue) []string {
	if ss, ok := av.(*dtypes.AttributeValueMemberSS); ok {
		out := append([]string(nil), ss.Value...)
		sort.Strings(out)
		return out
	}
	return nil
}

func str(av dtypes.AttributeValue) string {
	if s, ok := av.(*dtypes.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

func (s *Steps) setStatus(ctx context.Context, cmdID, instanceID, status string) (map[string]dtypes.AttributeValue, error) {
	out, err := s.Store.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.Store.Table),
		Key:                      cmdKey(cmdID),
		UpdateExpression:         aws.String("SET #st = :st, #ttl = if_not_exists(#ttl, :ttl)"),
		ExpressionAttributeNames: map[string]string{"#st": statusAttr(instanceID), "#ttl": "ttl"},
		ExpressionAttributeValues: map[string]dtypes.AttributeValue{
			":st":  &dtypes.AttributeValueMemberS{Value: status},
			":ttl": &dtypes.AttributeValueMemberN{Value: strconv.FormatInt(s.now().Add(24*time.Hour).Unix(), 10)},
		},
		ReturnValues: dtypes.ReturnValueAllNew,
	})
	if err != nil {
		return nil, fmt.Errorf("record command status: %w", err)
	}
	return out.Attributes, nil
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
	item, err := s.setStatus(ctx, d.CommandID, d.InstanceID, d.Status)
	if err != nil {
		return err
	}
	return s.maybeResolve(ctx, d.CommandID, item)
}

// maybeResolve completes the task once every instance of the command has a
// terminal status and the token is known; a conditional write makes sure
// only one caller does it per token.
func (s *Steps) maybeResolve(ctx context.Context, cmdID string, item map[string]dtypes.AttributeValue) error {
	token := str(item["token"])
	instances := stringSet(item["instances"])
	if token == "" || len(instances) == 0 {
		return nil // not registered yet: the registration will resolve
	}
	for _, id := range instances {
		if !terminalStatus[str(item[statusAttr(id)])] {
			return nil
		}
	}
	if str(item["resolvedToken"]) == token {
		return nil
	}
	_, err := s.Store.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.Store.Table),
		Key:                       cmdKey(cmdID),
		UpdateExpression:          aws.String("SET resolvedToken = :tok"),
		ConditionExpression:       aws.String("attribute_not_exists(resolvedToken) OR resolvedToken <> :tok"),
		ExpressionAttributeValues: map[string]dtypes.AttributeValue{":tok": &dtypes.AttributeValueMemberS{Value: token}},
	})
	if err != nil {
		var cf *dtypes.ConditionalCheckFailedException
		if errors.As(err, &cf) {
			return nil // someone else resolves it
		}
		return fmt.Errorf("claim command %s: %w", cmdID, err)
	}
	return s.finishCommand(ctx, cmdID, str(item["clusterId"]), str(item["step"]), str(item["region"]), token, instances)
}

type invocation struct {
	node           record.Node
	status         string
	code           int32
	stdout, stderr string
}

// finishCommand reads the command's results, records them and resumes the workflow.
func (s *Steps) finishCommand(ctx context.Context, cmdID, clusterID, step, region, token string, instances []string) error {
	m, err := s.Store.Get(ctx, clusterID)
	if err != nil {
		return err
	}
	byID := map[string]record.Node{}
	for _, n := range m.Nodes {
		byID[n.InstanceID] = n
	}
	var invs []invocation
	for _, id := range instances {
		inv, err := s.AWS.SSM(region).GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(cmdID), InstanceId: aws.String(id)})
		if err != nil {
			return fmt.Errorf("get command invocation %s on %s: %w", cmdID, id, err)
		}
		invs = append(invs, invocation{node: byID[id], status: string(inv.Status), code: inv.ResponseCode,
			stdout: aws.ToString(inv.StandardOutputContent), stderr: aws.ToString(inv.StandardErrorContent)})
	}
	sort.Slice(invs, func(i, j int) bool { return invs[i].node.Index < invs[j].node.Index })
	var secrets []string
	if step == CmdInstall || step == CmdJoin {
		// Defence in depth: scripts never print the token, but a cause must not carry it even if one did.
		if p, err := s.AWS.SSM(region).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(TokenParam(clusterID)), WithDecryption: aws.Bool(true)}); err == nil {
			secrets = append(secrets, aws.ToString(p.Parameter.Value))
		}
	}
	var failures []string
	failed := map[string]bool{}
	for _, inv := range invs {
		if inv.status != "Success" {
			failed[inv.node.InstanceID] = true
			failures = append(failures, fmt.Sprintf("%s failed on %s (node %d): %s, exit %d: %s", step, inv.node.InstanceID, inv.node.Index,
				inv.status, inv.code, redact(tail(inv.stderr, 1200), secrets...)))
		}
	}
	now := s.now()
	outcome, detail := record.Succeeded, fmt.Sprintf("command %s on %d nodes", cmdID, len(invs))
	if len(failures) > 0 {
		outcome, detail = record.StepError, strings.Join(failures, "\n")
	}
	_, err = s.Store.Update(ctx, clusterID, func(r *record.MEC) error {
		for _, inv := range invs {
			markers, values := node.ParseOutput(inv.stdout)
			for _, mk := range markers {
				if mk.Step == step {
					continue
				}
				start, end := time.UnixMilli(mk.StartMs).UTC(), time.UnixMilli(mk.End).UTC()
				r.Steps = append(r.Steps, record.Step{Name: mk.Step, Outcome: record.Succeeded, StartedAt: start, EndedAt: &end,
					Seconds: end.Sub(start).Seconds(), Attempt: 1, Detail: "on " + inv.node.InstanceID})
			}
			if inv.node.Index == 0 && values["check"] != "" {
				r.JoinCheck = values["check"]
			}
		}
		if step == CmdJoin {
			for i := range r.Nodes {
				if r.Nodes[i].Index > 0 && !failed[r.Nodes[i].InstanceID] && contains(instances, r.Nodes[i].InstanceID) {
					r.Nodes[i].Joined = true
				}
			}
		}
		if step == CmdFinalize && outcome == record.Succeeded {
			n0 := r.Node0()
			host := n0.PrivateIP
			if r.Spec.PublicEndpoint {
				host = n0.PublicIP
			}
			r.Endpoint = "https://" + host + ":16443"
			r.KubeconfigParameter = KubeconfigParam(r.ID)
		}
		if st := r.Step(step); st != nil && st.CommandID == cmdID {
			r.EndStep(step, outcome, detail, now)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(failures) > 0 {
		name := ErrCommandFailed
		if step == CmdJoin {
			name = ErrJoinFailed
		}
		s.Log.WarnContext(ctx, "node command failed", "clusterId", clusterID, "step", step, "commandId", cmdID, "failures", len(failures))
		_, err = s.SFN.SendTaskFailure(ctx, &sfn.SendTaskFailureInput{TaskToken: aws.String(token),
			Error: aws.String(name), Cause: aws.String(tail(detail, 4000))})
	} else {
		if step == CmdJoin {
			// Every node joined: the token has done its work.
			if _, derr := s.AWS.SSM(region).DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(TokenParam(clusterID))}); derr != nil && apiCode(derr) != "ParameterNotFound" {
				return fmt.Errorf("delete join token: %w", derr)
			}
		}
		s.Log.InfoContext(ctx, "node command succeeded", "clusterId", clusterID, "step", step, "commandId", cmdID)
		_, err = s.SFN.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(token),
			Output: aws.String(fmt.Sprintf(`{"step":%q,"commandId":%q}`, step, cmdID))})
	}
	if err != nil && apiCode(err) != "TaskTimedOut" && apiCode(err) != "TaskDoesNotExist" {
		return fmt.Errorf("resume workflow: %w", err)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
