package store

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// kindLock items are locks of runs that must not overlap.
const kindLock = "lock"

// Lock takes the lock name for owner until until, unless another owner
// holds it and its time has not passed. A lock outlives a run that died
// only until its own until; its TTL removes the item later.
func (s *Store) Lock(ctx context.Context, name, owner string, until time.Time) (bool, error) {
	now := s.now()
	_, err := s.DB.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.Table),
		Item: map[string]types.AttributeValue{
			attrPK: str(pk(kindLock, name)), "owner": str(owner), "until": num(until.Unix()),
			attrTTL: num(until.Add(time.Hour).Unix()),
		},
		ConditionExpression:       aws.String("attribute_not_exists(#pk) OR #until < :now OR #owner = :owner"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK, "#until": "until", "#owner": "owner"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": num(now.Unix()), ":owner": str(owner)},
	})
	switch {
	case err == nil:
		return true, nil
	case isConditionFailure(err):
		return false, nil
	}
	return false, fmt.Errorf("lock %s: %w", name, err)
}

// Unlock gives the lock back if owner holds it.
func (s *Store) Unlock(ctx context.Context, name, owner string) error {
	_, err := s.DB.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(s.Table), Key: key(kindLock, name),
		ConditionExpression:       aws.String("#owner = :owner"),
		ExpressionAttributeNames:  map[string]string{"#owner": "owner"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":owner": str(owner)},
	})
	if err != nil && !isConditionFailure(err) {
		return fmt.Errorf("unlock %s: %w", name, err)
	}
	return nil
}
