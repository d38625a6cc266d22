package ssmsim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// apiError is an SSM error as the JSON 1.1 protocol carries it: the SDK turns
// __type into the smithy error code (and a typed error where the model has one).
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func badRequest(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf(format, args...)}
}

// validationError words a constraint failure the way AWS's request validation does.
func validationError(format string, args ...any) *apiError {
	return badRequest("ValidationException", "1 validation error detected: "+format, args...)
}

func errUnknownOperation(target string) *apiError {
	return badRequest("UnknownOperationException", "unknown operation %q", target)
}

// injectedError maps a fault.API code to the status AWS answers it with.
func injectedError(code string) *apiError {
	switch code {
	case "InternalServerError", "InternalError", "InternalFailure":
		return &apiError{status: http.StatusInternalServerError, code: code, msg: "An internal error occurred (injected)."}
	case "ServiceUnavailable", "ServiceUnavailableException":
		return &apiError{status: http.StatusServiceUnavailable, code: code, msg: "Service is unavailable (injected)."}
	default:
		return badRequest(code, "Rate exceeded (injected)")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"__type":"InternalServerError","message":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", newUUID())
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, err error) {
	ae, ok := err.(*apiError)
	if !ok {
		ae = &apiError{status: http.StatusInternalServerError, code: "InternalServerError", msg: err.Error()}
	}
	writeJSON(w, ae.status, map[string]string{"__type": ae.code, "message": ae.msg})
}

// decodeBody reads a JSON 1.1 request body into v.
func decodeBody(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		return badRequest("SerializationException", "read body: %v", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		b = []byte("{}")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return badRequest("SerializationException", "%v", err)
	}
	return nil
}

// epoch is a JSON 1.1 timestamp: seconds since the epoch, millisecond precision.
func epoch(t time.Time) *json.Number {
	if t.IsZero() {
		return nil
	}
	n := json.Number(strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64))
	return &n
}

// isoMillis is the ISO 8601 form SSM uses in string fields and in events.
func isoMillis(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// Page tokens are opaque to clients; they carry an offset and the listing they belong to.
func pageToken(kind string, offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + strconv.Itoa(offset)))
}

func pageOffset(kind, token string) (int, error) {
	if token == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err == nil {
		if k, n, ok := strings.Cut(string(b), ":"); ok && k == kind {
			if off, err := strconv.Atoi(n); err == nil && off >= 0 {
				return off, nil
			}
		}
	}
	return 0, badRequest("InvalidNextToken", "The specified token isn't valid.")
}

// newUUID is a random (version 4) UUID, the form of SSM command ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// randomString draws n characters from alphabet with crypto/rand.
func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// cutChars keeps the first n characters (runes) of s, as SSM's limits count characters.
func cutChars(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// pageSize is a request's MaxResults within lo-hi, hi when absent.
func pageSize(maxResults *int, lo, hi int) (int, error) {
	if maxResults == nil {
		return hi, nil
	}
	if *maxResults < lo || *maxResults > hi {
		return 0, validationError("Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value between %d and %d", *maxResults, lo, hi)
	}
	return *maxResults, nil
}
