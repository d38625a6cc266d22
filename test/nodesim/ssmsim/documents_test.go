package ssmsim

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/mecd/mecd/internal/backend"
)

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
