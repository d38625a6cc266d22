package store

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mecd/mecd/internal/backend"
	"github.com/mecd/mecd/internal/mec"
)

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
		IndexName:                aws.String(backend.IndexByExpiry),
		KeyConditionExpression:   aws.String("#s = :s AND #e <= :now"),
		ExpressionAttributeNames: map[string]string{"#s": backend.AttrStatus, "#e": backend.AttrExpiresAtEpoch},
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
