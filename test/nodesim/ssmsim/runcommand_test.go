package ssmsim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/mecd/mecd/internal/backend"
)

func TestSendCommandLifecycleAndEvents(t *testing.T) {
	e := newEnv(t, envOptions{})
	insts := e.addInstances(2)
	out, err := e.ssm.SendCommand(context.Background(), &ssm.SendCommandInput{
		DocumentName: aws.String("AWS-RunShellScript"), InstanceIds: ids(insts), Comment: aws.String("hello"),
		Parameters: map[string][]string{"commands": {"echo out-$MECD_SIM_INSTANCE_ID", "echo err >&2", "pwd"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := out.Command
	if c.Status != types.CommandStatusPending || len(aws.ToString(c.CommandId)) != 36 || len(c.InstanceIds) != 2 ||
		c.Parameters["executionTimeout"][0] != "3600" || c.RequestedDateTime == nil || aws.ToString(c.DocumentName) != "AWS-RunShellScript" {
		t.Fatalf("Command = %+v", c)
	}
	id := aws.ToString(c.CommandId)
	for _, inst := range insts {
		r := e.wait(t, id, inst.ID)
		h := e.host(t, inst.ID)
		want := "out-" + inst.ID + "\n" + h.RootDir + "\n"
		if r.status != "Success" || r.code != 0 || r.stdout != want || r.stderr != "err\n" {
			t.Fatalf("%s: %+v, want stdout %q", inst.ID, r, want)
		}
		g, err := e.ssm.GetCommandInvocation(context.Background(), &ssm.GetCommandInvocationInput{CommandId: &id, InstanceId: &inst.ID})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(g.PluginName) != "aws:runShellScript" || aws.ToString(g.ExecutionStartDateTime) == "" ||
			aws.ToString(g.ExecutionEndDateTime) == "" || aws.ToString(g.DocumentName) != "AWS-RunShellScript" || aws.ToString(g.Comment) != "hello" {
			t.Fatalf("GetCommandInvocation = %+v", g)
		}
	}

	// Events: one per invocation (put after its final state was visible), and one for the command.
	var evs []event
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if evs = e.sink.forCommand(id); len(evs) == 3 {
			break
		}
	}
	if len(evs) != 3 {
		t.Fatalf("events = %+v", evs)
	}
	// EventBridge promises no order: two invocations ending together may put
	// the command's event between theirs.
	sort.SliceStable(evs, func(i, j int) bool {
		return evs[i].detailType == "EC2 Command Invocation Status-change Notification" && evs[j].detailType != evs[i].detailType
	})
	for i, ev := range evs[:2] {
		if ev.source != "aws.ssm" || ev.detailType != "EC2 Command Invocation Status-change Notification" || ev.region != testRegion ||
			ev.detail["status"] != "Success" || ev.detail["document-name"] != "AWS-RunShellScript" || ev.detail["requested-date-time"] == "" ||
			ev.invocationStatus != "Success" {
			t.Fatalf("invocation event %d = %+v", i, ev)
		}
		inst := ev.detail["instance-id"].(string)
		if len(ev.resources) != 1 || ev.resources[0] != "arn:aws:ec2:us-east-1:000000000000:instance/"+inst {
			t.Fatalf("resources = %v", ev.resources)
		}
	}
	ce := evs[2]
	if ce.detailType != "EC2 Command Status-change Notification" || ce.detail["status"] != "Success" || len(ce.detail["instance-ids"].([]any)) != 2 {
		t.Fatalf("command event = %+v", ce)
	}
}

func TestSendCommandFailedAndTimedOut(t *testing.T) {
	e := newEnv(t, envOptions{})
	inst := e.addInstance()

	t.Run("failed", func(t *testing.T) {
		r := e.sh(t, inst.ID, "echo partial\necho boom >&2\nexit 3")
		if r.status != "Failed" || r.code != 3 || r.stdout != "partial\n" || r.stderr != "boom\nfailed to run commands: exit status 3" {
			t.Fatalf("%+v", r)
		}
		evs := e.sink.forCommand(r.commandID)
		if len(evs) != 2 || evs[0].detail["status"] != "Failed" || evs[1].detail["status"] != "Failed" {
			t.Fatalf("events = %+v", evs)
		}
	})

	t.Run("timed out kills the process group", func(t *testing.T) {
		pidFile := filepath.Join(e.host(t, inst.ID).RootDir, "bg.pid")
		start := time.Now()
		id := e.send(t, []string{inst.ID}, "sleep 30 &\necho $! > \"$MECD_HOST_ROOT/bg.pid\"\nsleep 30\necho never", map[string][]string{"executionTimeout": {"1"}})
		r := e.wait(t, id, inst.ID)
		if r.status != "TimedOut" || r.details != "ExecutionTimedOut" || r.code != 137 || strings.Contains(r.stdout, "never") {
			t.Fatalf("%+v", r)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Fatalf("timed out after %v", d)
		}
		assertDead(t, pidFile)
		evs := e.sink.forCommand(id)
		if len(evs) != 2 || evs[0].detail["status"] != "TimedOut" {
			t.Fatalf("events = %+v", evs)
		}
	})

	t.Run("leftovers of a finished script are killed", func(t *testing.T) {
		pidFile := filepath.Join(e.host(t, inst.ID).RootDir, "left.pid")
		r := e.sh(t, inst.ID, "sleep 30 >/dev/null 2>&1 &\necho $! > \"$MECD_HOST_ROOT/left.pid\"\necho done")
		if r.status != "Success" {
			t.Fatalf("%+v", r)
		}
		assertDead(t, pidFile)
	})
}

// assertDead checks the pid in file is gone (or a zombie waiting for init).
func assertDead(t *testing.T, pidFile string) {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if f := strings.Fields(string(st)); len(f) > 2 && f[2] == "Z" {
				return
			}
		}
	}
	t.Fatalf("process %d still alive", pid)
}

func TestOutputTruncation(t *testing.T) {
	e := newEnv(t, envOptions{})
	inst := e.addInstance()
	r := e.sh(t, inst.ID, "head -c 30000 /dev/zero | tr '\\0' o\nhead -c 10000 /dev/zero | tr '\\0' e >&2")
	if r.status != "Success" || len(r.stdout) != 24000 || len(r.stderr) != 8000 {
		t.Fatalf("status %s stdout %d stderr %d", r.status, len(r.stdout), len(r.stderr))
	}
	for _, inv := range e.sim.Invocations() {
		if inv.CommandID == r.commandID && (len(inv.Stdout) != 30000 || len(inv.Stderr) != 10000) {
			t.Fatalf("Invocations keeps %d/%d", len(inv.Stdout), len(inv.Stderr))
		}
	}
	l, err := e.ssm.ListCommandInvocations(context.Background(), &ssm.ListCommandInvocationsInput{CommandId: &r.commandID, Details: true})
	if err != nil {
		t.Fatal(err)
	}
	out := aws.ToString(l.CommandInvocations[0].CommandPlugins[0].Output)
	if len(out) > 2500 || !strings.Contains(out, "---Output truncated---") || !strings.Contains(out, "----------ERROR-------") {
		t.Fatalf("plugin output %d: %q...", len(out), out[:80])
	}
}

func TestSendCommandValidation(t *testing.T) {
	e := newEnv(t, envOptions{})
	online := e.addInstance()
	pending := e.addInstance(func(i *Instance) { i.State = "pending"; i.RunningAt = time.Time{} })
	many := make([]string, 51)
	for i := range many {
		many[i] = online.ID
	}
	tests := []struct {
		name   string
		in     ssm.SendCommandInput
		code   string
		typed  any
		substr string
	}{
		{"more than 50 instance ids", ssm.SendCommandInput{InstanceIds: many}, "ValidationException", nil, "less than or equal to 50"},
		{"unknown instance", ssm.SendCommandInput{InstanceIds: []string{"i-0000000000000dead"}}, "InvalidInstanceId", &types.InvalidInstanceId{}, "i-0000000000000dead"},
		{"instance not online", ssm.SendCommandInput{InstanceIds: []string{online.ID, pending.ID}}, "InvalidInstanceId", &types.InvalidInstanceId{}, pending.ID},
		{"other document", ssm.SendCommandInput{DocumentName: aws.String("AWS-RunPowerShellScript")}, "InvalidDocument", &types.InvalidDocument{}, "AWS-RunPowerShellScript"},
		{"executionTimeout not a number", ssm.SendCommandInput{Parameters: map[string][]string{"commands": {"true"}, "executionTimeout": {"soon"}}}, "InvalidParameters", &types.InvalidParameters{}, "executionTimeout"},
		{"executionTimeout too long", ssm.SendCommandInput{Parameters: map[string][]string{"commands": {"true"}, "executionTimeout": {"172801"}}}, "InvalidParameters", &types.InvalidParameters{}, "executionTimeout"},
		{"no commands", ssm.SendCommandInput{Parameters: map[string][]string{"executionTimeout": {"60"}}}, "InvalidParameters", &types.InvalidParameters{}, "commands"},
		{"unknown parameter", ssm.SendCommandInput{Parameters: map[string][]string{"commands": {"true"}, "shell": {"zsh"}}}, "InvalidParameters", &types.InvalidParameters{}, "shell"},
		{"TimeoutSeconds below 30", ssm.SendCommandInput{TimeoutSeconds: aws.Int32(10)}, "ValidationException", nil, "timeoutSeconds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if in.DocumentName == nil {
				in.DocumentName = aws.String("AWS-RunShellScript")
			}
			if in.InstanceIds == nil {
				in.InstanceIds = []string{online.ID}
			}
			if in.Parameters == nil {
				in.Parameters = map[string][]string{"commands": {"true"}}
			}
			_, err := e.ssm.SendCommand(context.Background(), &in)
			if apiCode(err) != tc.code || !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("err = %v, want %s containing %q", err, tc.code, tc.substr)
			}
			switch want := tc.typed.(type) {
			case *types.InvalidInstanceId:
				if !errors.As(err, &want) {
					t.Fatalf("not typed: %T", err)
				}
			case *types.InvalidDocument:
				if !errors.As(err, &want) {
					t.Fatalf("not typed: %T", err)
				}
			case *types.InvalidParameters:
				if !errors.As(err, &want) {
					t.Fatalf("not typed: %T", err)
				}
			}
		})
	}
}

