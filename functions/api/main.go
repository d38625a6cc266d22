// Command api is a Lambda (provided.al2023): the MEC resource API behind API
// Gateway (REST proxy integration). The logic lives in internal/api; this
// file only wires it.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/mecd/mecd/internal/api"
	"github.com/mecd/mecd/internal/backend"
	"github.com/mecd/mecd/internal/config"
	"github.com/mecd/mecd/internal/record"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "api: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	env, err := config.FromEnv()
	if err != nil {
		return err
	}
	// Fail at init rather than on the first request that needs them.
	if env.ProvisionSMArn == "" || env.TeardownSMArn == "" {
		return fmt.Errorf("%s and %s must be set", backend.EnvProvisionSMArn, backend.EnvTeardownSMArn)
	}
	cfg, err := config.AWS(ctx)
	if err != nil {
		return err
	}
	clients := config.NewClients(cfg)
	h := &api.Handler{
		Store: &record.Store{DB: clients.DDB, Table: env.TableName, Retention: env.RecordRetention},
		SFN:   clients.SFN,
		// One client: each kubeconfig read is pointed at its MEC's region.
		SSM: ssm.NewFromConfig(cfg),
		Env: env,
		Log: config.Logger(),
	}
	lambda.Start(h.Handle)
	return nil
}
