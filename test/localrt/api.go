package localrt

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"

	"github.com/mecd/mecd/internal/backend"
)

// createAPI builds the REST API from backend.APIResources on kumo's API
// Gateway, each resource's ANY method proxying to the api function.
func (rt *Runtime) createAPI(ctx context.Context, c *apigateway.Client) error {
	api, err := c.CreateRestApi(ctx, &apigateway.CreateRestApiInput{Name: aws.String("mecd")})
	if err != nil {
		return fmt.Errorf("create rest api: %w", err)
	}
	apiID := aws.ToString(api.Id)
	res, err := c.GetResources(ctx, &apigateway.GetResourcesInput{RestApiId: api.Id})
	if err != nil {
		return fmt.Errorf("get resources: %w", err)
	}
	ids := map[string]string{}
	for _, r := range res.Items {
		ids[aws.ToString(r.Path)] = aws.ToString(r.Id)
	}
	paths := append([]string(nil), backend.APIResources...)
	sort.Slice(paths, func(i, j int) bool { return strings.Count(paths[i], "/") < strings.Count(paths[j], "/") })
	uri := fmt.Sprintf("arn:aws:apigateway:%s:lambda:path/2015-03-31/functions/%s/invocations", rt.Region, rt.functionArn("api"))
	for _, p := range paths {
		parent := p[:strings.LastIndex(p, "/")]
		if parent == "" {
			parent = "/"
		}
		parentID, ok := ids[parent]
		if !ok {
			return fmt.Errorf("api resource %s: parent %s not created first", p, parent)
		}
		r, err := c.CreateResource(ctx, &apigateway.CreateResourceInput{RestApiId: api.Id, ParentId: aws.String(parentID), PathPart: aws.String(p[strings.LastIndex(p, "/")+1:])})
		if err != nil {
			return fmt.Errorf("api resource %s: %w", p, err)
		}
		ids[p] = aws.ToString(r.Id)
		if _, err := c.PutMethod(ctx, &apigateway.PutMethodInput{RestApiId: api.Id, ResourceId: r.Id, HttpMethod: aws.String("ANY"),
			AuthorizationType: aws.String("AWS_IAM")}); err != nil {
			return fmt.Errorf("api method %s: %w", p, err)
		}
		if _, err := c.PutIntegration(ctx, &apigateway.PutIntegrationInput{RestApiId: api.Id, ResourceId: r.Id, HttpMethod: aws.String("ANY"),
			Type: "AWS_PROXY", IntegrationHttpMethod: aws.String("POST"), Uri: aws.String(uri)}); err != nil {
			return fmt.Errorf("api integration %s: %w", p, err)
		}
	}
	if err := pruneAPI(ctx, c, apiID); err != nil {
		return err
	}
	if _, err := c.CreateDeployment(ctx, &apigateway.CreateDeploymentInput{RestApiId: api.Id, StageName: aws.String(backend.APIStage)}); err != nil {
		return fmt.Errorf("deploy api: %w", err)
	}
	rt.Deployed.APIID = apiID
	return nil
}

// pruneAPI checks the API kumo holds against backend.APIResources: each
// path once, with its ANY method integrated. CreateResource is not
// idempotent, and the SDK retries a call whose answer was lost (a 5xx or a
// reset connection under a loaded CI machine): the retry makes a second
// resource for the path, and the first, with no method, can win kumo's
// route match (its score ties), answering every request 403 "Missing
// Authentication Token". Such method-less copies are deleted; anything else
// amiss fails the deploy with what kumo holds.
func pruneAPI(ctx context.Context, c *apigateway.Client, apiID string) error {
	res, err := c.GetResources(ctx, &apigateway.GetResourcesInput{RestApiId: aws.String(apiID), Limit: aws.Int32(500)})
	if err != nil {
		return fmt.Errorf("get resources: %w", err)
	}
	want := map[string]bool{}
	for _, p := range backend.APIResources {
		want[p] = true
	}
	good := map[string]int{}
	var held []string
	for _, r := range res.Items {
		p := aws.ToString(r.Path)
		m, ok := r.ResourceMethods["ANY"]
		integrated := ok && m.MethodIntegration != nil
		held = append(held, fmt.Sprintf("%s(%s methods=%d)", p, aws.ToString(r.Id), len(r.ResourceMethods)))
		switch {
		case p == "/":
		case want[p] && integrated:
			good[p]++
		case len(r.ResourceMethods) == 0:
			if _, err := c.DeleteResource(ctx, &apigateway.DeleteResourceInput{RestApiId: aws.String(apiID), ResourceId: r.Id}); err != nil {
				return fmt.Errorf("delete a duplicate of api resource %s: %w", p, err)
			}
		}
	}
	for _, p := range backend.APIResources {
		if good[p] != 1 {
			return fmt.Errorf("api resource %s: %d integrated copies in kumo, want 1 (kumo holds %s)", p, good[p], strings.Join(held, ", "))
		}
	}
	return nil
}

// APIURL is the local API's base URL (send requests with APIHost as Host).
func (rt *Runtime) APIURL() string { return rt.Endpoint + "/" + backend.APIStage }

// APIHost is the Host header kumo routes the API by.
func (rt *Runtime) APIHost() string { return rt.Deployed.APIID + ".execute-api.localhost" }

// APIRequest sends one HTTP request to the local API Gateway, signed with
// SigV4 as the local runtime's caller (LocalCaller), as IAM authorization
// requires on AWS.
func (rt *Runtime) APIRequest(ctx context.Context, method, path string, body io.Reader, header http.Header) (*http.Response, []byte, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = io.ReadAll(body); err != nil {
			return nil, nil, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, rt.APIURL()+path, bytes.NewReader(payload))
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Host = rt.APIHost()
	if err := rt.sign(ctx, req, payload); err != nil {
		return nil, nil, fmt.Errorf("sign %s %s: %w", method, path, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// APIEndpoint is the local API's URL as a client configures it
// (http://<apiId>.execute-api.localhost:4566/v1). *.localhost names are
// loopback (RFC 6761): browsers resolve them so; Go clients dial 127.0.0.1.
func (rt *Runtime) APIEndpoint() string {
	return "http://" + rt.APIHost() + ":" + strings.TrimPrefix(FrontAddr, "127.0.0.1:") + "/" + backend.APIStage
}

// APICall sends one API request as mecctl would: a JSON body (if any) and
// the given headers.
func (rt *Runtime) APICall(ctx context.Context, method, path, body string, hdr map[string]string) (*http.Response, []byte, error) {
	h := http.Header{}
	for k, v := range hdr {
		h.Set(k, v)
	}
	if body != "" {
		h.Set("Content-Type", "application/json")
	}
	return rt.APIRequest(ctx, method, path, strings.NewReader(body), h)
}