func TestGetCommandInvocationAndWaiter(t *testing.T) {
	e := newEnv(t, envOptions{})
	inst, other := e.addInstance(), e.addInstance()
	okID := e.send(t, []string{inst.ID}, "sleep 0.2; echo fine", nil)

	waiter := ssm.NewCommandExecutedWaiter(e.ssm, func(o *ssm.CommandExecutedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 200*time.Millisecond
	})
	out, err := waiter.WaitForOutput(context.Background(), &ssm.GetCommandInvocationInput{CommandId: &okID, InstanceId: &inst.ID}, 8*time.Second)
	if err != nil || out.Status != types.CommandInvocationStatusSuccess || aws.ToString(out.StandardOutputContent) != "fine\n" {
		t.Fatalf("waiter: %v %+v", err, out)
	}
	badID := e.send(t, []string{inst.ID}, "exit 1", nil)
	if err := waiter.Wait(context.Background(), &ssm.GetCommandInvocationInput{CommandId: &badID, InstanceId: &inst.ID}, 8*time.Second); err == nil || !strings.Contains(err.Error(), "Failure") {
		t.Fatalf("waiter on a failed command: %v", err)
	}

	for _, tc := range []struct{ name, cmd, inst string }{
		{"unknown command", "11111111-2222-4333-8444-555555555555", inst.ID},
		{"instance not in command", okID, other.ID},
	} {
		_, err := e.ssm.GetCommandInvocation(context.Background(), &ssm.GetCommandInvocationInput{CommandId: aws.String(tc.cmd), InstanceId: aws.String(tc.inst)})
		var dne *types.InvocationDoesNotExist
		if !errors.As(err, &dne) {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
}

func TestListCommandInvocations(t *testing.T) {
	e := newEnv(t, envOptions{})
	a, b := e.addInstance(), e.addInstance()
	first := e.send(t, []string{a.ID, b.ID}, "echo one", nil)
	second := e.send(t, []string{a.ID}, "echo two; echo warn >&2", nil)
	e.wait(t, first, a.ID)
	e.wait(t, first, b.ID)
	e.wait(t, second, a.ID)

	ctx := context.Background()
	all, err := e.ssm.ListCommandInvocations(ctx, &ssm.ListCommandInvocationsInput{InstanceId: &a.ID, Details: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.CommandInvocations) != 2 || aws.ToString(all.CommandInvocations[0].CommandId) != second {
		t.Fatalf("by instance: %+v", all.CommandInvocations)
	}
	p := all.CommandInvocations[0].CommandPlugins
	if len(p) != 1 || aws.ToString(p[0].Output) != "two\n\n----------ERROR-------\nwarn\n" || aws.ToString(p[0].Name) != "aws:runShellScript" || p[0].ResponseFinishDateTime == nil {
		t.Fatalf("plugins: %+v", p)
	}

	var got []string
	var token *string
	for page := 0; ; page++ {
		out, err := e.ssm.ListCommandInvocations(ctx, &ssm.ListCommandInvocationsInput{MaxResults: aws.Int32(2), NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, ci := range out.CommandInvocations {
			if len(ci.CommandPlugins) != 0 {
				t.Fatal("plugins without Details")
			}
			got = append(got, aws.ToString(ci.CommandId)+"/"+aws.ToString(ci.InstanceId))
		}
		if token = out.NextToken; token == nil {
			break
		}
	}
	if len(got) != 3 {
		t.Fatalf("paged: %v", got)
	}
	byCmd, err := e.ssm.ListCommandInvocations(ctx, &ssm.ListCommandInvocationsInput{CommandId: &first})
	if err != nil || len(byCmd.CommandInvocations) != 2 {
		t.Fatalf("by command: %v %d", err, len(byCmd.CommandInvocations))
	}
	_, err = e.ssm.ListCommandInvocations(ctx, &ssm.ListCommandInvocationsInput{NextToken: aws.String("garbage")})
	if apiCode(err) != "InvalidNextToken" {
		t.Fatalf("bad token: %v", err)
	}
}

func TestInstanceStopsUnderCommand(t *testing.T) {
	e := newEnv(t, envOptions{})
	inst := e.addInstance()
	id := e.send(t, []string{inst.ID}, "sleep 20", nil)
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if invs := e.sim.Invocations(); len(invs) == 1 && invs[0].Status == StatusInProgress {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never InProgress")
		}
	}
	e.insts.setState(inst.ID, "shutting-down")
	if r := e.wait(t, id, inst.ID); r.status != "Failed" {
		t.Fatalf("%+v", r)
	}
}

func TestCloseKillsRunningCommands(t *testing.T) {
	e := newEnv(t, envOptions{})
	inst := e.addInstance()
	pidFile := filepath.Join(t.TempDir(), "pid")
	e.send(t, []string{inst.ID}, "echo $$ > "+pidFile+"\nsleep 30", nil)
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(pidFile); err == nil && len(b) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("script never started")
		}
	}
	start := time.Now()
	e.sim.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v", d)
	}
	assertDead(t, pidFile)
	if invs := e.sim.Invocations(); invs[0].Status != StatusCancelled {
		t.Fatalf("after Close: %s", invs[0].Status)
	}
}

// mecd's own node document runs like AWS-RunShellScript, is regional, and
// names itself in invocations and events (what the command-status rule
// matches).
func TestNodeDocumentRunsAndIsRegional(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	doc := backend.NodeDocument
	created, err := e.ssm.CreateDocument(ctx, &ssm.CreateDocumentInput{Name: aws.String(doc.Name), Content: aws.String(doc.Content), DocumentType: "Command"})
	if err != nil {
		t.Fatal(err)
	}
	if d := created.DocumentDescription; aws.ToString(d.Name) != doc.Name || d.Status != "Creating" || aws.ToString(d.SchemaVersion) != "2.2" {
		t.Fatalf("CreateDocument = %+v", d)
	}
	if _, err := e.ssm.CreateDocument(ctx, &ssm.CreateDocumentInput{Name: aws.String(doc.Name), Content: aws.String(doc.Content)}); apiCode(err) != "DocumentAlreadyExists" {
		t.Fatalf("second CreateDocument: %v", err)
	}
	got, err := e.ssm.DescribeDocument(ctx, &ssm.DescribeDocumentInput{Name: aws.String(doc.Name)})
	if err != nil || got.Document.Status != "Active" || len(got.Document.Parameters) != 2 {
		t.Fatalf("DescribeDocument = %+v, %v", got, err)
	}

	inst := e.addInstance()
	out, err := e.ssm.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String(doc.Name), InstanceIds: []string{inst.ID},
		Parameters: map[string][]string{"commands": {"echo node-script"}, "executionTimeout": {"60"}}})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Command.CommandId)
	if r := e.wait(t, id, inst.ID); r.status != "Success" || r.stdout != "node-script\n" {
		t.Fatalf("invocation = %+v", r)
	}
	inv, err := e.ssm.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: &id, InstanceId: &inst.ID})
	if err != nil || aws.ToString(inv.DocumentName) != doc.Name || aws.ToString(inv.PluginName) != "runNodeScript" {
		t.Fatalf("GetCommandInvocation = %+v, %v", inv, err)
	}
	var evs []event
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && len(evs) < 2; time.Sleep(10 * time.Millisecond) {
		evs = e.sink.forCommand(id)
	}
	if len(evs) < 1 || evs[0].detail["document-name"] != doc.Name {
		t.Fatalf("events = %+v", evs)
	}

	// Its parameters are its own: AWS-RunShellScript's workingDirectory is not one.
	_, err = e.ssm.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String(doc.Name), InstanceIds: []string{inst.ID},
		Parameters: map[string][]string{"commands": {"true"}, "workingDirectory": {"/tmp"}}})
	if apiCode(err) != "InvalidParameters" || !strings.Contains(err.Error(), "workingDirectory") {
		t.Fatalf("undeclared parameter: %v", err)
	}
	// Another region has no such document.
	other := func(o *ssm.Options) { o.Region = "eu-west-1" }
	if _, err := e.ssm.DescribeDocument(ctx, &ssm.DescribeDocumentInput{Name: aws.String(doc.Name)}, other); apiCode(err) != "InvalidDocument" {
		t.Fatalf("DescribeDocument in another region: %v", err)
	}
	if _, err := e.ssm.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String(doc.Name), InstanceIds: []string{inst.ID},
		Parameters: map[string][]string{"commands": {"true"}}}, other); apiCode(err) != "InvalidDocument" {
		t.Fatalf("SendCommand in another region: %v", err)
	}
	if _, err := e.ssm.DeleteDocument(ctx, &ssm.DeleteDocumentInput{Name: aws.String(doc.Name)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ssm.DeleteDocument(ctx, &ssm.DeleteDocumentInput{Name: aws.String("AWS-RunShellScript")}); apiCode(err) != "InvalidDocumentOperation" {
		t.Fatalf("deleting Amazon's document: %v", err)
	}
}

func TestCreateDocumentRefusals(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		name, docName, content, code string
	}{
		{"reserved prefix", "AWS-MyScript", backend.NodeDocument.Content, "ValidationException"},
		{"reserved prefix any case", "amznScript", backend.NodeDocument.Content, "ValidationException"},
		{"name too short", "ab", backend.NodeDocument.Content, "ValidationException"},
		{"not JSON", "mecd-bad", "{", "InvalidDocumentContent"},
		{"too large", "mecd-big", `{"schemaVersion":"2.2","description":"` + strings.Repeat("x", 65*1024) + `"}`, "MaxDocumentSizeExceeded"},
		{"undeclared parameter", "mecd-undeclared", `{"schemaVersion":"2.2","mainSteps":[{"action":"aws:runShellScript","name":"s","inputs":{"runCommand":"{{ script }}"}}]}`, "InvalidDocumentContent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.ssm.CreateDocument(context.Background(), &ssm.CreateDocumentInput{Name: aws.String(tc.docName), Content: aws.String(tc.content)})
			if apiCode(err) != tc.code {
				t.Fatalf("err = %v, want %s", err, tc.code)
			}
		})
	}
}
