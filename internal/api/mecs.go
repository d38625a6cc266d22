package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/mecd/mecd/internal/record"
	"github.com/mecd/mecd/internal/spec"
	"github.com/mecd/mecd/internal/workflow"
)

// StepStart is the progress step of starting the provisioning execution:
// it appears in a record only when that start failed.
const StepStart = "start"

const (
	// idempotencyTTL is how long a key keeps answering with its MEC.
	idempotencyTTL = 24 * time.Hour
	// resumeAfter: a replayed request finding its MEC still without an
	// execution this long after creation takes the original request for
	// dead and starts the provisioning itself. Starting twice is harmless
	// (the execution name is the cluster id); waiting only saves calls.
	resumeAfter = 5 * time.Second
	// createAttempts bounds retries of a create transaction that lost a race
	// (TransactionConflict, or a name released in between).
	createAttempts = 5
)

var reIdempotencyKey = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)

func (h *Handler) defaults() spec.Defaults {
	return spec.Defaults{Region: h.Env.Region, Regions: h.Env.AllowedRegions, Now: h.now}
}

// create serves POST /mecs. One transaction writes the record, its name
// claim and (with a key) the idempotency item, so neither a live name nor a
// key can ever be taken twice; every failed condition is then explained by
// reading what won.
func (h *Handler) create(ctx context.Context, r *request) (events.APIGatewayProxyResponse, error) {
	body, err := r.body()
	if err != nil {
		return events.APIGatewayProxyResponse{}, err
	}
	key, err := r.idempotencyKey()
	if err != nil {
		return events.APIGatewayProxyResponse{}, err
	}
	sp, err := spec.Parse(body, h.defaults())
	if err != nil {
		var ve *spec.ValidationError
		if errors.As(err, &ve) {
			return events.APIGatewayProxyResponse{}, validationError("the MEC spec is not valid", ve.Fields)
		}
		return events.APIGatewayProxyResponse{}, fmt.Errorf("parse spec: %w", err)
	}
	hash := sp.Hash()
	now := h.now()
	m := &record.MEC{ID: record.NewID(now), Name: sp.Name, Status: record.Creating, Region: sp.Region, Spec: sp, ExpiresAt: sp.ExpiresAt}
	m.StartStep(workflow.StepRecord, now)
	m.EndStep(workflow.StepRecord, record.Succeeded, "created by the API", now)

	for attempt := 1; ; attempt++ {
		var extra []types.TransactWriteItem
		if key != "" {
			extra = append(extra, h.idempotencyPut(key, m.ID, hash, now))
		}
		err := h.Store.Create(ctx, m, extra...)
		if err == nil {
			break
		}
		var xc *record.ExtraConditionError
		taken := errors.Is(err, record.ErrNameTaken)
		if !taken && !errors.As(err, &xc) && !transactionConflict(err) {
			return events.APIGatewayProxyResponse{}, err
		}
		// DynamoDB reports the first failed condition only (the name before
		// the key), so a key is always looked up: a repeat of a request that
		// won must get its answer, not a 409.
		if key != "" {
			if resp, ok, err := h.replay(ctx, key, hash); err != nil || ok {
				return resp, err
			}
		}
		if taken {
			owner, err := h.Store.NameOwner(ctx, sp.Name)
			if err != nil {
				return events.APIGatewayProxyResponse{}, err
			}
			if owner != "" {
				return events.APIGatewayProxyResponse{}, &Error{Status: http.StatusConflict, Code: CodeNameTaken,
					Message: fmt.Sprintf("a live MEC named %q already exists: %s; delete it or choose another name", sp.Name, owner)}
			}
			// Released since: try again.
		}
		if attempt == createAttempts {
			return events.APIGatewayProxyResponse{}, unavailable("too many concurrent changes; try again")
		}
		if err := sleep(ctx, time.Duration(attempt)*20*time.Millisecond); err != nil {
			return events.APIGatewayProxyResponse{}, err
		}
	}
	h.log().InfoContext(ctx, "mec created", "clusterId", m.ID, "name", m.Name, "region", m.Region, "idempotent", key != "")
	m, err = h.provision(ctx, m)
	if err != nil {
		return events.APIGatewayProxyResponse{}, err
	}
	return accepted(m)
}

