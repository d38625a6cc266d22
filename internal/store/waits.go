package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Wait is a command wait: an SSM command a workflow task waits on, with the
// task token to resume it and each target instance's status. The sender
// (the token and targets) and the status events write it in either order;
// whoever completes it claims it once and resumes the workflow.
type Wait struct {
	CommandID string
	Token     string
	ClusterID string
	Step      string
	Region    string
	// Instances are the command's targets.
	Instances []string
	// Statuses maps an instance to its last reported status.
	Statuses map[string]string
	// ResolvedToken is the token a claim already resumed ("" if none).
	ResolvedToken string
	// FailFast is a target the others wait on ("" if none): once it
	// failed, the command has failed, whatever the others still do.
	FailFast string
}

// Command waits outlive any task that can wait on them, then expire.
const (
	waitTTL         = 7 * 24 * time.Hour
	attrStatusPrefx = "st_"
)

func waitFrom(it map[string]types.AttributeValue, cmdID string) *Wait {
	w := &Wait{CommandID: cmdID, Token: strOf(it["token"]), ClusterID: strOf(it["clusterId"]), Step: strOf(it["step"]),
		Region: strOf(it["region"]), ResolvedToken: strOf(it["resolvedToken"]), FailFast: strOf(it["failFast"]), Statuses: map[string]string{}}
	if ss, ok := it["instances"].(*types.AttributeValueMemberSS); ok {
		w.Instances = append([]string(nil), ss.Value...)
		sort.Strings(w.Instances)
	}
	for k, v := range it {
		if id, ok := strings.CutPrefix(k, attrStatusPrefx); ok {
			w.Statuses[id] = strOf(v)
		}
	}
	return w
}

// RegisterWait stores w's token, cluster, step and region (the targets only
// if none are known yet: a re-registration keeps the first) and returns the
// wait as it now stands.
func (s *Store) RegisterWait(ctx context.Context, w Wait) (*Wait, error) {
	out, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.Table),
		Key:                      key(kindCmd, w.CommandID),
		UpdateExpression:         aws.String("SET #tok = :tok, clusterId = :c, step = :s, #reg = :r, instances = if_not_exists(instances, :i), failFast = :ff, #kind = :k, #ttl = :ttl"),
		ExpressionAttributeNames: map[string]string{"#tok": "token", "#reg": "region", "#ttl": attrTTL, "#kind": attrKind},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":tok": str(w.Token),
			":c":   str(w.ClusterID),
			":s":   str(w.Step),
			":r":   str(w.Region),
			":ff":  str(w.FailFast),
			":i":   &types.AttributeValueMemberSS{Value: w.Instances},
			":k":   str(kindCmd),
			":ttl": num(s.now().Add(waitTTL).Unix()),
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	if err != nil {
		return nil, fmt.Errorf("register command %s: %w", w.CommandID, err)
	}
	return waitFrom(out.Attributes, w.CommandID), nil
}

// SetWaitStatus records one instance's status of a registered command and
// returns the wait as it now stands; ErrNotFound when nobody registered the
// command (nothing is written: a status event never creates an item).
func (s *Store) SetWaitStatus(ctx context.Context, cmdID, instanceID, status string) (*Wait, error) {
	out, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.Table),
		Key:                       key(kindCmd, cmdID),
		UpdateExpression:          aws.String("SET #st = :st"),
		ConditionExpression:       aws.String("attribute_exists(#tok)"),
		ExpressionAttributeNames:  map[string]string{"#st": attrStatusPrefx + instanceID, "#tok": "token"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":st": str(status)},
		ReturnValues:              types.ReturnValueAllNew,
	})
	var cf *types.ConditionalCheckFailedException
	if errors.As(err, &cf) {
		return nil, fmt.Errorf("command %s: %w", cmdID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("record command status: %w", err)
	}
	return waitFrom(out.Attributes, cmdID), nil
}

// ClaimWait marks token resolved; false when another caller claimed it first.
func (s *Store) ClaimWait(ctx context.Context, cmdID, token string) (bool, error) {
	// A wait deleted meanwhile (its MEC cleaned up) is not made again.
	ok, err := applied(s.setIf(ctx, key(kindCmd, cmdID), "SET resolvedToken = :tok",
		"attribute_exists(#t) AND (attribute_not_exists(resolvedToken) OR resolvedToken <> :tok)", map[string]string{"#t": "token"},
		map[string]types.AttributeValue{":tok": str(token)}))
	if err != nil {
		return false, fmt.Errorf("claim command %s: %w", cmdID, err)
	}
	return ok, nil
}

// applied tells whether a conditional write was made: false, and no error,
// when its condition did not hold.
func applied(err error) (bool, error) {
	var cf *types.ConditionalCheckFailedException
	if errors.As(err, &cf) {
		return false, nil
	}
	return err == nil, err
}

// ReleaseWait undoes a claim of token whose resumption failed, so that the
// next status event or poll resolves the wait again.
func (s *Store) ReleaseWait(ctx context.Context, cmdID, token string) error {
	if _, err := applied(s.setIf(ctx, key(kindCmd, cmdID), "REMOVE resolvedToken", "resolvedToken = :tok", nil,
		map[string]types.AttributeValue{":tok": str(token)})); err != nil {
		return fmt.Errorf("release command %s: %w", cmdID, err)
	}
	return nil
}

// setIf updates the item at k with update, if condition holds.
func (s *Store) setIf(ctx context.Context, k map[string]types.AttributeValue, update, condition string, names map[string]string, values map[string]types.AttributeValue) error {
	_, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(s.Table), Key: k, UpdateExpression: aws.String(update), ConditionExpression: aws.String(condition),
		ExpressionAttributeNames: names, ExpressionAttributeValues: values,
	})
	return err
}

// DeleteWaits removes the waits of commands (a MEC's, once it is cleaned
// up); absent ones are fine. A later status event for them writes nothing.
func (s *Store) DeleteWaits(ctx context.Context, cmdIDs []string) error {
	for _, id := range cmdIDs {
		if _, err := s.DB.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.Table), Key: key(kindCmd, id)}); err != nil {
			return fmt.Errorf("delete command wait %s: %w", id, err)
		}
	}
	return nil
}

// GetWait reads a command's wait; ErrNotFound when there is none.
func (s *Store) GetWait(ctx context.Context, cmdID string) (*Wait, error) {
	out, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table), Key: key(kindCmd, cmdID), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("get command wait %s: %w", cmdID, err)
	}
	if out.Item == nil {
		return nil, fmt.Errorf("command wait %s: %w", cmdID, ErrNotFound)
	}
	return waitFrom(out.Item, cmdID), nil
}
