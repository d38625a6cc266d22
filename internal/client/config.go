package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
)

// EndpointEnv names the environment variable holding the API endpoint.
const EndpointEnv = "MECD_ENDPOINT"

// DefaultStack is the CloudFormation stack whose ApiUrl output is the
// endpoint when none is given (the CDK app's default stack name).
const DefaultStack = "mecd"

// StackOutput is the stack output holding the API's URL.
const StackOutput = "ApiUrl"

// Options says where the API is and whose credentials sign for it.
type Options struct {
	// Endpoint is the API URL; empty: Getenv(EndpointEnv), then the stack's output.
	Endpoint string
	// Region is the API's (signing) region; empty: the endpoint host's, then
	// the SDK's (AWS_REGION, the profile), then us-east-1 for local endpoints.
	Region string
	// Profile is a shared config profile; empty: the SDK's default (AWS_PROFILE).
	Profile string
	// Stack whose StackOutput is the endpoint when none is given.
	Stack     string
	UserAgent string
	// Getenv reads the environment (nil: none is read besides the SDK's own).
	Getenv func(string) string
	// StackLookup finds the endpoint in a stack's outputs (nil: CloudFormation).
	StackLookup func(ctx context.Context, cfg aws.Config, stack string) (string, error)
}

// New loads the SDK configuration (credentials from the default chain) and
// resolves the endpoint and the signing region.
func New(ctx context.Context, o Options) (*Client, error) {
	var loadOpts []func(*config.LoadOptions) error
	if o.Profile != "" {
		loadOpts = append(loadOpts, config.WithSharedConfigProfile(o.Profile))
	}
	if o.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	raw := o.Endpoint
	if raw == "" {
		raw = strings.TrimSpace(getenv(EndpointEnv))
	}
	if raw == "" {
		stack := o.Stack
		if stack == "" {
			stack = DefaultStack
		}
		if cfg.Region == "" {
			return nil, fmt.Errorf("no API endpoint: pass --endpoint or set %s (or set a region, e.g. AWS_REGION, to read stack %s's %s output)", EndpointEnv, stack, StackOutput)
		}
		lookup := o.StackLookup
		if lookup == nil {
			lookup = StackEndpoint
		}
		if raw, err = lookup(ctx, cfg, stack); err != nil {
			return nil, fmt.Errorf("no API endpoint given (--endpoint, %s), and %w", EndpointEnv, err)
		}
	}
	u, err := ParseEndpoint(raw)
	if err != nil {
		return nil, err
	}
	region := o.Region
	if region == "" {
		region = EndpointRegion(u.Hostname())
	}
	if region == "" {
		region = cfg.Region
	}
	if region == "" && IsLocalHost(u.Hostname()) {
		region = "us-east-1"
	}
	if region == "" {
		return nil, fmt.Errorf("the API's region is unknown: %s does not name one; pass --api-region or set AWS_REGION", u.Host)
	}
	return &Client{
		Endpoint:    u,
		Region:      region,
		Credentials: cfg.Credentials,
		HTTP:        NewHTTPClient(),
		UserAgent:   o.UserAgent,
		Retries:     3,
	}, nil
}

// ParseEndpoint checks an API URL: http(s), a host, no query.
func ParseEndpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("API endpoint %q: %w", raw, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("API endpoint %q: want a URL such as https://abc123.execute-api.eu-west-1.amazonaws.com/prod", raw)
	}
	if u.Scheme == "http" && !IsLocalHost(u.Hostname()) && !isLoopback(u.Hostname()) {
		// SigV4 protects integrity, not confidentiality: kubeconfigs travel in answers.
		return nil, fmt.Errorf("API endpoint %q: plain http is allowed only for local endpoints (localhost, 127.0.0.1)", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

var reExecuteAPIHost = regexp.MustCompile(`^[a-z0-9]+\.execute-api\.([a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+)\.amazonaws\.com(\.cn)?$`)

// EndpointRegion is the region in an API Gateway host name
// (<id>.execute-api.<region>.amazonaws.com), or "".
func EndpointRegion(host string) string {
	if m := reExecuteAPIHost.FindStringSubmatch(strings.ToLower(host)); m != nil {
		return m[1]
	}
	return ""
}

// IsLocalHost reports whether host is "localhost" or a name under it:
// loopback by definition (RFC 6761 section 6.3).
func IsLocalHost(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// NewHTTPClient is an HTTP client whose transport dials 127.0.0.1 for
// *.localhost hosts (the local runtime's API is
// http://<id>.execute-api.localhost:4566): browsers resolve such names to
// loopback themselves, Go's resolver asks DNS, which knows none of them.
// Proxies are never used for them either.
func NewHTTPClient() *http.Client {
	base := http.DefaultTransport.(*http.Transport).Clone()
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, LocalDialAddr(addr))
	}
	proxy := base.Proxy
	base.Proxy = func(r *http.Request) (*url.URL, error) {
		if IsLocalHost(r.URL.Hostname()) || proxy == nil {
			return nil, nil
		}
		return proxy(r)
	}
	return &http.Client{Transport: base, Timeout: 60 * time.Second}
}

// LocalDialAddr maps a "host:port" whose host is localhost or under it to
// 127.0.0.1:port; any other address is returned as is.
func LocalDialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !IsLocalHost(host) {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// CloudFormationAPI is the part of CloudFormation StackEndpoint calls.
type CloudFormationAPI interface {
	DescribeStacks(ctx context.Context, in *cloudformation.DescribeStacksInput, opts ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error)
}

var _ CloudFormationAPI = (*cloudformation.Client)(nil)

// StackEndpoint reads the API URL from the stack's ApiUrl output in the
// configuration's region.
func StackEndpoint(ctx context.Context, cfg aws.Config, stack string) (string, error) {
	return StackOutputValue(ctx, cloudformation.NewFromConfig(cfg), stack, StackOutput, cfg.Region)
}

// StackOutputValue returns one output of a stack.
func StackOutputValue(ctx context.Context, cf CloudFormationAPI, stack, key, region string) (string, error) {
	out, err := cf.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(stack)})
	if err != nil {
		return "", fmt.Errorf("read stack %s in %s (deployed there? pass --stack or --api-region): %w", stack, region, err)
	}
	for _, s := range out.Stacks {
		for _, o := range s.Outputs {
			if aws.ToString(o.OutputKey) == key && aws.ToString(o.OutputValue) != "" {
				return aws.ToString(o.OutputValue), nil
			}
		}
	}
	return "", errors.New("stack " + stack + " in " + region + " has no " + key + " output")
}
