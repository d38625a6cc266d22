package config

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/mecd/mecd/internal/backend"
)

// Env is a function's environment.
type Env struct {
	Region            string
	TableName         string
	ProvisionSMArn    string
	TeardownSMArn     string
	RollbackSMArn     string
	ScaleSMArn        string
	NodeBoundaryArn   string
	NodeCorePolicyArn string
	AllowedRegions    []string
	CheckSpecFunction string
	RecordRetention   time.Duration
	NodeOnlineTimeout time.Duration
	CommandTimeout    time.Duration
	PollInterval      time.Duration
	CheckWait         time.Duration // the longest wait inside one check-nodes invocation
	SpareNodeRoles    int           // spare node roles launch-nodes keeps made ahead
	SweepBatch        int
}

// maxSpareNodeRoles bounds SPARE_NODE_ROLES: IAM allows 1,000 roles per
// account by default (IAM User Guide, IAM and AWS STS quotas).
const maxSpareNodeRoles = 50

// FromEnv reads the environment, with production defaults.
func FromEnv() (Env, error) {
	e := Env{
		Region:            firstNonEmpty(os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION")),
		TableName:         os.Getenv(backend.EnvTableName),
		ProvisionSMArn:    os.Getenv(backend.EnvProvisionSMArn),
		TeardownSMArn:     os.Getenv(backend.EnvTeardownSMArn),
		RollbackSMArn:     os.Getenv(backend.EnvRollbackSMArn),
		ScaleSMArn:        os.Getenv(backend.EnvScaleSMArn),
		NodeBoundaryArn:   os.Getenv(backend.EnvNodeBoundaryArn),
		NodeCorePolicyArn: os.Getenv(backend.EnvNodeCorePolicyArn),
		CheckSpecFunction: os.Getenv(backend.EnvCheckSpecFunction),
	}
	for _, r := range strings.Split(os.Getenv(backend.EnvAllowedRegions), ",") {
		if r = strings.TrimSpace(r); r != "" {
			e.AllowedRegions = append(e.AllowedRegions, r)
		}
	}
	var err error
	durations := []struct {
		key string
		def time.Duration
		dst *time.Duration
	}{
		{backend.EnvRecordRetention, 30 * 24 * time.Hour, &e.RecordRetention},
		{backend.EnvNodeOnlineTimeout, 15 * time.Minute, &e.NodeOnlineTimeout},
		{backend.EnvCommandTimeout, 30 * time.Minute, &e.CommandTimeout},
		{backend.EnvPollInterval, 10 * time.Second, &e.PollInterval},
		{backend.EnvCheckWait, 14 * time.Minute, &e.CheckWait},
	}
	for _, d := range durations {
		if *d.dst, err = duration(d.key, d.def); err != nil {
			return e, err
		}
	}
	e.SpareNodeRoles = 2
	if v := os.Getenv(backend.EnvSpareNodeRoles); v != "" {
		if e.SpareNodeRoles, err = strconv.Atoi(v); err != nil || e.SpareNodeRoles < 0 || e.SpareNodeRoles > maxSpareNodeRoles {
			return e, fmt.Errorf("%s=%q: want an integer from 0 to %d", backend.EnvSpareNodeRoles, v, maxSpareNodeRoles)
		}
	}
	e.SweepBatch = 25
	if v := os.Getenv(backend.EnvSweepBatch); v != "" {
		if e.SweepBatch, err = strconv.Atoi(v); err != nil || e.SweepBatch < 1 {
			return e, fmt.Errorf("%s=%q: want a positive integer", backend.EnvSweepBatch, v)
		}
	}
	if e.TableName == "" {
		return e, fmt.Errorf("%s is not set", backend.EnvTableName)
	}
	return e, nil
}

func duration(key string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive Go duration such as 10m", key, v)
	}
	return d, nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// Logger is the JSON logger every function uses (level from LOG_LEVEL).
func Logger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(os.Getenv(backend.EnvLogLevel))); err != nil {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: level}))
}

// AWS loads the SDK configuration with the standard retryer: throttling and
// transient errors are retried with backoff inside each call.
func AWS(ctx context.Context) (aws.Config, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRetryer(func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 6
			o.MaxBackoff = 10 * time.Second
		})
	}))
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws config: %w", err)
	}
	return cfg, nil
}

// Load reads the environment and the SDK configuration: a function's whole
// start-up before it builds its clients.
func Load(ctx context.Context) (Env, aws.Config, error) {
	env, err := FromEnv()
	if err != nil {
		return env, aws.Config{}, err
	}
	cfg, err := AWS(ctx)
	return env, cfg, err
}