func (r *request) idempotencyKey() (string, error) {
	const name = "idempotency-key"
	key, ok := r.header[name]
	if !ok {
		return "", nil
	}
	msg := ""
	switch {
	case r.repeated[name]:
		msg = "is given more than once; give one key"
	case !reIdempotencyKey.MatchString(key):
		msg = fmt.Sprintf("must be 1-%d visible ASCII characters (no spaces), such as a UUID", MaxIdempotencyKeyLen)
	default:
		return key, nil
	}
	return "", validationError("invalid "+IdempotencyHeader+" header", map[string]string{IdempotencyHeader: msg})
}

func idempotencyKeyAttr(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "idem#" + key}}
}

// idempotencyPut claims the key for this MEC and spec. An expired item is
// claimed over: DynamoDB's TTL deletes lazily, up to days late.
func (h *Handler) idempotencyPut(key, id, hash string, now time.Time) types.TransactWriteItem {
	it := idempotencyKeyAttr(key)
	it["kind"] = &types.AttributeValueMemberS{Value: "idem"}
	it["clusterId"] = &types.AttributeValueMemberS{Value: id}
	it["specHash"] = &types.AttributeValueMemberS{Value: hash}
	it["ttl"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Add(idempotencyTTL).Unix(), 10)}
	return types.TransactWriteItem{Put: &types.Put{
		TableName:                 aws.String(h.Store.Table),
		Item:                      it,
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR #ttl < :now"),
		ExpressionAttributeNames:  map[string]string{"#ttl": "ttl"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Unix(), 10)}},
	}}
}

// replay answers a request whose key is already claimed: the same spec gets
// the MEC made for it, another spec a 422. ok is false when the key is free
// (never claimed, or expired).
func (h *Handler) replay(ctx context.Context, key, hash string) (events.APIGatewayProxyResponse, bool, error) {
	out, err := h.Store.DB.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(h.Store.Table), Key: idempotencyKeyAttr(key), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return events.APIGatewayProxyResponse{}, false, fmt.Errorf("get idempotency key: %w", err)
	}
	str := func(k string) string {
		if v, ok := out.Item[k].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	if out.Item == nil || idempotencyExpired(out.Item, h.now()) {
		return events.APIGatewayProxyResponse{}, false, nil
	}
	id := str("clusterId")
	if str("specHash") != hash {
		return events.APIGatewayProxyResponse{}, true, &Error{Status: http.StatusUnprocessableEntity, Code: CodeIdempotencyKeyReused,
			Message: fmt.Sprintf("this %s was used for another MEC spec (MEC %s); send a new key with a different request", IdempotencyHeader, id)}
	}
	m, err := h.Store.Get(ctx, id)
	if err != nil {
		return events.APIGatewayProxyResponse{}, true, fmt.Errorf("idempotency key's mec: %w", err)
	}
	if h.resumable(m) {
		h.log().InfoContext(ctx, "resuming an interrupted create", "clusterId", m.ID, "status", m.Status)
		if m, err = h.provision(ctx, m); err != nil {
			return events.APIGatewayProxyResponse{}, true, err
		}
	}
	resp, err := accepted(m)
	return resp, true, err
}

func idempotencyExpired(it map[string]types.AttributeValue, now time.Time) bool {
	n, _ := it["ttl"].(*types.AttributeValueMemberN)
	if n == nil {
		return false
	}
	ttl, err := strconv.ParseInt(n.Value, 10, 64)
	return err == nil && ttl < now.Unix()
}

// resumable says whether a replay should (re)start a MEC's provisioning: the
// request that created it died before starting it, or failed to start it.
func (h *Handler) resumable(m *record.MEC) bool {
	if m.ExecutionArn != "" {
		return false
	}
	switch m.Status {
	case record.Creating:
		return h.now().Sub(m.CreatedAt) >= resumeAfter
	case record.Failed:
		return m.FailedStep == StepStart
	}
	return false
}

