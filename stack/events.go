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
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsssm"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

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

// newRules puts backend.EventRules on the default bus, each targeting its
// function. An event EventBridge could not deliver (the function throttled
// or failing past the retries) lands in a dead-letter queue instead of
// vanishing.
func newRules(scope constructs.Construct, id string, rules []backend.EventRule, fns *Functions) {
	c := constructs.NewConstruct(scope, jsii.String(id))
	dlq := newDeadLetterQueue(c, "DeadLetters")
	for _, r := range rules {
		newRule(c, r, "mecd "+r.Name+" -> "+r.Function, awseventstargets.NewLambdaFunction(fns.byName[r.Function], &awseventstargets.LambdaFunctionProps{
			DeadLetterQueue: dlq,
		}))
	}
}

// newDeadLetterQueue is an encrypted, TLS-only queue for events a rule could
// not deliver. A node command's status lost there is not lost to mecd:
// node-command's timeout retry asks SSM directly.
func newDeadLetterQueue(scope constructs.Construct, id string) awssqs.Queue {
	q := awssqs.NewQueue(scope, jsii.String(id), &awssqs.QueueProps{
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	cdknag.NagSuppressions_AddResourceSuppressions(q, &[]*cdknag.NagPackSuppression{{
		Id:     jsii.String("AwsSolutions-SQS3"),
		Reason: jsii.String("this queue is the dead-letter queue of the event rules' targets; a dead-letter queue has none of its own"),
	}}, jsii.Bool(true))
	return q
}

// newNodeDocument creates mecd's node document (backend.NodeDocument) in
// the scope's region: node-command runs every node script with it.
func newNodeDocument(scope constructs.Construct, id string) {
	var content map[string]any
	if err := json.Unmarshal([]byte(backend.NodeDocument.Content), &content); err != nil {
		panic(fmt.Errorf("stack: node document: %w", err))
	}
	awsssm.NewCfnDocument(scope, jsii.String(id), &awsssm.CfnDocumentProps{
		Name:           jsii.String(backend.NodeDocument.Name),
		Content:        content,
		DocumentType:   jsii.String("Command"),
		DocumentFormat: jsii.String("JSON"),
		UpdateMethod:   jsii.String("NewVersion"),
	})
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

// newSweepSchedule runs the sweeper (and the reaper) every rate. A missed
// run costs nothing: the next one finds the same MECs and resources, so
// delivery is not retried.
func newSweepSchedule(scope constructs.Construct, id string, rate time.Duration, fns ...awslambda.Function) {
	var targets []awsevents.IRuleTarget
	for _, fn := range fns {
		targets = append(targets, awseventstargets.NewLambdaFunction(fn, &awseventstargets.LambdaFunctionProps{RetryAttempts: jsii.Number(0)}))
	}
	awsevents.NewRule(scope, jsii.String(id), &awsevents.RuleProps{
		Description: jsii.String("mecd: tear down expired MECs, reconcile stuck ones, reap orphaned resources"),
		Schedule:    awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(rate.Minutes()))),
		Targets:     &targets,
	})
}
