package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TableAdmin is what creating the table needs; *dynamodb.Client satisfies it.
type TableAdmin interface {
	dynamodb.DescribeTableAPIClient
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
}

// CreateTable creates the table as the stack defines it (Table:
// keys, indexes, TTL), for the local runtime and tests; on AWS the stack
// makes it.
func CreateTable(ctx context.Context, c TableAdmin, name string) error {
	t := Table
	attrs := map[string]types.ScalarAttributeType{t.HashKey: types.ScalarAttributeTypeS}
	var gsis []types.GlobalSecondaryIndex
	for _, g := range t.GSIs {
		attrs[g.HashKey] = types.ScalarAttributeTypeS
		attrs[g.RangeKey] = types.ScalarAttributeType(g.RangeType)
		gsis = append(gsis, types.GlobalSecondaryIndex{
			IndexName: aws.String(g.Name),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(g.HashKey), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(g.RangeKey), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		})
	}
	names := make([]string, 0, len(attrs))
	for k := range attrs {
		names = append(names, k)
	}
	sort.Strings(names)
	var defs []types.AttributeDefinition
	for _, k := range names {
		defs = append(defs, types.AttributeDefinition{AttributeName: aws.String(k), AttributeType: attrs[k]})
	}
	_, err := c.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:              aws.String(name),
		BillingMode:            types.BillingModePayPerRequest,
		AttributeDefinitions:   defs,
		KeySchema:              []types.KeySchemaElement{{AttributeName: aws.String(t.HashKey), KeyType: types.KeyTypeHash}},
		GlobalSecondaryIndexes: gsis,
	})
	if err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	if err := dynamodb.NewTableExistsWaiter(c).Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, time.Minute); err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	_, err = c.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(t.TTLAttribute), Enabled: aws.Bool(true)},
	})
	if err != nil {
		return fmt.Errorf("table ttl: %w", err)
	}
	return nil
}
