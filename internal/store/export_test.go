package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/sivchari/kumo"
)

// NewTestTable creates the table in a fresh in-process kumo (an AWS
// emulator), for tests that need DynamoDB and nothing else. kumo sends no
// CRC32, so this local client skips checking it. kumo stops with the test.
func NewTestTable(t testing.TB, prefix string) (*dynamodb.Client, string) {
	t.Helper()
	srv := kumo.NewServer()
	t.Cleanup(srv.Close)
	c := dynamodb.New(dynamodb.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials:                     credentials.NewStaticCredentialsProvider("test", "test", ""),
		DisableValidateResponseChecksum: true,
	})
	table := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
	if err := CreateTable(context.Background(), c, table); err != nil {
		t.Fatal(err)
	}
	return c, table
}
