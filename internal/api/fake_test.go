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
