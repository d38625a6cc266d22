package localrt

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// NodeConfig is an SDK config signed with an instance's role credentials,
// taken from its IMDSv2 stand-in as anything on the node (a hostNetwork pod
// included) could take them.
func (rt *Runtime) NodeConfig(ctx context.Context, instanceID string) (aws.Config, error) {
	base := rt.Endpoint + "/_sim/imds/" + instanceID + "/latest"
	get := func(method, path string, hdr map[string]string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
		if err != nil {
			return "", err
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("imds %s %s: %d %v", method, path, resp.StatusCode, err)
		}
		return string(b), nil
	}
	tok, err := get(http.MethodPut, "/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"})
	if err != nil {
		return aws.Config{}, err
	}
	h := map[string]string{"X-aws-ec2-metadata-token": tok}
	role, err := get(http.MethodGet, "/meta-data/iam/security-credentials/", h)
	if err != nil {
		return aws.Config{}, err
	}
	raw, err := get(http.MethodGet, "/meta-data/iam/security-credentials/"+role, h)
	if err != nil {
		return aws.Config{}, err
	}
	var c struct{ AccessKeyId, SecretAccessKey, Token string }
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return aws.Config{}, fmt.Errorf("imds credentials: %w", err)
	}
	region, err := get(http.MethodGet, "/meta-data/placement/region", h)
	if err != nil {
		return aws.Config{}, err
	}
	cfg := rt.AWSConfig(region)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(c.AccessKeyId, c.SecretAccessKey, c.Token)
	return cfg, nil
}
