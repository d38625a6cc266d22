package stack

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/mecd/mecd/internal/backend"
)

// Workflows are the state machines of backend.StateMachines, each with its
// log group and failed-executions alarm.
type Workflows struct {
	constructs.Construct
	byName map[string]awsstepfunctions.StateMachine
}

type workflowsConfig struct {
	defs         []backend.StateMachine
	root         string
	names        map[string]string // deployed names
	functions    *Functions
	logRetention awslogs.RetentionDays
}

// whySFNRole excuses what CDK adds to a state machine role for logging and tracing.
var whySFNRole = map[string]string{
	"logs:CreateLogDelivery, logs:GetLogDelivery, logs:UpdateLogDelivery, logs:DeleteLogDelivery, logs:ListLogDeliveries, logs:PutResourcePolicy, logs:DescribeResourcePolicies, logs:DescribeLogGroups": "CloudWatch Logs vended-log delivery actions accept no resource (Service Authorization Reference); CDK adds them for the execution log",
	"xray:PutTraceSegments, xray:PutTelemetryRecords, xray:GetSamplingRules, xray:GetSamplingTargets":                                                                                                    "X-Ray actions accept no resource (Service Authorization Reference); CDK adds them for tracing",
}

func newWorkflows(scope constructs.Construct, id string, cfg workflowsConfig) *Workflows {
	c := constructs.NewConstruct(scope, jsii.String(id))
	wf := &Workflows{Construct: c, byName: map[string]awsstepfunctions.StateMachine{}}
	arns := map[string]string{}
	byPlaceholder := map[string]awslambda.Function{}
	for name, fn := range cfg.functions.byName {
		arns[name] = *fn.FunctionArn()
	}
	for _, fn := range backend.Functions {
		if f, ok := cfg.functions.byName[fn.Name]; ok && fn.Placeholder != "" {
			byPlaceholder[fn.Placeholder] = f
		}
	}
	subs := backend.Substitutions(arns)
	for _, def := range cfg.defs {
		wf.byName[def.Name] = newStateMachine(c, def, cfg, subs, byPlaceholder)
	}
	return wf
}

func newStateMachine(scope constructs.Construct, def backend.StateMachine, cfg workflowsConfig, subs map[string]string, byPlaceholder map[string]awslambda.Function) awsstepfunctions.StateMachine {
	id := pascal(def.Name)
	asl, err := os.ReadFile(aslPath(cfg.root, def))
	if err != nil {
		panic(fmt.Errorf("stack: state machine %s: %w", def.Name, err))
	}
	// Substitute only what this workflow uses, and let it invoke only those
	// functions.
	used := map[string]*string{}
	var invokes []*string
	for _, ph := range backend.Placeholders(asl) {
		v, ok := subs[ph]
		if !ok || v == "" {
			panic(fmt.Errorf("stack: state machine %s: no function for ${%s}", def.Name, ph))
		}
		used[ph] = jsii.String(v)
		invokes = append(invokes, byPlaceholder[ph].FunctionArn())
	}
	// Named under /aws/vendedlogs/ so Step Functions need not grow the
	// account's CloudWatch Logs resource policy (it has a size limit).
	logs := awslogs.NewLogGroup(scope, jsii.String(id+"Logs"), &awslogs.LogGroupProps{
		LogGroupName:  jsii.String("/aws/vendedlogs/states/" + cfg.names[def.Name]),
		Retention:     cfg.logRetention,
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	role := awsiam.NewRole(scope, jsii.String(id+"Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("states.amazonaws.com"), nil),
		Description: jsii.String("mecd " + def.Name + " workflow: invokes its step functions"),
	})
	if len(invokes) > 0 {
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Actions:   jsii.Strings("lambda:InvokeFunction"),
			Resources: &invokes,
		}))
	}
	grantTo(role, nil, nil, whySFNRole)
	sm := awsstepfunctions.NewStateMachine(scope, jsii.String(id), &awsstepfunctions.StateMachineProps{
		StateMachineName:        jsii.String(cfg.names[def.Name]),
		StateMachineType:        awsstepfunctions.StateMachineType_STANDARD,
		DefinitionBody:          awsstepfunctions.DefinitionBody_FromString(jsii.String(string(asl))),
		DefinitionSubstitutions: &used,
		Role:                    role,
		// Every event, without the data: inputs and outputs carry task
		// tokens, which would let a log reader complete a task.
		Logs: &awsstepfunctions.LogOptions{
			Destination:          logs,
			Level:                awsstepfunctions.LogLevel_ALL,
			IncludeExecutionData: jsii.Bool(false),
		},
		TracingEnabled: jsii.Bool(true),
	})
	period := awscdk.Duration_Minutes(jsii.Number(5))
	awscloudwatch.NewAlarm(scope, jsii.String(id+"Failed"), &awscloudwatch.AlarmProps{
		AlarmDescription: jsii.String("mecd " + def.Name + " executions failed or timed out (the record says which step and why)"),
		Metric: awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
			Expression: jsii.String("FILL(failed, 0) + FILL(timedOut, 0)"),
			UsingMetrics: &map[string]awscloudwatch.IMetric{
				"failed":   sm.MetricFailed(&awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("Sum")}),
				"timedOut": sm.MetricTimedOut(&awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("Sum")}),
			},
			Period: period,
		}),
		Threshold:          jsii.Number(1),
		EvaluationPeriods:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	return sm
}
