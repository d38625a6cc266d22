package localrt_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/mecd/mecd/internal/backend"
	"github.com/mecd/mecd/internal/nodepolicy"
	"github.com/mecd/mecd/test/localrt"
	"github.com/mecd/mecd/test/nodesim/fault"
)

const probe = "probe"

func TestMain(m *testing.M) {
	localrt.Main(m, localrt.Options{
		Processes: 2,
		Functions: []localrt.FunctionSource{{
			Function: backend.Function{Name: probe, Env: []string{backend.EnvTableName}, TimeoutSeconds: 10},
			Package:  "./test/localrt/probefn",
		}},
	})
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func uniq(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()) }

// probeMachine calls the probe with $.action; a Catch on States.ALL records the error.
func probeMachine(rt *localrt.Runtime) string {
	return fmt.Sprintf(`{
  "StartAt": "Call probe",
  "States": {
    "Call probe": {
      "Type": "Task",
      "Resource": "arn:aws:states:::lambda:invoke",
      "Parameters": {"FunctionName": %q, "Payload.$": "$"},
      "ResultSelector": {"result.$": "$.Payload"},
      "ResultPath": "$.probe",
      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
      "End": true
    },
    "Caught": {"Type": "Pass", "Result": "caught", "ResultPath": "$.branch", "End": true}
  }
}`, rt.Deployed.FunctionArns[probe])
}

func TestStateMachineReachesLambda(t *testing.T) {
	rt := localrt.Get(t)
	ctx := ctxT(t, 60*time.Second)
	sm, err := rt.CreateStateMachine(ctx, uniq("probe"), probeMachine(rt))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		input      string
		wantBranch string
		wantInOut  string
	}{
		{"success", `{"action":"echo","data":{"x":42}}`, "", `"echo":{"x":42}`},
		{"function error reaches Catch on States.ALL", `{"action":"fail"}`, "caught", "probe failed on purpose"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			arn, err := rt.StartExecution(ctx, sm, uniq("x"), tc.input)
			if err != nil {
				t.Fatal(err)
			}
			out, err := rt.WaitExecution(ctx, arn, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if out.Status != "SUCCEEDED" {
				t.Fatalf("status %s error=%s cause=%s", out.Status, aws.ToString(out.Error), aws.ToString(out.Cause))
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(aws.ToString(out.Output)), &got); err != nil {
				t.Fatal(err)
			}
			if b, _ := got["branch"].(string); b != tc.wantBranch {
				t.Errorf("branch = %q, want %q (output %s)", b, tc.wantBranch, aws.ToString(out.Output))
			}
			if !strings.Contains(aws.ToString(out.Output), tc.wantInOut) {
				t.Errorf("output %s lacks %s", aws.ToString(out.Output), tc.wantInOut)
			}
			if tc.wantBranch == "caught" {
				e, _ := got["error"].(map[string]any)
				if e["Error"] != "States.TaskFailed" {
					t.Errorf("caught error = %v, want States.TaskFailed", e["Error"])
				}
			}
		})
	}
}