// provision starts m's provisioning and records the execution. If the start
// fails the record becomes FAILED (nothing runs, nothing was launched) and
// the caller gets a 503; a repeat with the same key starts it again.
func (h *Handler) provision(ctx context.Context, m *record.MEC) (*record.MEC, error) {
	if m.Status == record.Failed {
		var err error
		m, err = h.Store.Update(ctx, m.ID, func(r *record.MEC) error {
			if r.Status != record.Failed || r.FailedStep != StepStart || r.ExecutionArn != "" {
				return record.ErrNoChange
			}
			r.Status, r.FailedStep, r.FailureCause = record.Creating, "", ""
			return nil
		})
		if err != nil || m.Status != record.Creating {
			return m, err
		}
	}
	arn, err := workflow.StartProvision(ctx, h.SFN, h.Env.ProvisionSMArn, m)
	if err != nil {
		h.log().ErrorContext(ctx, "start provisioning", "clusterId", m.ID, "error", err)
		cause := "provisioning could not be started"
		if c := awsCode(err); c != "" {
			cause += " (Step Functions: " + c + ")"
		}
		cause += "; repeat the request with the same " + IdempotencyHeader + " to retry, or delete this MEC"
		now := h.now()
		if _, uerr := h.Store.Update(ctx, m.ID, func(r *record.MEC) error {
			if r.Status != record.Creating || r.ExecutionArn != "" {
				return record.ErrNoChange
			}
			r.Status, r.FailedStep, r.FailureCause = record.Failed, StepStart, cause
			r.EndStep(StepStart, record.StepError, cause, now)
			return nil
		}); uerr != nil {
			// Still CREATING without an execution: a replay resumes it.
			h.log().ErrorContext(ctx, "record failed start", "clusterId", m.ID, "error", uerr)
		}
		return nil, unavailable(fmt.Sprintf("MEC %s was recorded but its provisioning could not be started; it is FAILED. "+
			"Repeat the request with the same %s to retry, or delete it", m.ID, IdempotencyHeader))
	}
	updated, err := h.Store.Update(ctx, m.ID, func(r *record.MEC) error {
		if r.ExecutionArn == arn {
			return record.ErrNoChange
		}
		r.ExecutionArn = arn
		return nil
	})
	if err != nil {
		// The execution runs and reads its record by id; a replay or the
		// next DELETE finds the ARN again from the execution name.
		h.log().WarnContext(ctx, "record execution arn", "clusterId", m.ID, "error", err)
		m.ExecutionArn = arn
		return m, nil
	}
	return updated, nil
}

func accepted(m *record.MEC) (events.APIGatewayProxyResponse, error) {
	return jsonResponse(http.StatusAccepted, m, map[string]string{"Location": "/mecs/" + m.ID})
}

// list serves GET /mecs.
func (h *Handler) list(ctx context.Context, r *request) (events.APIGatewayProxyResponse, error) {
	q := record.ListQuery{Status: record.Status(r.query["status"]), Region: r.query["region"], Token: r.query["nextToken"]}
	fields := map[string]string{}
	if q.Status != "" && !slices.Contains(record.Statuses, q.Status) {
		names := make([]string, len(record.Statuses))
		for i, s := range record.Statuses {
			names[i] = string(s)
		}
		fields["status"] = "must be one of " + strings.Join(names, ", ")
	}
	if q.Region != "" && !reRegion.MatchString(q.Region) {
		fields["region"] = `must be an AWS region name such as "eu-west-1"`
	}
	if v, ok := r.query["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > record.MaxListLimit || strings.TrimLeft(v, "0123456789") != "" {
			fields["limit"] = fmt.Sprintf("must be a whole number 1-%d (default %d)", record.MaxListLimit, record.DefaultListLimit)
		}
		q.Limit = n
	}
	if len(fields) > 0 {
		return events.APIGatewayProxyResponse{}, validationError("invalid query parameters", fields)
	}
	items, next, err := h.Store.List(ctx, q)
	if errors.Is(err, record.ErrBadToken) {
		return events.APIGatewayProxyResponse{}, validationError("nextToken is not valid", map[string]string{
			"nextToken": "is not valid: pass the nextToken of the previous page unchanged, with the same status filter"})
	}
	if err != nil {
		return events.APIGatewayProxyResponse{}, err
	}
	return jsonResponse(http.StatusOK, ListResponse{Items: items, NextToken: next}, nil)
}

