package stack

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/mecd/mecd/internal/backend"
)

// API is the MEC resource API (DESIGN section 5): the resources of
// backend.APIResources, each with one ANY method that needs SigV4 (AWS_IAM)
// and proxies to the api function, which answers every route itself.
//
// Each route is a resource of its own, never left to the greedy {proxy+}:
// IAM policies can then tell them apart, above all GET
// /mecs/{id}/kubeconfig, the one answer that carries a secret
// (arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/GET/mecs/*/kubeconfig; an
// ANY method is authorized with the request's own verb).
type API struct {
	constructs.Construct
	Api awsapigateway.RestApi
}

type apiConfig struct {
	rate         float64
	burst        int
	logRetention awslogs.RetentionDays
	// accountRole: set the region's API Gateway CloudWatch role (see MecdStackProps).
	accountRole bool
}

func newAPI(scope constructs.Construct, id string, fn awslambda.Function, cfg apiConfig) *API {
	c := constructs.NewConstruct(scope, jsii.String(id))
	access := awslogs.NewLogGroup(c, jsii.String("AccessLogs"), &awslogs.LogGroupProps{
		Retention:     cfg.logRetention,
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	api := awsapigateway.NewRestApi(c, jsii.String("Rest"), &awsapigateway.RestApiProps{
		Description:   jsii.String("mecd MEC API"),
		EndpointTypes: &[]awsapigateway.EndpointType{awsapigateway.EndpointType_REGIONAL},
		// REST stages log (access or execution) only once the account and
		// region have API Gateway's CloudWatch role; kept on destroy, since
		// other APIs of the account may log through it by then.
		CloudWatchRole:              jsii.Bool(cfg.accountRole),
		CloudWatchRoleRemovalPolicy: awscdk.RemovalPolicy_RETAIN,
		DefaultMethodOptions:        &awsapigateway.MethodOptions{AuthorizationType: awsapigateway.AuthorizationType_IAM},
		DeployOptions: &awsapigateway.StageOptions{
			StageName:            jsii.String(backend.APIStage),
			AccessLogDestination: awsapigateway.NewLogGroupLogDestination(access),
			AccessLogFormat: awsapigateway.AccessLogFormat_JsonWithStandardFields(&awsapigateway.JsonWithStandardFieldProps{
				Caller: jsii.Bool(true), HttpMethod: jsii.Bool(true), Ip: jsii.Bool(true), Protocol: jsii.Bool(true),
				RequestTime: jsii.Bool(true), ResourcePath: jsii.Bool(true), ResponseLength: jsii.Bool(true),
				Status: jsii.Bool(true), User: jsii.Bool(true),
			}),
			ThrottlingRateLimit:  jsii.Number(cfg.rate),
			ThrottlingBurstLimit: jsii.Number(cfg.burst),
			TracingEnabled:       jsii.Bool(true),
			// Errors only, never bodies: a kubeconfig is one.
			LoggingLevel:     awsapigateway.MethodLoggingLevel_ERROR,
			DataTraceEnabled: jsii.Bool(false),
			MetricsEnabled:   jsii.Bool(true),
		},
	})
	// Required path parameters are checked at the edge. Body validation is
	// on but has no model to apply: one ANY method per resource cannot demand
	// a body that GET does not send, and the handler validates every field,
	// naming what is wrong (DESIGN section 3).
	validator := api.AddRequestValidator(jsii.String("Validator"), &awsapigateway.RequestValidatorOptions{
		ValidateRequestBody: jsii.Bool(true), ValidateRequestParameters: jsii.Bool(true),
	})
	integ := awsapigateway.NewLambdaIntegration(fn, nil)
	for _, path := range backend.APIResources {
		res := api.Root()
		params := map[string]*bool{}
		for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
			if child := res.GetResource(jsii.String(part)); child != nil {
				res = child
			} else {
				res = res.AddResource(jsii.String(part), nil)
			}
			if strings.HasPrefix(part, "{") {
				params["method.request.path."+strings.TrimSuffix(strings.Trim(part, "{}"), "+")] = jsii.Bool(true)
			}
		}
		opts := &awsapigateway.MethodOptions{AuthorizationType: awsapigateway.AuthorizationType_IAM, RequestValidator: validator}
		if len(params) > 0 {
			opts.RequestParameters = &params
		}
		res.AddMethod(jsii.String("ANY"), integ, opts)
	}

	cdknag.NagSuppressions_AddResourceSuppressions(api, &[]*cdknag.NagPackSuppression{
		{Id: jsii.String("AwsSolutions-APIG3"), Reason: jsii.String(
			"every method requires SigV4 (AWS_IAM) and the stage is throttled; a WAF web ACL would add a monthly fee to an API that idles most of the time")},
		{Id: jsii.String("AwsSolutions-IAM4"), Reason: jsii.String(
			"API Gateway's account-level CloudWatch role: AmazonAPIGatewayPushToCloudWatchLogs is the policy AWS documents and maintains for it"),
			AppliesTo: &[]any{"Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"}},
		{Id: jsii.String("AwsSolutions-COG4"), Reason: jsii.String(
			"callers are IAM principals (mecctl signs with SigV4): AWS_IAM authorization on every method, no Cognito user pool")},
	}, jsii.Bool(true))
	return &API{Construct: c, Api: api}
}
