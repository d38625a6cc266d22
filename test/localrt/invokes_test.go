package localrt

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestInvokeTrackerTimesRuntimeAPIInvocations drives the front's Runtime API
// proxy against a stand-in for kumo: each event handed out by .../next is
// timed until its .../response or .../error, per function.
func TestInvokeTrackerTimesRuntimeAPIInvocations(t *testing.T) {
	ids := []string{"req-1", "req-2"}
	kumo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set("Lambda-Runtime-Aws-Request-Id", ids[0])
			ids = ids[1:]
			_, _ = w.Write([]byte(`{}`))
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer kumo.Close()
	f, err := NewFront(kumo.URL, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const base = "/_runtime/mecd-fn/2018-06-01/runtime/invocation/"
	do := func(method, path string) {
		rec := httptest.NewRecorder()
		f.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		if rec.Code >= 300 {
			t.Fatalf("%s %s: %d", method, path, rec.Code)
		}
	}
	do(http.MethodGet, base+"next")
	time.Sleep(20 * time.Millisecond)
	do(http.MethodPost, base+"req-1/response")
	do(http.MethodGet, base+"next")
	do(http.MethodPost, base+"req-2/error")
	// A result for an event the tracker never saw handed out is counted, not timed.
	do(http.MethodPost, base+"req-9/response")

	st := f.Invokes.Snapshot()["mecd-fn"]
	if st.Count != 3 || st.Errors != 1 || len(st.Durations) != 2 {
		t.Fatalf("stats %+v, want 3 invocations, 1 error, 2 timed", st)
	}
	if st.Durations[0] < 20*time.Millisecond || st.Durations[1] >= st.Durations[0] {
		t.Fatalf("durations %v: the first should cover the 20ms handler, the second be shorter", st.Durations)
	}
	if len(f.Invokes.Snapshot()) != 1 {
		t.Fatalf("functions %v, want only mecd-fn", f.Invokes.Snapshot())
	}
}
