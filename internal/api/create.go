package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/mecd/mecd/internal/lifecycle"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/spec"
	"github.com/mecd/mecd/internal/store"
)

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
	resolved, err := h.checkRegion(ctx, sp)
	if err != nil {
		return events.APIGatewayProxyResponse{}, err
	}
	hash := sp.Hash()
	now := h.now()
	m := mec.New(sp, "created by the API", now)
	m.Owner = r.caller()
	if resolved != nil {
		m.SetResolved(*resolved, now)
	}
	var idem *store.Idempotency
	if key != "" {
		idem = &store.Idempotency{Key: key, SpecHash: hash, ClusterID: m.ID, ExpiresAt: now.Add(idempotencyTTL)}
	}
	for attempt := 1; ; attempt++ {
		err := h.Store.Create(ctx, m, idem)
		if err == nil {
			break
		}
		taken := errors.Is(err, store.ErrNameTaken)
		if !taken && !errors.Is(err, store.ErrKeyTaken) && !errors.Is(err, store.ErrConflict) {
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
	h.log().InfoContext(ctx, "mec created", "clusterId", m.ID, "name", m.Name, "region", m.Region, "owner", m.Owner, "idempotent", key != "")
	m, err = h.provision(ctx, m)
	if err != nil {
		return events.APIGatewayProxyResponse{}, err
	}
	return accepted(m)
}

// checkRegion asks the region what it makes of the spec: a field it refuses
// is a 400 now, not a FAILED MEC later. When the check cannot run, the
// spec goes on unresolved and the provisioning's own resolve decides.
func (h *Handler) checkRegion(ctx context.Context, sp spec.Spec) (*mec.Resolved, error) {
	if h.Checker == nil {
		return nil, nil
	}
	res, err := h.Checker.CheckSpec(ctx, sp)
	if err != nil {
		h.log().WarnContext(ctx, "region check unavailable; the provisioning resolves the spec", "region", sp.Region, "error", err)
		return nil, nil
	}
	if len(res.Fields) > 0 {
		return nil, validationError(fmt.Sprintf("the MEC spec does not fit region %s", sp.Region), res.Fields)
	}
	return res.Resolved, nil
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

// replay answers a request whose key is already claimed: the same spec gets
// the MEC made for it, another spec a 422. ok is false when the key is free
// (never claimed, or expired).
func (h *Handler) replay(ctx context.Context, key, hash string) (events.APIGatewayProxyResponse, bool, error) {
	idem, err := h.Store.Idempotency(ctx, key)
	if err != nil || idem == nil {
		return events.APIGatewayProxyResponse{}, false, err
	}
	if idem.SpecHash != hash {
		return events.APIGatewayProxyResponse{}, true, &Error{Status: http.StatusUnprocessableEntity, Code: CodeIdempotencyKeyReused,
			Message: fmt.Sprintf("this %s was used for another MEC spec (MEC %s); send a new key with a different request", IdempotencyHeader, idem.ClusterID)}
	}
	m, err := h.Store.Get(ctx, idem.ClusterID)
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

// resumable says whether a replay should (re)start a MEC's provisioning: the
// request that created it died before starting it, or failed to start it.
func (h *Handler) resumable(m *mec.MEC) bool {
	if m.ExecutionArn != "" {
		return false
	}
	switch m.Status {
	case mec.Creating:
		return h.now().Sub(m.CreatedAt) >= resumeAfter
	case mec.Failed:
		return m.FailedStep == mec.StepStart
	}
	return false
}

// provision starts m's provisioning and records the execution. If the start
// fails the record becomes FAILED (nothing runs, nothing was launched) and
// the caller gets a 503; a repeat with the same key starts it again.
func (h *Handler) provision(ctx context.Context, m *mec.MEC) (*mec.MEC, error) {
	if m.Status == mec.Failed {
		var err error
		m, err = h.Store.Update(ctx, m.ID, func(r *mec.MEC) error {
			if r.Status != mec.Failed || r.FailedStep != mec.StepStart || r.ExecutionArn != "" {
				return store.ErrNoChange
			}
			r.Status, r.FailedStep, r.FailureCause = mec.Creating, "", ""
			return nil
		})
		if err != nil || m.Status != mec.Creating {
			return m, err
		}
	}
	arn, err := lifecycle.StartProvision(ctx, h.SFN, h.Env.ProvisionSMArn, m)
	if err != nil {
		h.log().ErrorContext(ctx, "start provisioning", "clusterId", m.ID, "error", err)
		cause := "provisioning could not be started"
		if c := awsCode(err); c != "" {
			cause += " (Step Functions: " + c + ")"
		}
		cause += "; repeat the request with the same " + IdempotencyHeader + " to retry, or delete this MEC"
		now := h.now()
		if _, uerr := h.Store.Update(ctx, m.ID, func(r *mec.MEC) error {
			if r.Status != mec.Creating || r.ExecutionArn != "" {
				return store.ErrNoChange
			}
			r.Status, r.FailedStep, r.FailureCause = mec.Failed, mec.StepStart, cause
			r.EndStep(mec.StepStart, mec.OutcomeFailed, cause, now)
			return nil
		}); uerr != nil {
			// Still CREATING without an execution: a replay resumes it.
			h.log().ErrorContext(ctx, "record failed start", "clusterId", m.ID, "error", uerr)
		}
		return nil, unavailable(fmt.Sprintf("MEC %s was recorded but its provisioning could not be started; it is FAILED. "+
			"Repeat the request with the same %s to retry, or delete it", m.ID, IdempotencyHeader))
	}
	// The execution runs and reads its record by id; a replay or the next
	// DELETE finds the ARN again from the execution name.
	return h.noteExecution(ctx, m, arn, func(r *mec.MEC) *string { return &r.ExecutionArn }), nil
}

// noteExecution records an execution's ARN in the field of m that arn
// points at, and returns the record as written. The workflow runs whatever
// happens here, so a failed write is only logged and the ARN set on m.
func (h *Handler) noteExecution(ctx context.Context, m *mec.MEC, arn string, field func(*mec.MEC) *string) *mec.MEC {
	if *field(m) == arn {
		return m
	}
	updated, err := h.Store.Update(ctx, m.ID, func(r *mec.MEC) error {
		if *field(r) == arn {
			return store.ErrNoChange
		}
		*field(r) = arn
		return nil
	})
	if err != nil {
		h.log().WarnContext(ctx, "record execution arn", "clusterId", m.ID, "execution", arn, "error", err)
		*field(m) = arn
		return m
	}
	return updated
}

func accepted(m *mec.MEC) (events.APIGatewayProxyResponse, error) {
	m.ComputeProgress()
	return jsonResponse(http.StatusAccepted, m, map[string]string{"Location": "/mecs/" + m.ID})
}
