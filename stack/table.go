package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/mecd/mecd/internal/store"
)

// Table is the MEC records table, shaped by store.Table.
type Table struct {
	constructs.Construct
	Table awsdynamodb.Table
	// IndexArns are the GSIs' ARNs: listing and sweeping query them by name.
	IndexArns []string
}

func newTable(scope constructs.Construct, id string, removal awscdk.RemovalPolicy) *Table {
	c := constructs.NewConstruct(scope, jsii.String(id))
	def := store.Table
	// On-demand: nothing to pay while idle but storage. AWS-managed key: no
	// monthly key fee, and nothing outside DynamoDB decrypts the records.
	t := awsdynamodb.NewTable(c, jsii.String("Mecs"), &awsdynamodb.TableProps{
		PartitionKey:                     &awsdynamodb.Attribute{Name: jsii.String(def.HashKey), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:                      awsdynamodb.BillingMode_PAY_PER_REQUEST,
		Encryption:                       awsdynamodb.TableEncryption_AWS_MANAGED,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{PointInTimeRecoveryEnabled: jsii.Bool(true)},
		TimeToLiveAttribute:              jsii.String(def.TTLAttribute),
		RemovalPolicy:                    removal,
	})
	var arns []string
	for _, g := range def.GSIs {
		t.AddGlobalSecondaryIndex(&awsdynamodb.GlobalSecondaryIndexProps{
			IndexName:      jsii.String(g.Name),
			PartitionKey:   &awsdynamodb.Attribute{Name: jsii.String(g.HashKey), Type: awsdynamodb.AttributeType_STRING},
			SortKey:        &awsdynamodb.Attribute{Name: jsii.String(g.RangeKey), Type: attributeType(g.RangeType)},
			ProjectionType: awsdynamodb.ProjectionType_ALL,
		})
		arns = append(arns, *t.TableArn()+"/index/"+g.Name)
	}
	return &Table{Construct: c, Table: t, IndexArns: arns}
}

func attributeType(t string) awsdynamodb.AttributeType {
	switch t {
	case "N":
		return awsdynamodb.AttributeType_NUMBER
	case "B":
		return awsdynamodb.AttributeType_BINARY
	}
	return awsdynamodb.AttributeType_STRING
}
