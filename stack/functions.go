package stack

import (
	"path/filepath"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/mecd/mecd/internal/backend"
)

// Functions are the backend's Lambdas, one per backend.Functions entry,
// each with its own role, log group and error alarm.
type Functions struct {
	constructs.Construct
	byName map[string]awslambda.Function
}

type functionsConfig struct {
	defs         []backend.Function
	dir          string
	resources    backend.Resources
	refs         refs
	regions      []string
	logRetention awslogs.RetentionDays
}

// whyXRay excuses the statement CDK adds for active tracing.
const whyXRay = "X-Ray PutTraceSegments/PutTelemetryRecords accept no resource (Service Authorization Reference); CDK adds them for active tracing"

func newFunctions(scope constructs.Construct, id string, cfg functionsConfig) *Functions {
	c := constructs.NewConstruct(scope, jsii.String(id))
	fs := &Functions{Construct: c, byName: map[string]awslambda.Function{}}
	for _, def := range cfg.defs {
		fs.byName[def.Name] = newFunction(c, def, cfg)
	}
	return fs
}

func newFunction(scope constructs.Construct, def backend.Function, cfg functionsConfig) awslambda.Function {
	id := pascal(def.Name)
	logs := awslogs.NewLogGroup(scope, jsii.String(id+"Logs"), &awslogs.LogGroupProps{
		Retention:     cfg.logRetention,
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	// An own role rather than CDK's default: that one carries the managed
	// AWSLambdaBasicExecutionRole (logs on every group); this one writes to
	// its own log group only.
	role := awsiam.NewRole(scope, jsii.String(id+"Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("mecd " + def.Name + ": only what the function calls"),
	})
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("logs:CreateLogStream", "logs:PutLogEvents"),
		Resources: jsii.Strings(*logs.LogGroupArn()),
	}))
	accesses, _ := functionAccess(def.Name, cfg.refs)
	grantTo(role, accesses, cfg.regions, map[string]string{"xray:PutTraceSegments, xray:PutTelemetryRecords": whyXRay})

	env := map[string]*string{}
	for k, v := range def.EnvFrom(cfg.resources) {
		env[k] = jsii.String(v)
	}
	timeout := def.TimeoutSeconds
	if timeout == 0 {
		timeout = 30
	}
	var name *string
	if n, ok := cfg.refs.functions[def.Name]; ok {
		name = jsii.String(n)
	}
	fn := awslambda.NewFunction(scope, jsii.String(id), &awslambda.FunctionProps{
		FunctionName:  name,
		Description:   jsii.String(def.Description),
		Runtime:       awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:  awslambda.Architecture_ARM_64(),
		Handler:       jsii.String("bootstrap"),
		Code:          awslambda.Code_FromAsset(jsii.String(filepath.Join(cfg.dir, def.Name)), nil),
		MemorySize:    jsii.Number(max(def.MemoryMB, 128)),
		Timeout:       awscdk.Duration_Seconds(jsii.Number(timeout)),
		Environment:   &env,
		LoggingFormat: awslambda.LoggingFormat_JSON,
		LogGroup:      logs,
		Tracing:       awslambda.Tracing_ACTIVE,
		Role:          role,
	})
	awscloudwatch.NewAlarm(scope, jsii.String(id+"Errors"), &awscloudwatch.AlarmProps{
		AlarmDescription: jsii.String("mecd " + def.Name + " returned errors (see its log group)"),
		Metric: fn.MetricErrors(&awscloudwatch.MetricOptions{
			Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Sum"),
		}),
		Threshold:          jsii.Number(1),
		EvaluationPeriods:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	return fn
}
