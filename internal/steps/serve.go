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

// perRegion builds a client for a region once and keeps it.
type perRegion[C any] struct {
	mu      sync.Mutex
	clients map[string]C
	build   func(region string) C
}

func (p *perRegion[C]) get(region string) C {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.clients[region]
	if !ok {
		c = p.build(region)
		p.clients[region] = c
	}
	return c
}

// regional gives the clients of a MEC's region: its nodes, security group
// and parameters live there.
type regional struct {
	ec2 perRegion[*ec2.Client]
	ssm perRegion[*ssm.Client]
}

func newRegional(cfg aws.Config) *regional {
	return &regional{
		ec2: perRegion[*ec2.Client]{clients: map[string]*ec2.Client{},
			build: func(r string) *ec2.Client { return ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.Region = r }) }},
		ssm: perRegion[*ssm.Client]{clients: map[string]*ssm.Client{},
			build: func(r string) *ssm.Client { return ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.Region = r }) }},
	}
}

func (r *regional) EC2(region string) EC2API { return r.ec2.get(region) }
func (r *regional) SSM(region string) SSMAPI { return r.ssm.get(region) }

// FromEnvironment builds Steps from a function's environment: what every
// functions/<step>/main.go does before serving.
func FromEnvironment(ctx context.Context) (*Steps, error) {
	env, cfg, err := config.Load(ctx)
	if err != nil {
		return nil, err
	}
	st := &store.Store{DB: dynamodb.NewFromConfig(cfg), Table: env.TableName, Retention: env.RecordRetention}
	return &Steps{
		Store:  st,
		Spares: st,
		Locks:  st,
		AWS:    newRegional(cfg),
		IAM:    iam.NewFromConfig(cfg), // IAM is global
		SFN:    sfn.NewFromConfig(cfg),
		Env:    env,
		Log:    config.Logger(),
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
