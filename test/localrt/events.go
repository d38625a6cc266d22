package localrt

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	etypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
)

// eventSink puts the simulator's SSM events on kumo's default bus in the
// backend's home region. On AWS, SSM emits them in the MEC's region and the
// stack's per-region forwarder rule sends them to the home bus; this does
// the same in one step.
type eventSink struct {
	cfg aws.Config
}

func newEventSink(cfg aws.Config) *eventSink { return &eventSink{cfg: cfg} }

// PutEvent puts one event on the home region's bus, whatever region it comes from.
func (s *eventSink) PutEvent(ctx context.Context, region, source, detailType string, resources []string, detail any) error {
	b, err := json.Marshal(detail)
	if err != nil {
		return fmt.Errorf("put event: %w", err)
	}
	c := eventbridge.NewFromConfig(s.cfg)
	out, err := c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []etypes.PutEventsRequestEntry{{
		Source:     aws.String(source),
		DetailType: aws.String(detailType),
		Detail:     aws.String(string(b)),
		Resources:  resources,
	}}})
	if err != nil {
		return fmt.Errorf("put event: %w", err)
	}
	if out.FailedEntryCount > 0 {
		return fmt.Errorf("put event: %s", aws.ToString(out.Entries[0].ErrorMessage))
	}
	return nil
}
