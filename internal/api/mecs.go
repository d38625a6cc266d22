package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/mecd/mecd/internal/lifecycle"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/store"
)

// list serves GET /mecs.
func (h *Handler) list(ctx context.Context, r *request) (events.APIGatewayProxyResponse, error) {
	q := store.ListQuery{Status: mec.Status(r.query["status"]), Region: r.query["region"], Token: r.query["nextToken"]}
	fields := map[string]string{}
	if q.Status != "" && !q.Status.Valid() {
		fields["status"] = "must be one of " + strings.Join(mec.StatusNames(), ", ")
	}
	if q.Region != "" && !reRegion.MatchString(q.Region) {
		fields["region"] = `must be an AWS region name such as "eu-west-1"`
	}
	if v, ok := r.query["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxListLimit || strings.TrimLeft(v, "0123456789") != "" {
			fields["limit"] = fmt.Sprintf("must be a whole number 1-%d (default %d)", store.MaxListLimit, store.DefaultListLimit)
		}
		q.Limit = n
	}
	if len(fields) > 0 {
		return events.APIGatewayProxyResponse{}, validationError("invalid query parameters", fields)
	}
	items, next, err := h.Store.List(ctx, q)
	if errors.Is(err, store.ErrBadToken) {
		return events.APIGatewayProxyResponse{}, validationError("nextToken is not valid", map[string]string{
			"nextToken": "is not valid: pass the nextToken of the previous page unchanged, with the same status filter"})
	}
	if err != nil {
		return events.APIGatewayProxyResponse{}, err
	}
	for _, m := range items {
		m.ComputeProgress()
	}
	return jsonResponse(http.StatusOK, ListResponse{Items: items, NextToken: next}, nil)
}

// reRegion is the shape of an AWS region name (as spec checks it); listing
// does not require one this stack serves, since that list can change.
var reRegion = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$`)

func (h *Handler) find(ctx context.Context, id string) (*mec.MEC, error) {
	m, err := h.Store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
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
	m.ComputeProgress()
	return jsonResponse(http.StatusOK, m, nil)
}

// delete serves DELETE /mecs/{id}. The teardown's fixed execution name makes
// repeats (and a racing sweeper) find the running teardown instead of
// starting another; a DELETED MEC is left alone.
func (h *Handler) delete(ctx context.Context, r *request) (events.APIGatewayProxyResponse, error) {
	m, err := h.findOwned(ctx, r, "delete it")
	if err != nil {
		return events.APIGatewayProxyResponse{}, err
	}
	if m.Status == mec.Deleted {
		return accepted(m)
	}
	updated, started, err := lifecycle.Teardown(ctx, h.SFN, h.Store, h.Env.TeardownSMArn, m)
	switch {
	case updated == nil:
		h.log().ErrorContext(ctx, "start teardown", "clusterId", m.ID, "error", err)
		return events.APIGatewayProxyResponse{}, unavailable("the teardown could not be started; try again")
	case err != nil:
		// The teardown runs and marks the record itself.
		h.log().WarnContext(ctx, "record teardown", "clusterId", m.ID, "error", err)
	case !started:
		h.checkTeardown(ctx, updated, updated.TeardownExecutionArn)
	}
	h.log().InfoContext(ctx, "teardown", "clusterId", m.ID, "execution", updated.TeardownExecutionArn, "started", started)
	return accepted(updated)
}

// findOwned finds the MEC of the path and checks the caller may act on it
// (owner-only): a missing MEC is 404 before anything is said about owners.
func (h *Handler) findOwned(ctx context.Context, r *request, what string) (*mec.MEC, error) {
	m, err := h.find(ctx, r.params["id"])
	if err != nil {
		return nil, err
	}
	if err := h.checkOwner(r, m, what); err != nil {
		return nil, err
	}
	return m, nil
}

// checkTeardown logs when the teardown that answers a repeat is not
// running: then only a recorded teardown failure (which gives the next
// attempt a new name) lets a DELETE start it again.
func (h *Handler) checkTeardown(ctx context.Context, m *mec.MEC, arn string) {
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
	m, err := h.findOwned(ctx, r, "read its kubeconfig")
	if err != nil {
		return events.APIGatewayProxyResponse{}, err
	}
	if m.Status != mec.Ready && m.Status != mec.Scaling && m.Status != mec.Repairing && m.Status != mec.Degraded {
		// A scale keeps the endpoint and the credentials; a degraded MEC
		// still serves (a repair that moves the endpoint stores it again).
		return events.APIGatewayProxyResponse{}, notReady(m)
	}
	name := m.KubeconfigParameter
	if name == "" {
		name = mec.KubeconfigParam(m.ID)
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
			if now, gerr := h.find(ctx, m.ID); gerr == nil && now.Status != mec.Ready {
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

// notReady says why a MEC has no kubeconfig to give, and whether one will come.
func notReady(m *mec.MEC) *Error {
	msg := fmt.Sprintf("MEC %s is %s; its kubeconfig is available once it is READY", m.ID, m.Status)
	switch m.Status {
	case mec.Deleting, mec.Deleted:
		msg = fmt.Sprintf("MEC %s is %s: its kubeconfig was deleted with it and will not come back", m.ID, m.Status)
	case mec.Failed:
		msg = fmt.Sprintf("MEC %s FAILED at step %s and has no kubeconfig; delete it and create it again", m.ID, m.FailedStep)
	}
	return &Error{Status: http.StatusConflict, Code: CodeNotReady, Message: msg}
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
