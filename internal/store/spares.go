package store

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Spare is a node role and instance profile made ahead of any MEC, so that
// IAM has propagated it to EC2 by the time a launch takes it: a new profile
// is refused by RunInstances for about 10 s. Each spare is taken by one MEC
// and deleted with it; none is ever given back.
type Spare struct {
	Name       string // the role's and the profile's name
	ProfileArn string // "" while it is being made
	ClusterID  string // the MEC that took it ("" while free)
	CreatedAt  time.Time
}

// kindSpare items are listed by the byKind index (kind "spare", id the name).
const kindSpare = "spare"

// PutSpare records a spare before its role is made, so that a role under
// the spare prefix without an item is known to be left over.
func (s *Store) PutSpare(ctx context.Context, name string) error {
	_, err := s.DB.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.Table),
		Item: map[string]types.AttributeValue{
			attrPK: str(pk(kindSpare, name)), attrKind: str(kindSpare), attrID: str(name),
			"createdAt": str(s.now().UTC().Format(time.RFC3339Nano)),
		},
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": attrPK},
	})
	if err != nil {
		return fmt.Errorf("record spare %s: %w", name, err)
	}
	return nil
}

// SpareReady records a spare's instance profile: from now on it may be taken.
func (s *Store) SpareReady(ctx context.Context, name, profileArn string) error {
	if err := s.setIf(ctx, key(kindSpare, name), "SET profileArn = :a", "attribute_exists(#pk)", map[string]string{"#pk": attrPK},
		map[string]types.AttributeValue{":a": str(profileArn)}); err != nil {
		return fmt.Errorf("spare %s ready: %w", name, err)
	}
	return nil
}

// Spares lists every spare, free, being made or taken (the byKind index:
// eventually consistent, so a claim is conditional).
func (s *Store) Spares(ctx context.Context) ([]Spare, error) {
	p := dynamodb.NewQueryPaginator(s.DB, &dynamodb.QueryInput{
		TableName:                 aws.String(s.Table),
		IndexName:                 aws.String(indexByKind),
		KeyConditionExpression:    aws.String("#k = :k"),
		ExpressionAttributeNames:  map[string]string{"#k": attrKind},
		ExpressionAttributeValues: map[string]types.AttributeValue{":k": str(kindSpare)},
	})
	var out []Spare
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list spares: %w", err)
		}
		for _, it := range page.Items {
			created, _ := time.Parse(time.RFC3339Nano, strOf(it["createdAt"]))
			out = append(out, Spare{Name: strOf(it[attrID]), ProfileArn: strOf(it["profileArn"]), ClusterID: strOf(it["clusterId"]), CreatedAt: created})
		}
	}
	return out, nil
}

// ClaimSpare gives a ready, free spare to a MEC; false if another MEC took
// it first (or it is gone, or not ready).
func (s *Store) ClaimSpare(ctx context.Context, name, clusterID string) (bool, error) {
	ok, err := applied(s.setIf(ctx, key(kindSpare, name), "SET clusterId = :c", "attribute_exists(profileArn) AND attribute_not_exists(clusterId)", nil,
		map[string]types.AttributeValue{":c": str(clusterID)}))
	if err != nil {
		return false, fmt.Errorf("claim spare %s: %w", name, err)
	}
	return ok, nil
}

// DeleteSpare forgets a spare whose role is deleted.
func (s *Store) DeleteSpare(ctx context.Context, name string) error {
	if _, err := s.DB.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.Table), Key: key(kindSpare, name)}); err != nil {
		return fmt.Errorf("forget spare %s: %w", name, err)
	}
	return nil
}

// SparesIndex is the index Spares queries: the stack allows the functions
// that keep spares to query it and no other.
const SparesIndex = indexByKind
