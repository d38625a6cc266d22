package steps

import (
	"context"
	"sync"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/mecd/mecd/internal/config"
	"github.com/mecd/mecd/internal/store"
)

// regional builds and caches clients per region: a MEC's nodes, security
// group and parameters live in the MEC's region.
type regional struct {
	base aws.Config
	mu   sync.Mutex
	ec2  map[string]*ec2.Client
	ssm  map[string]*ssm.Client
}

func (r *regional) EC2(region string) EC2API {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.ec2[region]; ok {
		return c
	}
	c := ec2.NewFromConfig(r.base, func(o *ec2.Options) { o.Region = region })
	r.ec2[region] = c
	return c
}

func (r *regional) SSM(region string) SSMAPI {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.ssm[region]; ok {
		return c
	}
	c := ssm.NewFromConfig(r.base, func(o *ssm.Options) { o.Region = region })
	r.ssm[region] = c
	return c
}

// FromEnvironment builds Steps from a function's environment: what every
// functions/<step>/main.go does before serving.
func FromEnvironment(ctx context.Context) (*Steps, error) {
	env, err := config.FromEnv()
	if err != nil {
		return nil, err
	}
	cfg, err := config.AWS(ctx)
	if err != nil {
		return nil, err
	}
	return &Steps{
		Store: &store.Store{DB: dynamodb.NewFromConfig(cfg), Table: env.TableName, Retention: env.RecordRetention},
		AWS:   &regional{base: cfg, ec2: map[string]*ec2.Client{}, ssm: map[string]*ssm.Client{}},
		IAM:   iam.NewFromConfig(cfg), // IAM is global
		SFN:   sfn.NewFromConfig(cfg),
		Env:   env,
		Log:   config.Logger(),
	}, nil
}

// Serve is a step function's whole main: build Steps from the environment
// and serve the handler pick returns on the Lambda runtime. It returns only
// a setup error (which the caller reports as Lambda's init error).
func Serve(ctx context.Context, pick func(*Steps) any) error {
	s, err := FromEnvironment(ctx)
	if err != nil {
		return err
	}
	lambda.StartWithOptions(pick(s), lambda.WithContext(ctx))
	return nil
}