// reRegion is the shape of an AWS region name (as spec checks it); listing
// does not require one this stack serves, since that list can change.
var reRegion = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$`)

func (h *Handler) find(ctx context.Context, id string) (*record.MEC, error) {
	m, err := h.Store.Get(ctx, id)
	if errors.Is(err, record.ErrNotFound) {
		return nil, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: fmt.Sprintf("no MEC %s", id)}
	}
	return m, err
}

// get serves GET /mecs/{id}.
func (h *Handler) get(ctx context.Context, r *request) (events.APIGatewayProxyResponse, error) {
	m, err := h.find(ctx, r.params["id"])
	if err != nil {
		return events.APIGatewayProxyResponse{}, err
	}
	return jsonResponse(http.StatusOK, m, nil)
}

// delete serves DELETE /mecs/{id}. The teardown's fixed execution name makes
// repeats (and a racing sweeper) find the running teardown instead of
// starting another; a DELETED MEC is left alone.
func (h *Handler) delete(ctx context.Context, r *request) (events.APIGatewayProxyResponse, error) {
	m, err := h.find(ctx, r.params["id"])
	if err != nil {
		return events.APIGatewayProxyResponse{}, err
	}
	if m.Status == record.Deleted {
		return accepted(m)
	}
	arn, started, err := workflow.StartTeardown(ctx, h.SFN, h.Env.TeardownSMArn, m)
	if err != nil {
		h.log().ErrorContext(ctx, "start teardown", "clusterId", m.ID, "error", err)
		return events.APIGatewayProxyResponse{}, unavailable("the teardown could not be started; try again")
	}
	if !started {
		h.checkTeardown(ctx, m, arn)
	}
	h.log().InfoContext(ctx, "teardown", "clusterId", m.ID, "execution", arn, "started", started)
	if m.TeardownExecutionArn == arn {
		return accepted(m)
	}
	updated, err := h.Store.Update(ctx, m.ID, func(r *record.MEC) error {
		if r.TeardownExecutionArn == arn {
			return record.ErrNoChange
		}
		r.TeardownExecutionArn = arn
		return nil
	})
	if err != nil {
		// The teardown runs regardless; the ARN follows from its name.
		h.log().WarnContext(ctx, "record teardown arn", "clusterId", m.ID, "error", err)
		m.TeardownExecutionArn = arn
		return accepted(m)
	}
	return accepted(updated)
}

// checkTeardown logs when the teardown that answers a repeat is not
// running: then only a recorded teardown failure (which gives the next
// attempt a new name) lets a DELETE start it again.
func (h *Handler) checkTeardown(ctx context.Context, m *record.MEC, arn string) {
	out, err := h.SFN.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	if err != nil {
		h.log().WarnContext(ctx, "describe teardown", "clusterId", m.ID, "execution", arn, "error", err)
		return
	}
	if out.Status != sfntypes.ExecutionStatusRunning {
		h.log().WarnContext(ctx, "teardown execution is not running but the MEC is not DELETED",
			"clusterId", m.ID, "execution", arn, "executionStatus", out.Status, "status", m.Status)
	}
}

// kubeconfig serves GET /mecs/{id}/kubeconfig: the one answer that carries a
// secret. It is never logged and never cached.
func (h *Handler) kubeconfig(ctx context.Context, r *request) (events.APIGatewayProxyResponse, error) {
	m, err := h.find(ctx, r.params["id"])
	if err != nil {
		return events.APIGatewayProxyResponse{}, err
	}
	if m.Status != record.Ready {
		return events.APIGatewayProxyResponse{}, notReady(m)
	}
	name := m.KubeconfigParameter
	if name == "" {
		name = workflow.KubeconfigParam(m.ID)
	}
	out, err := h.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)},
		func(o *ssm.Options) {
			if m.Region != "" {
				o.Region = m.Region
			}
		})
	if err != nil {
		var nf *ssmtypes.ParameterNotFound
		if errors.As(err, &nf) {
			// A teardown may have begun since the record was read.
			if now, gerr := h.find(ctx, m.ID); gerr == nil && now.Status != record.Ready {
				return events.APIGatewayProxyResponse{}, notReady(now)
			}
		}
		return events.APIGatewayProxyResponse{}, fmt.Errorf("get kubeconfig parameter %s: %w", name, err)
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return events.APIGatewayProxyResponse{}, fmt.Errorf("get kubeconfig parameter %s: no value", name)
	}
	return events.APIGatewayProxyResponse{StatusCode: http.StatusOK, Body: *out.Parameter.Value, Headers: map[string]string{
		"Content-Type":           "application/yaml",
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
	}}, nil
}

func notReady(m *record.MEC) *Error {
	return &Error{Status: http.StatusConflict, Code: CodeNotReady,
		Message: fmt.Sprintf("MEC %s is %s; its kubeconfig is available once it is READY", m.ID, m.Status)}
}

// transactionConflict reports a transaction cancelled only because another
// one touched the same items at the same time: worth retrying.
func transactionConflict(err error) bool {
	var tc *types.TransactionCanceledException
	if !errors.As(err, &tc) {
		return false
	}
	for _, r := range tc.CancellationReasons {
		if aws.ToString(r.Code) == "TransactionConflict" {
			return true
		}
	}
	return false
}

func awsCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("create mec: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}
