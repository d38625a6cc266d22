package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mecd/mecd/internal/client"
	"github.com/mecd/mecd/internal/spec"
)

//go:embed static
var static embed.FS

// API is what the proxy needs of the API client: one signed round trip.
type API interface {
	Send(ctx context.Context, method, path, rawQuery string, body []byte, header http.Header) (*http.Response, []byte, error)
}

var _ API = (*client.Client)(nil)

// Server serves the page and the proxy.
type Server struct {
	API API
	// Endpoint and Region describe the API in the page's header.
	Endpoint string
	Region   string
	Log      *slog.Logger
}

// New is a Server over the API client c.
func New(c *client.Client, log *slog.Logger) *Server {
	return &Server{API: c, Endpoint: c.Endpoint.String(), Region: c.Region, Log: log}
}

// HeaderName is the header the page sends on every call to this server;
// a cross-site request cannot carry it without a preflight.
const HeaderName = "X-Mecd-Dashboard"

// MaxBodyBytes bounds a forwarded body, as the API does.
const MaxBodyBytes = 64 << 10

// Handler serves everything.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	files, _ := fs.Sub(static, "static") // the directory is embedded: cannot fail
	fileServer := http.FileServerFS(files)
	mux.Handle("GET /static/", http.StripPrefix("/static/", fileServer))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		b, err := static.ReadFile("static/index.html")
		if err != nil {
			http.Error(w, "missing page", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET /ui/meta", s.meta)
	mux.HandleFunc("POST /ui/validate", s.validate)
	mux.HandleFunc("/api/", s.proxy)
	return s.guard(mux)
}

// guard applies the checks every request must pass and the headers every
// answer carries.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if !loopbackHost(r.Host) {
			// A DNS-rebound name pointing at 127.0.0.1 arrives with its own Host.
			writeError(w, http.StatusMisdirectedRequest, "MisdirectedRequest", "open the dashboard as http://127.0.0.1:<port>/ or http://localhost:<port>/")
			return
		}
		if strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/ui/") {
			if r.Header.Get(HeaderName) != "1" || !sameOrigin(r) {
				writeError(w, http.StatusForbidden, "Forbidden", "only the dashboard page may call this")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if client.IsLocalHost(host) && !strings.Contains(host, ".") {
		return true // "localhost" itself; other *.localhost names could be anyone's page
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// sameOrigin checks Origin and Sec-Fetch-Site when the browser sends them.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// meta tells the page what it cannot know by itself.
func (s *Server) meta(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"endpoint": s.Endpoint,
		"region":   s.Region,
		"addons":   spec.AllowedAddons,
		"defaults": map[string]any{
			"nodeCount": spec.DefaultNodeCount, "instanceType": spec.DefaultInstanceType,
			"microk8sChannel": spec.DefaultChannel, "addons": spec.DefaultAddons, "rootVolumeGiB": spec.DefaultRootVolumeGiB,
		},
		"limits": map[string]any{
			"nodeCount": []int{spec.MinNodeCount, spec.MaxNodeCount}, "rootVolumeGiB": []int{spec.MinRootVolumeGiB, spec.MaxRootVolumeGiB},
			"nameLength": spec.MaxNameLen,
		},
	})
}

// validate checks a spec with the API's own rules (spec.Parse), so the
// form shows the API's messages while typing; the API still decides.
func (s *Server) validate(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil || len(body) > MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge", "the spec is over 64 KiB")
		return
	}
	fields := map[string]string{}
	if _, err := spec.Parse(body, spec.Defaults{Region: "us-east-1"}); err != nil {
		var ve *spec.ValidationError
		if !errors.As(err, &ve) {
			writeError(w, http.StatusInternalServerError, "InternalError", err.Error())
			return
		}
		fields = ve.Fields
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"fields": fields})
}

// apiRoutes are the API's operations (openapi.yaml), the only ones forwarded.
var apiRoutes = []struct {
	pattern string
	methods []string
	query   []string
}{
	{"/mecs", []string{http.MethodGet, http.MethodPost}, []string{"status", "region", "limit", "nextToken"}},
	{"/mecs/{id}", []string{http.MethodGet, http.MethodPatch, http.MethodDelete}, nil},
	{"/mecs/{id}/kubeconfig", []string{http.MethodGet}, nil},
}

// forwardedHeaders are the request headers the API reads.
var forwardedHeaders = []string{"Content-Type", "Idempotency-Key"}

// answerHeaders are the API's answer headers the page may see.
var answerHeaders = []string{"Content-Type", "Location", "Retry-After", "Allow"}

func (s *Server) proxy(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/api")
	var methods, query []string
	found := false
	for _, rt := range apiRoutes {
		if matchRoute(rt.pattern, path) {
			methods, query, found = rt.methods, rt.query, true
			break
		}
	}
	if !found {
		writeError(w, http.StatusNotFound, "NotFound", "the dashboard forwards only the API's routes: /mecs, /mecs/{id}, /mecs/{id}/kubeconfig")
		return
	}
	if !slices.Contains(methods, r.Method) {
		w.Header().Set("Allow", strings.Join(methods, ", "))
		writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", path+" does not support "+r.Method)
		return
	}
	q := url.Values{}
	for k, vs := range r.URL.Query() {
		if !slices.Contains(query, k) {
			writeError(w, http.StatusBadRequest, "ValidationError", "query parameter "+k+" is not forwarded")
			return
		}
		q[k] = vs
	}
	var body []byte
	if r.Method == http.MethodPost || r.Method == http.MethodPatch {
		b, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
		if err != nil || len(b) > MaxBodyBytes {
			writeError(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge", "the body is over 64 KiB")
			return
		}
		body = b
	}
	hdr := http.Header{}
	for _, k := range forwardedHeaders {
		if v := r.Header.Get(k); v != "" {
			hdr.Set(k, v)
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
	defer cancel()
	start := time.Now()
	resp, b, err := s.API.Send(ctx, r.Method, path, q.Encode(), body, hdr)
	if err != nil {
		s.log().WarnContext(ctx, "api call failed", "method", r.Method, "path", path, "error", err)
		writeError(w, http.StatusBadGateway, "BadGateway", "the API could not be reached: "+err.Error())
		return
	}
	s.log().DebugContext(ctx, "api call", "method", r.Method, "path", path, "status", resp.StatusCode, "ms", time.Since(start).Milliseconds())
	for _, k := range answerHeaders {
		if v := resp.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(b)
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// matchRoute matches path against a pattern whose {id} is a MEC id.
func matchRoute(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if ps[i] == "{id}" {
			if !client.IsID(xs[i]) {
				return false
			}
		} else if ps[i] != xs[i] {
			return false
		}
	}
	return true
}
