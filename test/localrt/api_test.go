package localrt

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	"github.com/sivchari/kumo"

	"github.com/mecd/mecd/internal/backend"
)

// A CreateResource the SDK retried after its answer was lost leaves a copy
// of the path with no method; kumo's route match may pick it and answer
// every request 403. pruneAPI deletes it, and refuses an API that lacks a
// path.
func TestPruneAPI(t *testing.T) {
	srv := kumo.NewServer()
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(DefaultRegion),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, "")))
	if err != nil {
		t.Fatal(err)
	}
	cfg.BaseEndpoint = aws.String(srv.URL)
	c := apigateway.NewFromConfig(cfg)

	for _, tc := range []struct {
		name    string
		skip    string // a path never created
		dupe    bool   // a method-less copy of /mecs
		wantErr string
	}{
		{name: "whole"},
		{name: "a retried create's copy", dupe: true},
		{name: "a path missing", skip: "/mecs/{id}/kubeconfig", wantErr: "api resource /mecs/{id}/kubeconfig: 0 integrated copies"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api, err := c.CreateRestApi(ctx, &apigateway.CreateRestApiInput{Name: aws.String(tc.name)})
			if err != nil {
				t.Fatal(err)
			}
			ids := map[string]string{}
			res, err := c.GetResources(ctx, &apigateway.GetResourcesInput{RestApiId: api.Id})
			if err != nil {
				t.Fatal(err)
			}
			ids["/"] = aws.ToString(res.Items[0].Id)
			create := func(p string, method bool) {
				t.Helper()
				parent := p[:strings.LastIndex(p, "/")]
				if parent == "" {
					parent = "/"
				}
				r, err := c.CreateResource(ctx, &apigateway.CreateResourceInput{RestApiId: api.Id, ParentId: aws.String(ids[parent]),
					PathPart: aws.String(p[strings.LastIndex(p, "/")+1:])})
				if err != nil {
					t.Fatal(err)
				}
				if !method {
					return
				}
				ids[p] = aws.ToString(r.Id)
				if _, err := c.PutMethod(ctx, &apigateway.PutMethodInput{RestApiId: api.Id, ResourceId: r.Id, HttpMethod: aws.String("ANY"), AuthorizationType: aws.String("AWS_IAM")}); err != nil {
					t.Fatal(err)
				}
				if _, err := c.PutIntegration(ctx, &apigateway.PutIntegrationInput{RestApiId: api.Id, ResourceId: r.Id, HttpMethod: aws.String("ANY"),
					Type: "AWS_PROXY", IntegrationHttpMethod: aws.String("POST"), Uri: aws.String("arn:aws:apigateway:us-east-1:lambda:path/x")}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.dupe {
				create("/mecs", false)
			}
			for _, p := range backend.APIResources { // parents first
				if p != tc.skip {
					create(p, true)
				}
			}
			err = pruneAPI(ctx, c, aws.ToString(api.Id))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("pruneAPI: %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			after, err := c.GetResources(ctx, &apigateway.GetResourcesInput{RestApiId: api.Id})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(after.Items), len(backend.APIResources)+1; got != want {
				t.Errorf("%d resources after the prune, want %d (the paths and /)", got, want)
			}
			for _, r := range after.Items {
				if aws.ToString(r.Path) != "/" && r.ResourceMethods["ANY"].MethodIntegration == nil {
					t.Errorf("%s (%s) kept without an integrated method", aws.ToString(r.Path), aws.ToString(r.Id))
				}
			}
		})
	}
}
