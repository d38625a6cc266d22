// Package sigv4 reads what the simulators need from a SigV4-signed request:
// the region its credential scope names (AWS APIs are regional; a request is
// answered by the region it was signed for).
package sigv4

import (
	"net/http"
	"strings"
)

// Region reads the region from the credential scope
// (Credential=AKID/date/<region>/<service>/aws4_request), in the
// Authorization header or a presigned query; def when there is none.
func Region(r *http.Request, def string) string {
	cred := ""
	if h := r.Header.Get("Authorization"); h != "" {
		if i := strings.Index(h, "Credential="); i >= 0 {
			cred = h[i+len("Credential="):]
			if j := strings.IndexAny(cred, ", "); j >= 0 {
				cred = cred[:j]
			}
		}
	} else {
		cred = r.URL.Query().Get("X-Amz-Credential")
	}
	parts := strings.Split(cred, "/")
	if len(parts) == 5 && parts[2] != "" {
		return parts[2]
	}
	return def
}
