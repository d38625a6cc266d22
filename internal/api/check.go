package api

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/spec"
)

// SpecChecker tells what a MEC's region makes of a spec before the API
// accepts it.
type SpecChecker interface {
	CheckSpec(ctx context.Context, sp spec.Spec) (mec.SpecCheck, error)
}

// LambdaInvoker is the part of the Lambda client the checker uses.
type LambdaInvoker interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, opts ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

var _ LambdaInvoker = (*lambda.Client)(nil)

// FunctionChecker asks the check-spec function, which alone of the API's
// helpers reaches EC2: the API itself links no EC2 client.
type FunctionChecker struct {
	Lambda   LambdaInvoker
	Function string
}

// CheckSpec invokes the function synchronously with the spec.
func (f FunctionChecker) CheckSpec(ctx context.Context, sp spec.Spec) (mec.SpecCheck, error) {
	payload, err := json.Marshal(sp)
	if err != nil {
		return mec.SpecCheck{}, fmt.Errorf("check spec: %w", err)
	}
	out, err := f.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(f.Function), Payload: payload})
	if err != nil {
		return mec.SpecCheck{}, fmt.Errorf("check spec: invoke %s: %w", f.Function, err)
	}
	if out.FunctionError != nil {
		return mec.SpecCheck{}, fmt.Errorf("check spec: %s failed (%s): %s", f.Function, aws.ToString(out.FunctionError), clip(string(out.Payload), 300))
	}
	var res mec.SpecCheck
	if err := json.Unmarshal(out.Payload, &res); err != nil {
		return mec.SpecCheck{}, fmt.Errorf("check spec: answer of %s: %w", f.Function, err)
	}
	return res, nil
}
