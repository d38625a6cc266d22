package record

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Errors the store returns; callers map them with errors.Is.
var (
	ErrNotFound  = errors.New("mec not found")
	ErrNameTaken = errors.New("a live MEC already has this name")
	ErrConflict  = errors.New("concurrent update")
)

// DynamoAPI is the part of the DynamoDB client the store uses.
type DynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

var _ DynamoAPI = (*dynamodb.Client)(nil)

// Store keeps MEC records in one DynamoDB table.
type Store struct {
	DB        DynamoAPI
	Table     string
	Retention time.Duration // how long DELETED records are kept (TTL)
	Now       func() time.Time
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Keys of the item kinds.
func mecKey(id string) string    { return "mec#" + id }
func nameKey(name string) string { return "name#" + name }

func key(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}}
}

func marshalOpts(o *attributevalue.EncoderOptions) { o.TagKey = "json" }

func unmarshalOpts(o *attributevalue.DecoderOptions) { o.TagKey = "json" }

// item renders m with the index attributes the table's GSIs need.
func (s *Store) item(m *MEC) (map[string]types.AttributeValue, error) {
	it, err := attributevalue.MarshalMapWithOptions(m, marshalOpts)
	if err != nil {
		return nil, fmt.Errorf("marshal mec: %w", err)
	}
	it["pk"] = &types.AttributeValueMemberS{Value: mecKey(m.ID)}
	it["kind"] = &types.AttributeValueMemberS{Value: "mec"}
	if m.ExpiresAt != nil {
		it["expiresAtEpoch"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(m.ExpiresAt.Unix(), 10)}
	}
	if m.Status == Deleted && s.Retention > 0 && m.DeletedAt != nil {
		it["ttl"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(m.DeletedAt.Add(s.Retention).Unix(), 10)}
	}
	return it, nil
}

// Decode turns a table item into a MEC.
func Decode(it map[string]types.AttributeValue) (*MEC, error) {
	var m MEC
	if err := attributevalue.UnmarshalMapWithOptions(it, &m, unmarshalOpts); err != nil {
		return nil, fmt.Errorf("unmarshal mec: %w", err)
	}
	return &m, nil
}

// Create writes a new record and claims its name in one transaction; extra
// items (an idempotency record) join the same transaction.
func (s *Store) Create(ctx context.Context, m *MEC, extra ...types.TransactWriteItem) error {
	now := s.now()
	m.CreatedAt, m.UpdatedAt, m.Version = now, now, 1
	it, err := s.item(m)
	if err != nil {
		return err
	}
	claim := map[string]types.AttributeValue{
		"pk":        &types.AttributeValueMemberS{Value: nameKey(m.Name)},
		"kind":      &types.AttributeValueMemberS{Value: "name"},
		"clusterId": &types.AttributeValueMemberS{Value: m.ID},
	}
	items := []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(s.Table), Item: it, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
		{Put: &types.Put{TableName: aws.String(s.Table), Item: claim, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
	}
	items = append(items, extra...)
	_, err = s.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	if err != nil {
		var tc *types.TransactionCanceledException
		if errors.As(err, &tc) {
			for i, r := range tc.CancellationReasons {
				if aws.ToString(r.Code) == "ConditionalCheckFailed" {
					switch i {
					case 1:
						return ErrNameTaken
					case 0:
						return fmt.Errorf("create mec %s: id exists: %w", m.ID, ErrConflict)
					default:
						return &ExtraConditionError{Index: i - 2}
					}
				}
			}
		}
		return fmt.Errorf("create mec: %w", err)
	}
	return nil
}

// ExtraConditionError says which extra transaction item's condition failed.
type ExtraConditionError struct{ Index int }

func (e *ExtraConditionError) Error() string {
	return fmt.Sprintf("condition of extra item %d failed", e.Index)
}

// NameOwner returns the id of the live MEC holding name ("" if free).
func (s *Store) NameOwner(ctx context.Context, name string) (string, error) {
	out, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table), Key: key(nameKey(name)), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return "", fmt.Errorf("get name claim: %w", err)
	}
	if out.Item == nil {
		return "", nil
	}
	v, _ := out.Item["clusterId"].(*types.AttributeValueMemberS)
	if v == nil {
		return "", nil
	}
	return v.Value, nil
}

// Get reads a record (strongly consistent).
func (s *Store) Get(ctx context.Context, id string) (*MEC, error) {
	out, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table), Key: key(mecKey(id)), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("get mec %s: %w", id, err)
	}
	if out.Item == nil {
		return nil, fmt.Errorf("get mec %s: %w", id, ErrNotFound)
	}
	return Decode(out.Item)
}

// Update applies fn to the current record and writes it back only if nobody
// wrote in between (version check), re-reading and re-applying on conflict.
// fn may return ErrNoChange to skip the write. Moving to DELETED releases the
// name in the same transaction.
func (s *Store) Update(ctx context.Context, id string, fn func(*MEC) error) (*MEC, error) {
	for attempt := 0; attempt < 8; attempt++ {
		m, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		before := m.Status
		prev := m.Version
		if err := fn(m); err != nil {
			if errors.Is(err, ErrNoChange) {
				return m, nil
			}
			return nil, err
		}
		m.Version = prev + 1
		m.UpdatedAt = s.now()
		if m.Status == Deleted && m.DeletedAt == nil {
			t := m.UpdatedAt
			m.DeletedAt = &t
		}
		it, err := s.item(m)
		if err != nil {
			return nil, err
		}
		put := &types.Put{
			TableName:                 aws.String(s.Table),
			Item:                      it,
			ConditionExpression:       aws.String("version = :v"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: strconv.Itoa(prev)}},
		}
		if m.Status == Deleted && before != Deleted {
			err = s.putReleasingName(ctx, put, m)
		} else {
			_, err = s.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: put.TableName, Item: put.Item,
				ConditionExpression: put.ConditionExpression, ExpressionAttributeValues: put.ExpressionAttributeValues})
		}
		if err == nil {
			return m, nil
		}
		if !isConditionFailure(err) {
			return nil, fmt.Errorf("update mec %s: %w", id, err)
		}
		// Someone else wrote first: back off briefly and re-apply on their version.
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("update mec %s: %w", id, ctx.Err())
		case <-time.After(time.Duration(attempt+1) * 15 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("update mec %s: %w", id, ErrConflict)
}

// ErrNoChange, returned by an Update callback, skips the write.
var ErrNoChange = errors.New("no change")

func (s *Store) putReleasingName(ctx context.Context, put *types.Put, m *MEC) error {
	_, err := s.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: put},
		{Delete: &types.Delete{
			TableName:                 aws.String(s.Table),
			Key:                       key(nameKey(m.Name)),
			ConditionExpression:       aws.String("attribute_not_exists(pk) OR clusterId = :id"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":id": &types.AttributeValueMemberS{Value: m.ID}},
		}},
	}})
	return err
}

func isConditionFailure(err error) bool {
	var cf *types.ConditionalCheckFailedException
	if errors.As(err, &cf) {
		return true
	}
	var tc *types.TransactionCanceledException
	if errors.As(err, &tc) {
		for _, r := range tc.CancellationReasons {
			if aws.ToString(r.Code) == "ConditionalCheckFailed" {
				return true
			}
		}
	}
	return false
}
