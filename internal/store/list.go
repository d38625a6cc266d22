package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mecd/mecd/internal/mec"
)

// Listing bounds.
const (
	DefaultListLimit = 20
	MaxListLimit     = 100
)

// Errors List returns for a query the caller got wrong.
var (
	ErrInvalidQuery = errors.New("invalid list query")
	ErrBadToken     = errors.New("nextToken is not valid")
)

// ListQuery selects MEC records, newest first.
type ListQuery struct {
	Status mec.Status // "" for every status
	Region string     // "" for every region
	Limit  int        // 1..MaxListLimit; 0 means DefaultListLimit
	Token  string     // NextToken of the previous page, "" for the first
}

// Query bounds: a filtered page reads ahead in batches and gives up after a
// fixed number of calls, so one request costs bounded reads however sparse
// the matches are (the page may then be short, with a token to go on).
var (
	listFilteredBatch int32 = 200
	listMaxCalls            = 8
)

// maxTokenLen is far above any token List makes (three short strings).
const maxTokenLen = 512

// List returns one page of records and the token of the next page ("" after
// the last). Without a status it reads the byKind index, with one the
// byStatus index, both by id descending: ids sort by creation time. The
// token is the page's last key, opaque to callers and checked strictly
// when it comes back.
func (s *Store) List(ctx context.Context, q ListQuery) ([]*mec.MEC, string, error) {
	if q.Limit == 0 {
		q.Limit = DefaultListLimit
	}
	if q.Limit < 1 || q.Limit > MaxListLimit {
		return nil, "", fmt.Errorf("limit %d is not 1-%d: %w", q.Limit, MaxListLimit, ErrInvalidQuery)
	}
	if q.Status != "" && !q.Status.Valid() {
		return nil, "", fmt.Errorf("status %q: %w", q.Status, ErrInvalidQuery)
	}
	ix := indexFor(q.Status)
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.Table),
		IndexName:                 aws.String(ix.name),
		KeyConditionExpression:    aws.String("#h = :h"),
		ExpressionAttributeNames:  map[string]string{"#h": ix.hashAttr},
		ExpressionAttributeValues: map[string]types.AttributeValue{":h": &types.AttributeValueMemberS{Value: ix.hashValue}},
		ScanIndexForward:          aws.Bool(false),
	}
	if q.Token != "" {
		id, err := ix.decodeToken(q.Token)
		if err != nil {
			return nil, "", err
		}
		in.ExclusiveStartKey = ix.key(id)
	}
	// Only MEC items carry an id, so the indexes hold nothing else: the
	// region is the only filter.
	filtered := q.Region != ""
	if filtered {
		in.FilterExpression = aws.String("#r = :r")
		in.ExpressionAttributeNames["#r"] = attrRegion
		in.ExpressionAttributeValues[":r"] = &types.AttributeValueMemberS{Value: q.Region}
	}

	out := make([]*mec.MEC, 0, q.Limit)
	var last map[string]types.AttributeValue
	for range listMaxCalls {
		// One more than needed tells whether another page exists without a
		// trailing empty page; a filter reads ahead in larger batches.
		limit := int32(q.Limit-len(out)) + 1
		if filtered {
			limit = max(limit, listFilteredBatch)
		}
		in.Limit = aws.Int32(limit)
		page, err := s.DB.Query(ctx, in)
		if err != nil {
			return nil, "", fmt.Errorf("list mecs (%s): %w", ix.name, err)
		}
		for _, it := range page.Items {
			if len(out) == q.Limit {
				// More matches exist: the next page starts after the last one kept.
				return out, ix.encodeToken(out[len(out)-1].ID), nil
			}
			m, err := decode(it)
			if err != nil {
				return nil, "", err
			}
			out = append(out, m)
		}
		last = page.LastEvaluatedKey
		if len(last) == 0 {
			return out, "", nil
		}
		id, err := idFromKey(last)
		if err != nil {
			return nil, "", fmt.Errorf("list mecs (%s): %w", ix.name, err)
		}
		// Rebuilt rather than reused: a GSI start key needs the index's
		// attributes too, which some DynamoDB emulators leave out.
		in.ExclusiveStartKey = ix.key(id)
	}
	// Out of read budget before the page filled: go on from where reading stopped.
	id, err := idFromKey(last)
	if err != nil {
		return nil, "", fmt.Errorf("list mecs (%s): %w", ix.name, err)
	}
	return out, ix.encodeToken(id), nil
}

