// Command sweeper is a Lambda (provided.al2023) run by an EventBridge
// schedule: it starts the teardown of every MEC past its expiry.
// The logic lives in internal/sweep; this file only wires it.
package main

import (
	"context"
	"log"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/mecd/mecd/internal/config"
	"github.com/mecd/mecd/internal/store"
	"github.com/mecd/mecd/internal/sweep"
)

func main() {
	if err := run(context.Background()); err != nil {
		log.Fatalf("sweeper: %v", err)
	}
}

func run(ctx context.Context) error {
	env, cfg, err := config.Load(ctx)
	if err != nil {
		return err
	}
	s := &sweep.Sweeper{
		Store:       &store.Store{DB: dynamodb.NewFromConfig(cfg), Table: env.TableName, Retention: env.RecordRetention},
		SFN:         sfn.NewFromConfig(cfg),
		TeardownArn: env.TeardownSMArn,
		RollbackArn: env.RollbackSMArn,
		ScaleArn:    env.ScaleSMArn,
		Fleet:       sweep.NewAWSFleet(cfg),
		// The agent reports its health every 5 minutes (amazon-ssm-agent's
		// health ping): ConnectionLost since longer than one of those, and
		// not a restart or a snap refresh of the agent, is a lost node.
		LostAfter:      30 * env.PollInterval,
		CommandTimeout: env.CommandTimeout,
		// Longer than a node command and its retry, and the wait for nodes.
		StaleAfter: 2*env.CommandTimeout + env.NodeOnlineTimeout,
		Grace:      6 * env.PollInterval,
		Batch:      env.SweepBatch,
		Log:        config.Logger(),
	}
	lambda.StartWithOptions(s.Run, lambda.WithContext(ctx))
	return nil
}