func TestSupervisorRestartsPanickingProcess(t *testing.T) {
	rt := localrt.Get(t)
	ctx := ctxT(t, 60*time.Second)
	fn := localrt.FunctionName(probe)
	before := rt.Sup.Restarts(fn)
	lc := rt.Clients("").Lambda
	out, err := lc.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(fn), Payload: []byte(`{"action":"panic"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.FunctionError) == "" {
		t.Fatalf("panic invoke: no FunctionError, payload %s", out.Payload)
	}
	// The process exits after reporting the panic; the supervisor restarts it
	// and the new one polls again.
	deadline := time.Now().Add(10 * time.Second)
	for rt.Sup.Restarts(fn) == before || rt.Front.Polls.Waiting(fn) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("restarts=%d waiting=%d: process not restarted", rt.Sup.Restarts(fn), rt.Front.Polls.Waiting(fn))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := len(rt.Sup.PIDs(fn)); got != 2 {
		t.Fatalf("live processes = %d, want 2", got)
	}
	for i := 0; i < 4; i++ {
		out, err := lc.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(fn), Payload: []byte(`{"action":"echo"}`)})
		if err != nil || out.FunctionError != nil {
			t.Fatalf("invoke after restart: %v %s", err, out.Payload)
		}
	}
	if !rt.Logs.Contains("probe panics on purpose") {
		t.Error("the panic was not captured in the function's logs")
	}
}

// A process killed while it serves an invocation ends that invocation at
// once, as Lambda does (Unhandled, Runtime.ExitError), not at the
// function's timeout; the supervisor starts a new process.
func TestProcessKilledWhileServing(t *testing.T) {
	rt := localrt.Get(t)
	ctx := ctxT(t, 60*time.Second)
	fn := localrt.FunctionName(probe)
	before := rt.Sup.Restarts(fn)
	type result struct {
		out *lambda.InvokeOutput
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		out, err := rt.Clients("").Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(fn), Payload: []byte(`{"action":"sleep"}`)})
		done <- result{out, err}
	}()
	id, err := rt.KillServing(ctx, probe)
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if aws.ToString(r.out.FunctionError) == "" || !strings.Contains(string(r.out.Payload), "Runtime.ExitError") || !strings.Contains(string(r.out.Payload), id) {
		t.Fatalf("invoke of a killed process: error %q payload %s", aws.ToString(r.out.FunctionError), r.out.Payload)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("the invocation ended after %v: at the sleep's end, not at the kill", took)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rt.Sup.Restarts(fn) == before || len(rt.Sup.PIDs(fn)) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("restarts %d, live %d: the killed process was not replaced", rt.Sup.Restarts(fn), len(rt.Sup.PIDs(fn)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLambdaEnvironmentFromBackend(t *testing.T) {
	rt := localrt.Get(t)
	ctx := ctxT(t, 30*time.Second)
	out, err := rt.Clients("").Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(localrt.FunctionName(probe)), Payload: []byte(`{"action":"env"}`)})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out.Payload, &got); err != nil {
		t.Fatal(err)
	}
	if got["table"] != localrt.TableName || got["endpoint"] != rt.Endpoint {
		t.Fatalf("env = %v, want table %s endpoint %s", got, localrt.TableName, rt.Endpoint)
	}
}

// launch starts n simulated instances for a cluster and waits until their SSM agents are Online.
func launch(t *testing.T, rt *localrt.Runtime, clusterID string, n int32) []string {
	t.Helper()
	return launchWith(t, rt, clusterID, n, "")
}

// launchWith launches with user data (a script: cloud-init runs it at boot).
func launchWith(t *testing.T, rt *localrt.Runtime, clusterID string, n int32, userData string) []string {
	t.Helper()
	ctx := ctxT(t, 60*time.Second)
	c := rt.Clients("")
	ami, err := c.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(localrt.UbuntuAMIParameter("arm64"))})
	if err != nil {
		t.Fatal(err)
	}
	ic := iam.NewFromConfig(rt.AWSConfig(""))
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	// A node role as launch-nodes makes it: under the boundary, with the SSM
	// agent's policy (the front decides node calls from these documents).
	role := aws.String("test-" + clusterID)
	if _, err := ic.CreateRole(ctx, &iam.CreateRoleInput{RoleName: role, AssumeRolePolicyDocument: aws.String(trust),
		PermissionsBoundary: aws.String(rt.Deployed.NodeBoundaryArn)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: role, PolicyArn: aws.String(rt.Deployed.NodeCorePolicyArn)}); err != nil {
		t.Fatal(err)
	}
	prof, err := ic.CreateInstanceProfile(ctx, &iam.CreateInstanceProfileInput{InstanceProfileName: aws.String("test-" + clusterID)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ic.AddRoleToInstanceProfile(ctx, &iam.AddRoleToInstanceProfileInput{InstanceProfileName: aws.String("test-" + clusterID), RoleName: aws.String("test-" + clusterID)}); err != nil {
		t.Fatal(err)
	}
	in := &ec2.RunInstancesInput{
		ImageId: ami.Parameter.Value, InstanceType: ec2types.InstanceTypeT4gMedium, MinCount: aws.Int32(n), MaxCount: aws.Int32(n),
		ClientToken:        aws.String(clusterID),
		UserData:           nonEmpty(base64.StdEncoding.EncodeToString([]byte(userData))),
		IamInstanceProfile: &ec2types.IamInstanceProfileSpecification{Arn: prof.InstanceProfile.Arn},
		MetadataOptions:    &ec2types.InstanceMetadataOptionsRequest{HttpTokens: ec2types.HttpTokensStateRequired},
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{
			{Key: aws.String("mecd:cluster-id"), Value: aws.String(clusterID)}, {Key: aws.String("mecd:managed"), Value: aws.String("true")}}}},
	}
	// A new instance profile reaches EC2 only after IAM propagated it.
	var out *ec2.RunInstancesOutput
	for try := 0; ; try++ {
		if out, err = c.EC2.RunInstances(ctx, in); err == nil {
			break
		}
		if try == 100 || !strings.Contains(err.Error(), "Invalid IAM Instance Profile") {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var ids []string
	for _, in := range out.Instances {
		ids = append(ids, aws.ToString(in.InstanceId))
	}
	// Every node may read its cluster's join token, as while a MEC forms.
	if _, err := ic.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: role, PolicyName: aws.String(nodepolicy.InlineName),
		PolicyDocument: aws.String(nodepolicy.Inline(clusterID, rt.Region, nodepolicy.Phase{Stage: nodepolicy.Forming, Joiners: ids}))}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = c.EC2.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: ids})
	})
	if err := ec2.NewInstanceRunningWaiter(c.EC2, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay = 50 * time.Millisecond
		o.MaxDelay = 200 * time.Millisecond
	}).
		Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	for {
		info, err := c.SSM.DescribeInstanceInformation(ctx, &ssm.DescribeInstanceInformationInput{
			Filters: []ssmtypes.InstanceInformationStringFilter{{Key: aws.String("InstanceIds"), Values: ids}}})
		if err != nil {
			t.Fatal(err)
		}
		online := 0
		for _, ii := range info.InstanceInformationList {
			if ii.PingStatus == ssmtypes.PingStatusOnline {
				online++
			}
		}
		if online == len(ids) {
			return ids
		}
		select {
		case <-ctx.Done():
			t.Fatalf("instances never online: %d/%d", online, len(ids))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// runScript runs a script on the instances and waits for the command.
func runScript(t *testing.T, rt *localrt.Runtime, ids []string, script string) *ssm.GetCommandInvocationOutput {
	t.Helper()
	ctx := ctxT(t, 60*time.Second)
	c := rt.Clients("").SSM
	sc, err := c.SendCommand(ctx, &ssm.SendCommandInput{
		DocumentName: aws.String("AWS-RunShellScript"), InstanceIds: ids,
		Parameters: map[string][]string{"commands": {script}, "executionTimeout": {"60"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	in := &ssm.GetCommandInvocationInput{CommandId: sc.Command.CommandId, InstanceId: aws.String(ids[0])}
	out, err := ssm.NewCommandExecutedWaiter(c, func(o *ssm.CommandExecutedWaiterOptions) {
		o.MinDelay = 50 * time.Millisecond
		o.MaxDelay = 200 * time.Millisecond
	}).
		WaitForOutput(ctx, in, 30*time.Second)
	if err != nil {
		got, _ := c.GetCommandInvocation(ctx, in)
		if got != nil {
			return got
		}
		t.Fatal(err)
	}
	return out
}

const readSecret = `set -euo pipefail
imds="${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}"
tok=$(curl -sS -X PUT "$imds/latest/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')
role=$(curl -sS -H "X-aws-ec2-metadata-token: $tok" "$imds/latest/meta-data/iam/security-credentials/")
creds=$(curl -sS -H "X-aws-ec2-metadata-token: $tok" "$imds/latest/meta-data/iam/security-credentials/$role")
region=$(curl -sS -H "X-aws-ec2-metadata-token: $tok" "$imds/latest/meta-data/placement/region")
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
ak=$(printf '%s' "$creds" | field AccessKeyId)
sk=$(printf '%s' "$creds" | field SecretAccessKey)
st=$(printf '%s' "$creds" | field Token)
answer=$(curl -sS --fail-with-body --aws-sigv4 "aws:amz:${region}:ssm" --user "$ak:$sk" -H "x-amz-security-token: $st" \
  -H 'X-Amz-Target: AmazonSSM.GetParameter' -H 'Content-Type: application/x-amz-json-1.1' \
  -d "{\"Name\":\"$PARAM\",\"WithDecryption\":true}" "${AWS_ENDPOINT_URL_SSM:-https://ssm.${region}.amazonaws.com}/") || { echo "$answer" >&2; exit 1; }
printf '%s' "$answer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Parameter"]["Value"], end="")' > "${MECD_HOST_ROOT:-}/secret.out"
echo "read $(wc -c < "${MECD_HOST_ROOT:-}/secret.out") bytes"
`

func TestHostScriptReadsSecureStringWithIMDSCredentials(t *testing.T) {
	rt := localrt.Get(t)
	ctx := ctxT(t, 60*time.Second)
	cluster := uniq("c")
	secret := "s3cr3t-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	c := rt.Clients("")
	for _, name := range []string{"/mecd/" + cluster + "/join-token", "/mecd/other-" + cluster + "/join-token"} {
		if _, err := c.SSM.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(secret), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = c.SSM.DeleteParameter(context.Background(), &ssm.DeleteParameterInput{Name: aws.String(name)})
		})
	}
	ids := launch(t, rt, cluster, 1)

	out := runScript(t, rt, ids, "PARAM=/mecd/"+cluster+"/join-token\n"+readSecret)
	if out.Status != ssmtypes.CommandInvocationStatusSuccess {
		t.Fatalf("status %s stderr %s", out.Status, aws.ToString(out.StandardErrorContent))
	}
	got, err := os.ReadFile(filepath.Join(rt.Dir(), "hosts", ids[0], "root", "secret.out"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != secret {
		t.Fatalf("host read %d bytes, not the secret", len(got))
	}
	if strings.Contains(aws.ToString(out.StandardOutputContent), secret) {
		t.Fatal("the secret reached the command output")
	}

	// The node's credentials reach only its own cluster's parameters.
	out = runScript(t, rt, ids, "PARAM=/mecd/other-"+cluster+"/join-token\n"+readSecret)
	if out.Status != ssmtypes.CommandInvocationStatusFailed || !strings.Contains(aws.ToString(out.StandardOutputContent)+aws.ToString(out.StandardErrorContent), "AccessDenied") {
		t.Fatalf("other cluster's parameter: status %s out %q err %q", out.Status, aws.ToString(out.StandardOutputContent), aws.ToString(out.StandardErrorContent))
	}
}

func TestFrontInjectsAPIFaults(t *testing.T) {
	rt := localrt.Get(t)
	ctx := ctxT(t, 30*time.Second)
	name := "/fault/" + uniq("p")
	c := rt.Clients("")
	if _, err := c.SSM.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String("v"), Type: ssmtypes.ParameterTypeString}); err != nil {
		t.Fatal(err)
	}
	noRetry := ssm.NewFromConfig(rt.AWSConfig(""), func(o *ssm.Options) { o.Retryer = aws.NopRetryer{} })
	noRetryEC2 := ec2.NewFromConfig(rt.AWSConfig(""), func(o *ec2.Options) { o.Retryer = aws.NopRetryer{} })
	noRetryIAM := iam.NewFromConfig(rt.AWSConfig(""), func(o *iam.Options) { o.Retryer = aws.NopRetryer{} })
	tests := []struct {
		name  string
		fault fault.API
		call  func() error
		code  string
	}{
		{"ssm throttling", fault.API{Service: "ssm", Action: "GetParameter", Rate: 1, Code: "ThrottlingException", Times: 1},
			func() error {
				_, err := noRetry.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)})
				return err
			}, "ThrottlingException"},
		{"iam throttling (query protocol)", fault.API{Service: "iam", Action: "ListRoles", Rate: 1, Code: "Throttling", Times: 1},
			func() error { _, err := noRetryIAM.ListRoles(ctx, &iam.ListRolesInput{}); return err }, "Throttling"},
		{"ec2 request limit", fault.API{Service: "ec2", Action: "DescribeInstances", Rate: 1, Code: "RequestLimitExceeded", Times: 1},
			func() error { _, err := noRetryEC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); return err }, "RequestLimitExceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt.Sim.Faults.FailAPI(tc.fault)
			var ae smithy.APIError
			if err := tc.call(); !errors.As(err, &ae) || ae.ErrorCode() != tc.code {
				t.Fatalf("err = %v, want %s", err, tc.code)
			}
			if err := tc.call(); err != nil {
				t.Fatalf("second call (fault used up): %v", err)
			}
		})
	}
	// With the SDK's standard retryer a throttled call succeeds.
	rt.Sim.Faults.FailAPI(fault.API{Service: "ssm", Action: "GetParameter", Rate: 1, Code: "ThrottlingException", Times: 2})
	retrying := ssm.NewFromConfig(rt.AWSConfig(""), func(o *ssm.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) { so.Backoff = retry.NewExponentialJitterBackoff(10 * time.Millisecond) })
	})
	if _, err := retrying.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)}); err != nil {
		t.Fatalf("retrying client: %v", err)
	}
}

func TestDynamoDBAnswersCarryCRC32(t *testing.T) {
	rt := localrt.Get(t)
	ctx := ctxT(t, 30*time.Second)
	// A client with the SDK's default checksum validation (as in the Lambdas).
	c := rt.Clients("").DynamoDB
	key := uniq("crc")
	if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(localrt.TableName), Item: map[string]dtypes.AttributeValue{
		"pk": &dtypes.AttributeValueMemberS{Value: key}}}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(localrt.TableName), ConsistentRead: aws.Bool(true),
		Key: map[string]dtypes.AttributeValue{"pk": &dtypes.AttributeValueMemberS{Value: key}}})
	if err != nil || out.Item == nil {
		t.Fatalf("get: %v %v", err, out)
	}
}

func TestFrontSaysWhoHoldsTheAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := localrt.NewFront("http://127.0.0.1:1", nil, nil, fault.New(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Listen(ln.Addr().String())
	if err == nil {
		t.Fatal("listen on a taken address succeeded")
	}
	if want := fmt.Sprintf("by pid %d", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name the holder (%s)", err, want)
	}
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

// Cloud-init runs a user data script at first boot, as root, with the
// host's tools; `cloud-init status --wait` waits for it, and a failing
// script is status error, exit 1.
func TestUserDataRunsAtBoot(t *testing.T) {
	rt := localrt.Get(t)
	for _, tc := range []struct {
		name, userData, want string
		code                 int32
	}{
		{"script", "#!/bin/bash\nset -e\nsnap wait system seed.loaded\nmkdir -p /var/lib/mecd/\necho booted > /var/lib/mecd/boot\n", "status: done", 0},
		{"failing script", "#!/bin/bash\nexit 3\n", "status: error", 1},
		{"none", "", "status: done", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids := launchWith(t, rt, uniq("ud"), 1, tc.userData)
			out := runScript(t, rt, ids, "cloud-init status --wait; echo rc=$?; cat /var/lib/mecd/boot 2>/dev/null || true")
			got := aws.ToString(out.StandardOutputContent)
			if !strings.Contains(got, tc.want) || !strings.Contains(got, fmt.Sprintf("rc=%d", tc.code)) {
				log, _ := os.ReadFile(filepath.Join(rt.Dir(), "hosts", ids[0], "root/var/log/cloud-init-output.log"))
				t.Fatalf("cloud-init status: %q, want %q and rc=%d; output log:\n%s", got, tc.want, tc.code, log)
			}
			if booted := strings.Contains(got, "booted"); booted != (tc.name == "script") {
				t.Fatalf("user data ran: %v (%q)", booted, got)
			}
		})
	}
}
