package api

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/mecd/mecd/internal/mec"
	"github.com/mecd/mecd/internal/spec"
)

// failingStore is a Store whose reads fail (the methods it does not
// override would panic, and the handler must not reach them).
type failingStore struct{ Store }

func (failingStore) Get(context.Context, string) (*mec.MEC, error) {
	return nil, errors.New("dynamodb: connection reset (secret-detail)")
}

// A store failure is a 500 whose answer says nothing of the cause; the log
// has it.
func TestStoreFailureIsAnInternalError(t *testing.T) {
	var logs bytes.Buffer
	h := &Handler{Store: failingStore{}, Log: slog.New(slog.NewJSONHandler(&logs, nil))}
	for _, r := range []req{get("/mecs/" + mec.NewID(h.now())), del("/mecs/" + mec.NewID(h.now()))} {
		resp, err := h.Handle(context.Background(), r.ev())
		if err != nil || resp.StatusCode != http.StatusInternalServerError || strings.Contains(resp.Body, "secret-detail") {
			t.Fatalf("%s %s: %d %s %v", r.method, r.path, resp.StatusCode, resp.Body, err)
		}
	}
	if !strings.Contains(logs.String(), "secret-detail") {
		t.Fatalf("the cause is not logged: %s", logs.String())
	}
}

// refusingRegion is a SpecChecker for a region without the instance type.
type refusingRegion struct{}

func (refusingRegion) CheckSpec(context.Context, spec.Spec) (mec.SpecCheck, error) {
	return mec.SpecCheck{Fields: map[string]string{"instanceType": `instance type "t9z.gigantic" does not exist in us-east-1`}}, nil
}

// What the region refuses is a 400 naming the field, before anything is
// written or started.
func TestRegionRefusalIsAValidationError(t *testing.T) {
	e := newEnv(t)
	e.h.Checker = refusingRegion{}
	resp := e.do(t, post(`{"name":"edge-t9z","instanceType":"t9z.gigantic"}`, "Idempotency-Key", "k-t9z"))
	er := errOf(t, resp)
	if resp.StatusCode != http.StatusBadRequest || er.Code != CodeValidation || !strings.Contains(er.Fields["instanceType"], "does not exist") {
		t.Fatalf("%d %s", resp.StatusCode, resp.Body)
	}
	if n := e.count(t, ""); n != 0 || e.sfn.starts.Load() != 0 {
		t.Fatalf("%d items written, %d executions started", n, e.sfn.starts.Load())
	}
}