// index is the GSI a query reads, with the fixed hash key value it reads.
type index struct {
	name, hashAttr, hashValue string
}

func indexFor(st mec.Status) index {
	if st == "" {
		return index{name: indexByKind, hashAttr: attrKind, hashValue: kindMEC}
	}
	return index{name: indexByStatus, hashAttr: attrStatus, hashValue: string(st)}
}

// key is the full start key of a GSI query: the table key plus the index keys.
func (ix index) key(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrPK:      str(pk(kindMEC, id)),
		ix.hashAttr: str(ix.hashValue),
		attrID:      str(id),
	}
}

// encodeToken renders the start key as base64url JSON of its string values.
func (ix index) encodeToken(id string) string {
	b, _ := json.Marshal(map[string]string{attrPK: pk(kindMEC, id), ix.hashAttr: ix.hashValue, attrID: id}) // strings cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeToken accepts only a token encodeToken made for this same index and
// hash value: exactly the key attributes, all strings, consistent with each
// other. Anything else could make DynamoDB read from an arbitrary position
// or fail with an error that is the caller's fault.
func (ix index) decodeToken(tok string) (string, error) {
	if len(tok) > maxTokenLen {
		return "", ErrBadToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(tok, "="))
	if err != nil {
		return "", ErrBadToken
	}
	var attrs map[string]any
	if err := json.Unmarshal(raw, &attrs); err != nil || len(attrs) != 3 {
		return "", ErrBadToken
	}
	field := func(k string) string { v, _ := attrs[k].(string); return v }
	id := field(attrID)
	if !mec.ValidID(id) || field(attrPK) != pk(kindMEC, id) || field(ix.hashAttr) != ix.hashValue {
		return "", ErrBadToken
	}
	return id, nil
}

func idFromKey(k map[string]types.AttributeValue) (string, error) {
	id, ok := strings.CutPrefix(strOf(k[attrPK]), pk(kindMEC, ""))
	if !ok || id == "" {
		return "", fmt.Errorf("unexpected last evaluated key %v", k)
	}
	return id, nil
}

// expiredPages bounds one Expired call: pages of the expiry index read.
const expiredPages = 100

// Expired returns up to limit MECs in status whose expiry is at or before
// now, oldest expiry first; more says whether others are left for a next
// call. The index is eventually consistent, so every item is checked
// against its own attributes before it is returned.
func (s *Store) Expired(ctx context.Context, status mec.Status, now time.Time, limit int) (out []*mec.MEC, more bool, err error) {
	limit = max(limit, 1)
	in := &dynamodb.QueryInput{
		TableName:                aws.String(s.Table),
		IndexName:                aws.String(indexByExpiry),
		KeyConditionExpression:   aws.String("#s = :s AND #e <= :now"),
		ExpressionAttributeNames: map[string]string{"#s": attrStatus, "#e": attrExpiresAtEpoch},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":s":   str(string(status)),
			":now": num(now.Unix()),
		},
		Limit: aws.Int32(int32(limit + 1)),
	}
	for range expiredPages {
		page, err := s.DB.Query(ctx, in)
		if err != nil {
			return nil, false, fmt.Errorf("query expired %s MECs: %w", status, err)
		}
		for _, it := range page.Items {
			m, err := decode(it)
			if err != nil {
				return nil, false, err
			}
			if m.ExpiresAt == nil || m.ExpiresAt.After(now) || m.Status != status {
				continue
			}
			if len(out) == limit {
				return out, true, nil
			}
			out = append(out, m)
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out, false, nil
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
	return out, true, nil
}
