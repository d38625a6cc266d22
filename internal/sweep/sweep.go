// Package sweep tears down expired MECs: run by an EventBridge schedule, it
// finds READY and FAILED MECs past expiresAt through the byExpiry index and
// starts their teardown. The teardown's fixed execution name makes a double
// start (two sweeps, or a sweep and a DELETE) harmless.
package sweep

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mecd/mecd/internal/record"
	"github.com/mecd/mecd/internal/workflow"
)

// Sweeper starts the teardown of expired MECs.
type Sweeper struct {
	Store       *record.Store
	SFN         workflow.Starter
	TeardownArn string
	// Batch bounds the teardowns started per run; the next run takes the rest.
	Batch int
	Log   *slog.Logger
	Now   func() time.Time
}

// Report says what one run did.
type Report struct {
	Expired  int      `json:"expired"`
	Started  []string `json:"started"`
	Running  []string `json:"alreadyRunning"`
	Deferred bool     `json:"deferred"` // more expired MECs than the batch: the next run continues
}

// Statuses whose MECs expire.
var sweptStatuses = []record.Status{record.Ready, record.Failed}

// Run handles one scheduled event.
func (s *Sweeper) Run(ctx context.Context, ev events.CloudWatchEvent) (Report, error) {
	now := time.Now().UTC()
	if s.Now != nil {
		now = s.Now().UTC()
	}
	var rep Report
	for _, status := range sweptStatuses {
		var start map[string]dtypes.AttributeValue
		for page := 0; page < 100; page++ { // bounded: 100 pages of the index per status
			out, err := s.Store.DB.Query(ctx, &dynamodb.QueryInput{
				TableName:                aws.String(s.Store.Table),
				IndexName:                aws.String("byExpiry"),
				KeyConditionExpression:   aws.String("#s = :s AND expiresAtEpoch <= :now"),
				ExpressionAttributeNames: map[string]string{"#s": "status"},
				ExpressionAttributeValues: map[string]dtypes.AttributeValue{
					":s":   &dtypes.AttributeValueMemberS{Value: string(status)},
					":now": &dtypes.AttributeValueMemberN{Value: strconv.FormatInt(now.Unix(), 10)},
				},
				ExclusiveStartKey: start,
				Limit:             aws.Int32(int32(max(s.Batch, 1))),
			})
			if err != nil {
				return rep, fmt.Errorf("query expired %s MECs: %w", status, err)
			}
			for _, it := range out.Items {
				m, err := record.Decode(it)
				if err != nil {
					return rep, err
				}
				if m.ExpiresAt == nil || m.ExpiresAt.After(now) || m.Status != status {
					continue // the index is eventually consistent: trust only the item
				}
				rep.Expired++
				if len(rep.Started)+len(rep.Running) >= s.Batch {
					rep.Deferred = true
					continue
				}
				arn, started, err := workflow.StartTeardown(ctx, s.SFN, s.TeardownArn, m)
				if err != nil {
					return rep, err
				}
				if started {
					rep.Started = append(rep.Started, m.ID)
					if _, err := s.Store.Update(ctx, m.ID, func(r *record.MEC) error { r.TeardownExecutionArn = arn; return nil }); err != nil {
						return rep, err
					}
					s.Log.InfoContext(ctx, "teardown started for an expired MEC", "clusterId", m.ID, "name", m.Name,
						"status", status, "expiresAt", m.ExpiresAt.Format(time.RFC3339), "execution", arn)
				} else {
					rep.Running = append(rep.Running, m.ID)
					s.Log.InfoContext(ctx, "teardown already running", "clusterId", m.ID, "execution", arn)
				}
			}
			start = out.LastEvaluatedKey
			if len(start) == 0 || rep.Deferred {
				break
			}
		}
	}
	s.Log.InfoContext(ctx, "sweep done", "event", ev.ID, "expired", rep.Expired, "started", len(rep.Started),
		"alreadyRunning", len(rep.Running), "deferred", rep.Deferred)
	return rep, nil
}
