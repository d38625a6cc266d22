package workflow

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/mecd/mecd/internal/config"
	"github.com/mecd/mecd/internal/record"
)

// regional adapts config.Clients to Regional.
type regional struct{ c *config.Clients }

func (r regional) EC2(region string) EC2API { return r.c.EC2(region) }
func (r regional) SSM(region string) SSMAPI { return r.c.SSM(region) }

// FromEnvironment builds Steps from a function's environment: what every
// functions/<step>/main.go does before lambda.Start.
func FromEnvironment(ctx context.Context) (*Steps, error) {
	log := config.Logger()
	env, err := config.FromEnv()
	if err != nil {
		return nil, err
	}
	cfg, err := config.AWS(ctx)
	if err != nil {
		return nil, err
	}
	clients := config.NewClients(cfg)
	return &Steps{
		Store: &record.Store{DB: clients.DDB, Table: env.TableName, Retention: env.RecordRetention},
		AWS:   regional{clients},
		IAM:   clients.IAM,
		SFN:   clients.SFN,
		Env:   env,
		Log:   log,
	}, nil
}

// Run is a step function's whole main: build Steps from the environment and
// serve the handler pick returns on the Lambda runtime. A setup error ends
// the process (Lambda reports it as an init error).
func Run(name string, pick func(*Steps) any) {
	s, err := FromEnvironment(context.Background())
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
	lambda.Start(pick(s))
}
