package store

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

	"github.com/mecd/mecd/internal/mec"
)

// Errors the store returns; callers map them with errors.Is.
var (
	ErrNotFound  = errors.New("mec not found")
	ErrNameTaken = errors.New("a live MEC already has this name")
	// ErrKeyTaken: the idempotency key of a Create is held by another MEC.
	ErrKeyTaken = errors.New("idempotency key already used")
	// ErrConflict: a concurrent write won; the caller may retry.
	ErrConflict = errors.New("concurrent update")
	// ErrNoChange, returned by an Update callback, skips the write.
	ErrNoChange = errors.New("no change")
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

// Store keeps MEC records and their companion items in one DynamoDB table.
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

// The table's key and TTL attributes (schema.go).
var (
	attrPK  = Table.HashKey
	attrTTL = Table.TTLAttribute
)

// Item kinds: the hash key is "<kind>#<id>".
const (
	kindName = "name"
	kindIdem = "idem"
	kindCmd  = "cmd"
)

func pk(kind, id string) string { return kind + "#" + id }

func key(kind, id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(pk(kind, id))}
}

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

// strOf and numOf read an attribute ("" and 0 when absent or of another type).
func strOf(av types.AttributeValue) string {
	if s, ok := av.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

func numOf(av types.AttributeValue) int64 {
	if n, ok := av.(*types.AttributeValueMemberN); ok {
		v, _ := strconv.ParseInt(n.Value, 10, 64)
		return v
	}
	return 0
}

func marshalOpts(o *attributevalue.EncoderOptions) { o.TagKey = "json" }

func unmarshalOpts(o *attributevalue.DecoderOptions) { o.TagKey = "json" }

// item renders m with the attributes the table's indexes and TTL read.
func (s *Store) item(m *mec.MEC) (map[string]types.AttributeValue, error) {
	it, err := attributevalue.MarshalMapWithOptions(m, marshalOpts)
	if err != nil {
		return nil, fmt.Errorf("marshal mec: %w", err)
	}
	delete(it, "progress") // computed for answers, never stored
	it[attrPK] = str(pk(kindMEC, m.ID))
	it[attrKind] = str(kindMEC)
	if m.ExpiresAt != nil {
		it[attrExpiresAtEpoch] = num(m.ExpiresAt.Unix())
	}
	if m.Status == mec.Deleted && s.Retention > 0 && m.DeletedAt != nil {
		it[attrTTL] = num(m.DeletedAt.Add(s.Retention).Unix())
	}
	return it, nil
}

func decode(it map[string]types.AttributeValue) (*mec.MEC, error) {
	var m mec.MEC
	if err := attributevalue.UnmarshalMapWithOptions(it, &m, unmarshalOpts); err != nil {
		return nil, fmt.Errorf("unmarshal mec: %w", err)
	}
	return &m, nil
}

// Get reads a record (strongly consistent).
func (s *Store) Get(ctx context.Context, id string) (*mec.MEC, error) {
	out, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table), Key: key(kindMEC, id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("get mec %s: %w", id, err)
	}
	if out.Item == nil {
		return nil, fmt.Errorf("get mec %s: %w", id, ErrNotFound)
	}
	return decode(out.Item)
}

// Update applies fn to the current record and writes it back only if nobody
// wrote in between (version check), re-reading and re-applying on conflict.
// fn may return ErrNoChange to skip the write. A record that stops holding
// its name (DELETED, or FAILED at resolve: mec.MEC.HoldsName) releases it in
// the same transaction.
func (s *Store) Update(ctx context.Context, id string, fn func(*mec.MEC) error) (*mec.MEC, error) {
	for attempt := 0; attempt < 8; attempt++ {
		m, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		held, prev := m.HoldsName(), m.Version
		if err := fn(m); err != nil {
			if errors.Is(err, ErrNoChange) {
				return m, nil
			}
			return nil, err
		}
		m.Version = prev + 1
		m.UpdatedAt = s.now()
		if m.Status == mec.Deleted && m.DeletedAt == nil {
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
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": num(int64(prev))},
		}
		if held && !m.HoldsName() {
			_, err = s.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
				{Put: put}, {Delete: s.releaseName(m)},
			}})
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

// cancellation returns the reason codes of a cancelled transaction (nil if
// err is not one).
func cancellation(err error) []string {
	var tc *types.TransactionCanceledException
	if !errors.As(err, &tc) {
		return nil
	}
	codes := make([]string, len(tc.CancellationReasons))
	for i, r := range tc.CancellationReasons {
		codes[i] = aws.ToString(r.Code)
	}
	return codes
}

func isConditionFailure(err error) bool {
	var cf *types.ConditionalCheckFailedException
	if errors.As(err, &cf) {
		return true
	}
	for _, c := range cancellation(err) {
		if c == "ConditionalCheckFailed" {
			return true
		}
	}
	return false
}
