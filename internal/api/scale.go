package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-lambda-go/events"

	"github.com/mecd/mecd/internal/lifecycle"
	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/spec"
	"github.com/mecd/mecd/internal/store"
)

// scale serves PATCH /mecs/{id} {"nodeCount": N, "haControlPlane": bool}:
// one operation at a time per MEC. The operation and the status SCALING
// are recorded in one conditional write, so two requests cannot both
// start one; the same request repeated while its scale runs answers with
// it (202), and a count the MEC already has answers 200 with nothing
// started.
func (h *Handler) scale(ctx context.Context, r *request) (events.APIGatewayProxyResponse, error) {
	m, err := h.findOwned(ctx, r, "scale it")
	if err != nil {
		return events.APIGatewayProxyResponse{}, err
	}
	body, err := r.body()
	if err != nil {
		return events.APIGatewayProxyResponse{}, err
	}
	sc, err := spec.ParseScale(body)
	var verr *spec.ValidationError
	if errors.As(err, &verr) {
		return events.APIGatewayProxyResponse{}, validationError("invalid scale request", verr.Fields)
	}
	if err != nil {
		return events.APIGatewayProxyResponse{}, err
	}
	var refused map[string]string
	repeat, same := false, false
	updated, err := h.Store.Update(ctx, m.ID, func(rec *mec.MEC) error {
		refused, repeat, same = nil, false, false
		if op := rec.Operation(); rec.Status == mec.Scaling && op != nil && op.To == sc.NodeCount && op.Outcome == mec.OutcomeRunning {
			repeat = true
			return store.ErrNoChange
		}
		if rec.Status != mec.Ready {
			return busy(rec)
		}
		if len(rec.MemberNodes()) == sc.NodeCount && (sc.HAControlPlane == nil || rec.Spec.HAControlPlane == nil || *sc.HAControlPlane == *rec.Spec.HAControlPlane) {
			same = true
			return store.ErrNoChange
		}
		plan, fields := mec.PlanScale(rec, sc)
		if fields != nil {
			refused = fields
			return store.ErrNoChange
		}
		rec.StartScale(plan, r.caller(), h.now())
		return nil
	})
	switch {
	case err != nil:
		return events.APIGatewayProxyResponse{}, err
	case refused != nil:
		return events.APIGatewayProxyResponse{}, validationError("this scale is refused", refused)
	case same:
		updated.ComputeProgress()
		return jsonResponse(http.StatusOK, updated, nil)
	}
	op := updated.Operation()
	if repeat && op.ExecutionArn != "" {
		return accepted(updated)
	}
	arn, err := lifecycle.StartScale(ctx, h.SFN, h.Env.ScaleSMArn, updated, h.Env.CommandTimeout)
	if err != nil {
		h.log().ErrorContext(ctx, "start scale", "clusterId", m.ID, "operation", op.Number, "error", err)
		// Nothing ran: the MEC goes back to READY with the operation
		// failed, so it is not SCALING with nothing behind it.
		if _, uerr := h.Store.Update(ctx, m.ID, func(rec *mec.MEC) error {
			if o := rec.Operation(); rec.Status != mec.Scaling || o == nil || o.Number != op.Number || o.ExecutionArn != "" {
				return store.ErrNoChange
			}
			rec.Status = mec.Ready
			rec.EndOperation(mec.OutcomeFailed, "the scale workflow could not be started", h.now())
			return nil
		}); uerr != nil {
			h.log().ErrorContext(ctx, "undo the scale's record", "clusterId", m.ID, "error", uerr)
		}
		return events.APIGatewayProxyResponse{}, unavailable("the scale could not be started; try again")
	}
	updated, err = h.Store.Update(ctx, m.ID, func(rec *mec.MEC) error {
		if o := rec.Operation(); o != nil && o.Number == op.Number && o.ExecutionArn == "" {
			o.ExecutionArn = arn
			return nil
		}
		return store.ErrNoChange
	})
	if err != nil {
		// The scale runs; its record lacks only the ARN, which its name gives.
		h.log().WarnContext(ctx, "record scale execution", "clusterId", m.ID, "execution", arn, "error", err)
		updated = m
	}
	h.log().InfoContext(ctx, "scale", "clusterId", m.ID, "operation", op.Number, "from", op.From, "to", op.To, "execution", arn)
	return accepted(updated)
}

// busy is the 409 of a MEC that cannot take an operation now.
func busy(m *mec.MEC) *Error {
	msg := fmt.Sprintf("MEC %s is %s: it can be scaled only when READY", m.ID, m.Status)
	switch m.Status {
	case mec.Creating:
		msg = fmt.Sprintf("MEC %s is CREATING: scale it once it is READY", m.ID)
	case mec.Scaling:
		if op := m.Operation(); op != nil {
			msg = fmt.Sprintf("MEC %s is SCALING from %d to %d nodes (operation %d): wait until it is READY, or DELETE it", m.ID, op.From, op.To, op.Number)
		}
	case mec.Repairing:
		msg = fmt.Sprintf("MEC %s is REPAIRING (replacing lost nodes): scale it once it is READY", m.ID)
	case mec.Degraded:
		msg = fmt.Sprintf("MEC %s is DEGRADED (%s): it is scaled once it is READY again", m.ID, m.DegradedCause)
	case mec.Deleting, mec.Deleted:
		msg = fmt.Sprintf("MEC %s is %s and cannot be scaled", m.ID, m.Status)
	case mec.Failed:
		msg = fmt.Sprintf("MEC %s FAILED at step %s and cannot be scaled; delete it and create it again", m.ID, m.FailedStep)
	}
	return &Error{Status: http.StatusConflict, Code: CodeBusy, Message: msg}
}
