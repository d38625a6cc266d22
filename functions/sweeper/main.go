// Command sweeper is a Lambda (provided.al2023) run by an EventBridge
// schedule: it starts the teardown of every MEC past its expiry.
// The logic lives in internal/sweep; this file only wires it.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/mecd/mecd/internal/config"
	"github.com/mecd/mecd/internal/record"
	"github.com/mecd/mecd/internal/sweep"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "sweeper: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	env, err := config.FromEnv()
	if err != nil {
		return err
	}
	cfg, err := config.AWS(ctx)
	if err != nil {
		return err
	}
	c := config.NewClients(cfg)
	s := &sweep.Sweeper{
		Store:       &record.Store{DB: c.DDB, Table: env.TableName, Retention: env.RecordRetention},
		SFN:         c.SFN,
		TeardownArn: env.TeardownSMArn,
		Batch:       env.SweepBatch,
		Log:         config.Logger(),
	}
	lambda.Start(s.Run)
	return nil
}
