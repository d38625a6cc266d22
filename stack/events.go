package stack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/mecd/mecd/internal/backend"
)

// newRule puts one backend rule in scope, sending what it matches to target.
func newRule(scope constructs.Construct, r backend.EventRule, description string, target awsevents.IRuleTarget) {
	pattern, err := eventPattern(r.Pattern)
	if err != nil {
		panic(fmt.Errorf("stack: event rule %s: %w", r.Name, err))
	}
	awsevents.NewRule(scope, jsii.String(pascal(r.Name)), &awsevents.RuleProps{
		Description:  jsii.String(description),
		EventPattern: pattern,
		Targets:      &[]awsevents.IRuleTarget{target},
	})
}

// newRules puts backend.EventRules on the default bus, each targeting its function.
func newRules(scope constructs.Construct, id string, rules []backend.EventRule, fns *Functions) {
	c := constructs.NewConstruct(scope, jsii.String(id))
	for _, r := range rules {
		newRule(c, r, "mecd "+r.Name+" -> "+r.Function, awseventstargets.NewLambdaFunction(fns.byName[r.Function], nil))
	}
}

// eventPattern reads a backend pattern (EventBridge JSON) into CDK's form;
// a key CDK's form lacks is an error rather than a silently wider rule.
func eventPattern(raw string) (*awsevents.EventPattern, error) {
	var p struct {
		Source     []string       `json:"source"`
		DetailType []string       `json:"detail-type"`
		Detail     map[string]any `json:"detail"`
		Account    []string       `json:"account"`
		Region     []string       `json:"region"`
		Resources  []string       `json:"resources"`
		ID         []string       `json:"id"`
		Time       []string       `json:"time"`
		Version    []string       `json:"version"`
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("pattern: %w", err)
	}
	list := func(v []string) *[]*string {
		if v == nil {
			return nil
		}
		return jsii.Strings(v...)
	}
	out := &awsevents.EventPattern{
		Source: list(p.Source), DetailType: list(p.DetailType), Account: list(p.Account), Region: list(p.Region),
		Resources: list(p.Resources), Id: list(p.ID), Time: list(p.Time), Version: list(p.Version),
	}
	if p.Detail != nil {
		out.Detail = &p.Detail
	}
	return out, nil
}

// newSweepSchedule runs the sweeper every rate. A missed run costs nothing:
// the next one finds the same expired MECs, so delivery is not retried.
func newSweepSchedule(scope constructs.Construct, id string, sweeper awslambda.Function, rate time.Duration) {
	awsevents.NewRule(scope, jsii.String(id), &awsevents.RuleProps{
		Description: jsii.String("mecd: tear down MECs past their expiry"),
		Schedule:    awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(rate.Minutes()))),
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(sweeper, &awseventstargets.LambdaFunctionProps{
			RetryAttempts: jsii.Number(0),
		})},
	})
}
