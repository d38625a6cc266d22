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
}

// Command waits outlive any task that can wait on them, then expire.
const (
	waitTTL         = 7 * 24 * time.Hour
	statusOnlyTTL   = 24 * time.Hour // a status for a command nobody registered (not mecd's)
	attrStatusPrefx = "st_"
)

func waitFrom(it map[string]types.AttributeValue, cmdID string) *Wait {
	w := &Wait{CommandID: cmdID, Token: strOf(it["token"]), ClusterID: strOf(it["clusterId"]), Step: strOf(it["step"]),
		Region: strOf(it["region"]), ResolvedToken: strOf(it["resolvedToken"]), Statuses: map[string]string{}}
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
		UpdateExpression:         aws.String("SET #tok = :tok, clusterId = :c, step = :s, #reg = :r, instances = if_not_exists(instances, :i), #kind = :k, #ttl = :ttl"),
		ExpressionAttributeNames: map[string]string{"#tok": "token", "#reg": "region", "#ttl": attrTTL, "#kind": attrKind},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":tok": str(w.Token),
			":c":   str(w.ClusterID),
			":s":   str(w.Step),
			":r":   str(w.Region),
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

// SetWaitStatus records one instance's status of a command and returns the
// wait as it now stands.
func (s *Store) SetWaitStatus(ctx context.Context, cmdID, instanceID, status string) (*Wait, error) {
	out, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.Table),
		Key:                      key(kindCmd, cmdID),
		UpdateExpression:         aws.String("SET #st = :st, #ttl = if_not_exists(#ttl, :ttl)"),
		ExpressionAttributeNames: map[string]string{"#st": attrStatusPrefx + instanceID, "#ttl": attrTTL},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":st":  str(status),
			":ttl": num(s.now().Add(statusOnlyTTL).Unix()),
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	if err != nil {
		return nil, fmt.Errorf("record command status: %w", err)
	}
	return waitFrom(out.Attributes, cmdID), nil
}

// ClaimWait marks token resolved; false when another caller claimed it first.
func (s *Store) ClaimWait(ctx context.Context, cmdID, token string) (bool, error) {
	_, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.Table),
		Key:                       key(kindCmd, cmdID),
		UpdateExpression:          aws.String("SET resolvedToken = :tok"),
		ConditionExpression:       aws.String("attribute_not_exists(resolvedToken) OR resolvedToken <> :tok"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":tok": str(token)},
	})
	if err != nil {
		var cf *types.ConditionalCheckFailedException
		if errors.As(err, &cf) {
			return false, nil
		}
		return false, fmt.Errorf("claim command %s: %w", cmdID, err)
	}
	return true, nil
}

// ReleaseWait undoes a claim of token whose resumption failed, so that the
// next status event or poll resolves the wait again.
func (s *Store) ReleaseWait(ctx context.Context, cmdID, token string) error {
	_, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.Table),
		Key:                       key(kindCmd, cmdID),
		UpdateExpression:          aws.String("REMOVE resolvedToken"),
		ConditionExpression:       aws.String("resolvedToken = :tok"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":tok": str(token)},
	})
	var cf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &cf) {
		return fmt.Errorf("release command %s: %w", cmdID, err)
	}
	return nil
}
