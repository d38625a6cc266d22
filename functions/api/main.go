// Command api is a Lambda (provided.al2023): the MEC resource API behind API
// Gateway (REST proxy integration). The logic lives in internal/api; this
// file only wires it.
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	awslambda "github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/mecd/mecd/internal/api"
	"github.com/mecd/mecd/internal/backend"
	"github.com/mecd/mecd/internal/config"
	"github.com/mecd/mecd/internal/store"
)

func main() {
	if err := run(context.Background()); err != nil {
		log.Fatalf("api: %v", err)
	}
}

func run(ctx context.Context) error {
	env, cfg, err := config.Load(ctx)
	if err != nil {
		return err
	}
	// Fail at init rather than on the first request that needs them.
	if env.ProvisionSMArn == "" || env.TeardownSMArn == "" {
		return fmt.Errorf("%s and %s must be set", backend.EnvProvisionSMArn, backend.EnvTeardownSMArn)
	}
	ownerOnly, err := api.OwnerOnlyFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	h := &api.Handler{
		Store: &store.Store{DB: dynamodb.NewFromConfig(cfg), Table: env.TableName, Retention: env.RecordRetention},
		SFN:   sfn.NewFromConfig(cfg),
		// One client: each kubeconfig read is pointed at its MEC's region.
		SSM:       ssm.NewFromConfig(cfg),
		Env:       env,
		OwnerOnly: ownerOnly,
		Log:       config.Logger(),
	}
	if env.CheckSpecFunction != "" {
		h.Checker = api.FunctionChecker{Lambda: lambda.NewFromConfig(cfg), Function: env.CheckSpecFunction}
	}
	awslambda.StartWithOptions(h.Handle, awslambda.WithContext(ctx))
	return nil
}
