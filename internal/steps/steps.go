package steps

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"

	"github.com/mecd/mecd/internal/config"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/resolve"
	"github.com/mecd/mecd/internal/store"
)

// EC2API is the part of EC2 the steps call.
type EC2API interface {
	resolve.EC2API
	CreateSecurityGroup(ctx context.Context, in *ec2.CreateSecurityGroupInput, opts ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error)
	AuthorizeSecurityGroupIngress(ctx context.Context, in *ec2.AuthorizeSecurityGroupIngressInput, opts ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error)
	AuthorizeSecurityGroupEgress(ctx context.Context, in *ec2.AuthorizeSecurityGroupEgressInput, opts ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupEgressOutput, error)
	RevokeSecurityGroupEgress(ctx context.Context, in *ec2.RevokeSecurityGroupEgressInput, opts ...func(*ec2.Options)) (*ec2.RevokeSecurityGroupEgressOutput, error)
	DescribeSecurityGroups(ctx context.Context, in *ec2.DescribeSecurityGroupsInput, opts ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
	DeleteSecurityGroup(ctx context.Context, in *ec2.DeleteSecurityGroupInput, opts ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error)
	RunInstances(ctx context.Context, in *ec2.RunInstancesInput, opts ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, opts ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	GetEbsDefaultKmsKeyId(ctx context.Context, in *ec2.GetEbsDefaultKmsKeyIdInput, opts ...func(*ec2.Options)) (*ec2.GetEbsDefaultKmsKeyIdOutput, error)
}

// SSMAPI is the part of SSM the steps call.
type SSMAPI interface {
	resolve.SSMAPI
	PutParameter(ctx context.Context, in *ssm.PutParameterInput, opts ...func(*ssm.Options)) (*ssm.PutParameterOutput, error)
	DeleteParameter(ctx context.Context, in *ssm.DeleteParameterInput, opts ...func(*ssm.Options)) (*ssm.DeleteParameterOutput, error)
	DeleteParameters(ctx context.Context, in *ssm.DeleteParametersInput, opts ...func(*ssm.Options)) (*ssm.DeleteParametersOutput, error)
	GetParametersByPath(ctx context.Context, in *ssm.GetParametersByPathInput, opts ...func(*ssm.Options)) (*ssm.GetParametersByPathOutput, error)
	SendCommand(ctx context.Context, in *ssm.SendCommandInput, opts ...func(*ssm.Options)) (*ssm.SendCommandOutput, error)
	GetCommandInvocation(ctx context.Context, in *ssm.GetCommandInvocationInput, opts ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error)
	DescribeInstanceInformation(ctx context.Context, in *ssm.DescribeInstanceInformationInput, opts ...func(*ssm.Options)) (*ssm.DescribeInstanceInformationOutput, error)
	ListCommandInvocations(ctx context.Context, in *ssm.ListCommandInvocationsInput, opts ...func(*ssm.Options)) (*ssm.ListCommandInvocationsOutput, error)
}

// SFNAPI is the part of Step Functions the steps call.
type SFNAPI interface {
	SendTaskSuccess(ctx context.Context, in *sfn.SendTaskSuccessInput, opts ...func(*sfn.Options)) (*sfn.SendTaskSuccessOutput, error)
	SendTaskFailure(ctx context.Context, in *sfn.SendTaskFailureInput, opts ...func(*sfn.Options)) (*sfn.SendTaskFailureOutput, error)
	StopExecution(ctx context.Context, in *sfn.StopExecutionInput, opts ...func(*sfn.Options)) (*sfn.StopExecutionOutput, error)
	DescribeExecution(ctx context.Context, in *sfn.DescribeExecutionInput, opts ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error)
}

// Regional gives the clients of a MEC's region.
type Regional interface {
	EC2(region string) EC2API
	SSM(region string) SSMAPI
}

// Store is what the steps need of the record store.
type Store interface {
	Get(ctx context.Context, id string) (*mec.MEC, error)
	Update(ctx context.Context, id string, fn func(*mec.MEC) error) (*mec.MEC, error)
	Create(ctx context.Context, m *mec.MEC, idem *store.Idempotency) error
	NameOwner(ctx context.Context, name string) (string, error)
	RegisterWait(ctx context.Context, w store.Wait) (*store.Wait, error)
	SetWaitStatus(ctx context.Context, cmdID, instanceID, status string) (*store.Wait, error)
	ClaimWait(ctx context.Context, cmdID, token string) (bool, error)
	ReleaseWait(ctx context.Context, cmdID, token string) error
	DeleteWaits(ctx context.Context, cmdIDs []string) error
}

var _ Store = (*store.Store)(nil)

// Steps carries what every step needs.
type Steps struct {
	Store Store
	// Spares keeps the spare node roles (nil: none are taken or made).
	Spares SpareStore
	// Locks keeps reaper runs apart (nil: no lock).
	Locks Locker
	AWS   Regional
	IAM   IAMAPI
	SFN   SFNAPI
	Env   config.Env
	Log   *slog.Logger
	Now   func() time.Time
	// Sleep waits d or until ctx ends (nil: a timer); tests move a fake
	// clock with it.
	Sleep func(ctx context.Context, d time.Duration) error
}

func (s *Steps) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// sleep waits inside an invocation (a step that looks again before it answers).
func (s *Steps) sleep(ctx context.Context, d time.Duration) error {
	if s.Sleep != nil {
		return s.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// State is the execution state the provision and teardown machines pass
// along. It holds ids only: Lambdas read everything else from the record.
type State struct {
	ClusterID string         `json:"clusterId,omitempty"`
	Region    string         `json:"region,omitempty"`
	Timeouts  *Timeouts      `json:"timeouts,omitempty"`
	Error     *ErrorInfo     `json:"error,omitempty"`
	Cleanup   *CleanupResult `json:"cleanup,omitempty"`
	CleanupEr *ErrorInfo     `json:"cleanupError,omitempty"`
	Check     *CheckResult   `json:"check,omitempty"`
}

// Timeouts feed the callback tasks' TimeoutSecondsPath.
type Timeouts struct {
	Command int `json:"command"`
}

// ErrorInfo is what a Catch puts at ResultPath.
type ErrorInfo struct {
	Error string `json:"Error"`
	Cause string `json:"Cause"`
}

// Error is a step failure with a name ASL can match (ErrorEquals).
type Error struct {
	Name string
	Msg  string
}

func (e *Error) Error() string { return e.Name + ": " + e.Msg }

// Named errors.
const (
	ErrInvalidSpec    = "InvalidSpec"
	ErrNameTaken      = "NameTaken"
	ErrNodesNotOnline = "NodesNotOnline"
	ErrNodeLost       = "NodeLost"
	ErrCommandFailed  = "CommandFailed"
	ErrJoinFailed     = "JoinFailed"
	ErrJoinExhausted  = "JoinRetriesExhausted"
	ErrCancelled      = "Cancelled"
	ErrTransient      = "TransientError"
	ErrStep           = "StepFailed"
	ErrCleanup        = "CleanupIncomplete"
)

func stepErr(name, format string, a ...any) error {
	return &Error{Name: name, Msg: fmt.Sprintf(format, a...)}
}

// LambdaError turns any step error into the Lambda error response, whose
// type is the name Retry and Catch match on AWS: named step errors keep
// their name, throttling and 5xx answers become TransientError.
func LambdaError(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return messages.InvokeResponse_Error{Type: e.Name, Message: e.Msg}
	}
	name := ErrStep
	if isTransient(err) {
		name = ErrTransient
	}
	return messages.InvokeResponse_Error{Type: name, Message: err.Error()}
}

// Wrap adapts a step to lambda.Start, naming its errors.
func Wrap[In, Out any](fn func(context.Context, In) (Out, error)) func(context.Context, In) (Out, error) {
	return func(ctx context.Context, in In) (Out, error) {
		out, err := fn(ctx, in)
		return out, LambdaError(err)
	}
}

func isTransient(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "RequestLimitExceeded", "ThrottlingException", "Throttling", "TooManyRequestsException",
			"ProvisionedThroughputExceededException", "InternalError", "InternalServerError", "ServiceUnavailable",
			"Unavailable", "TransactionConflictException":
			return true
		}
	}
	return errors.Is(err, store.ErrConflict) || errors.Is(err, context.DeadlineExceeded)
}

// apiCode is the AWS error code of err ("" if none).
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// redact removes secrets from text that may reach a record, a log or an output.
func redact(text string, secrets ...string) string {
	for _, s := range secrets {
		if len(s) >= 8 {
			text = strings.ReplaceAll(text, s, "<redacted>")
		}
	}
	return text
}

// tail keeps the last n bytes of s, at a line boundary when possible.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
		s = s[i+1:]
	}
	return "…" + s
}
