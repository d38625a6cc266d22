package store

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mecd/mecd/internal/mec"
)

// Idempotency is a claimed Idempotency-Key: which MEC it made, for which
// spec, until when it answers.
type Idempotency struct {
	Key       string
	SpecHash  string
	ClusterID string
	ExpiresAt time.Time
}

// Create writes a new record and claims its name in one transaction, and
// with idem also the idempotency key (an expired claim is taken over:
// DynamoDB's TTL deletes lazily, up to days late). It fails with
// ErrNameTaken, ErrKeyTaken (DynamoDB reports only the first failed
// condition: the name before the key) or ErrConflict (a concurrent
// transaction on the same items; worth retrying).
func (s *Store) Create(ctx context.Context, m *mec.MEC, idem *Idempotency) error {
	now := s.now()
	m.CreatedAt, m.UpdatedAt, m.Version = now, now, 1
	it, err := s.item(m)
	if err != nil {
		return err
	}
	claim := key(kindName, m.Name)
	claim[attrKind] = str(kindName)
	claim["clusterId"] = str(m.ID)
	items := []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(s.Table), Item: it, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
		{Put: &types.Put{TableName: aws.String(s.Table), Item: claim, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
	}
	if idem != nil {
		ik := key(kindIdem, idem.Key)
		ik[attrKind] = str(kindIdem)
		ik["clusterId"] = str(m.ID)
		ik["specHash"] = str(idem.SpecHash)
		ik[attrTTL] = num(idem.ExpiresAt.Unix())
		items = append(items, types.TransactWriteItem{Put: &types.Put{
			TableName:                 aws.String(s.Table),
			Item:                      ik,
			ConditionExpression:       aws.String("attribute_not_exists(pk) OR #ttl < :now"),
			ExpressionAttributeNames:  map[string]string{"#ttl": attrTTL},
			ExpressionAttributeValues: map[string]types.AttributeValue{":now": num(now.Unix())},
		}})
	}
	_, err = s.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	if err == nil {
		return nil
	}
	for i, code := range cancellation(err) {
		switch {
		case code == "ConditionalCheckFailed" && i == 0:
			return fmt.Errorf("create mec %s: id exists: %w", m.ID, ErrConflict)
		case code == "ConditionalCheckFailed" && i == 1:
			return ErrNameTaken
		case code == "ConditionalCheckFailed":
			return ErrKeyTaken
		case code == "TransactionConflict":
			return fmt.Errorf("create mec %s: %w", m.ID, ErrConflict)
		}
	}
	return fmt.Errorf("create mec: %w", err)
}

// NameOwner returns the id of the live MEC holding name ("" if free).
func (s *Store) NameOwner(ctx context.Context, name string) (string, error) {
	out, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table), Key: key(kindName, name), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return "", fmt.Errorf("get name claim: %w", err)
	}
	return strOf(out.Item["clusterId"]), nil
}

// releaseName deletes m's name claim if m still holds it.
func (s *Store) releaseName(m *mec.MEC) *types.Delete {
	return &types.Delete{
		TableName:                 aws.String(s.Table),
		Key:                       key(kindName, m.Name),
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR clusterId = :id"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": str(m.ID)},
	}
}

// Idempotency returns the live claim of key, or nil when the key is free
// (never claimed, or expired).
func (s *Store) Idempotency(ctx context.Context, idemKey string) (*Idempotency, error) {
	out, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table), Key: key(kindIdem, idemKey), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("get idempotency key: %w", err)
	}
	if out.Item == nil {
		return nil, nil
	}
	idem := &Idempotency{Key: idemKey, SpecHash: strOf(out.Item["specHash"]), ClusterID: strOf(out.Item["clusterId"])}
	if ttl := numOf(out.Item[attrTTL]); ttl != 0 {
		idem.ExpiresAt = time.Unix(ttl, 0).UTC()
		if ttl < s.now().Unix() {
			return nil, nil
		}
	}
	return idem, nil
}
