package ssmsim

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mecd/mecd/test/nodesim/fidelity"
)

const (
	imdsTokenHeader = "X-aws-ec2-metadata-token"
	imdsTTLHeader   = "X-aws-ec2-metadata-token-ttl-seconds"
	credLifetime    = 6 * time.Hour
)

// imdsState holds the IMDSv2 session tokens and the credentials handed out.
// It has its own lock: IMDS calls are frequent and touch nothing else.
type imdsState struct {
	mu     sync.Mutex
	tokens map[string]imdsToken // session token -> owner
	creds  map[string]*roleCredentials
	owners map[string]string           // access key id -> instance id
	issued map[string]*roleCredentials // access key id -> its credentials
}

type imdsToken struct {
	instanceID string
	expiry     time.Time
}

type roleCredentials struct {
	accessKeyID, secret, session string
	issued, expiry               time.Time
}

func newIMDSState() imdsState {
	return imdsState{tokens: map[string]imdsToken{}, creds: map[string]*roleCredentials{}, owners: map[string]string{},
		issued: map[string]*roleCredentials{}}
}

// CredentialOwner names the instance IMDS gave an access key id to, so a
// front can tell which host signed a request.
func (s *Sim) CredentialOwner(accessKeyID string) (string, bool) {
	s.imds.mu.Lock()
	defer s.imds.mu.Unlock()
	id, ok := s.imds.owners[accessKeyID]
	return id, ok
}

// CredentialExpired reports whether an access key IMDS handed out has
// expired: AWS then answers ExpiredTokenException ("The security token
// included in the request is expired").
func (s *Sim) CredentialExpired(accessKeyID string) bool {
	s.imds.mu.Lock()
	defer s.imds.mu.Unlock()
	c, ok := s.imds.issued[accessKeyID]
	return ok && !time.Now().Before(c.expiry)
}

// serveIMDS is the IMDSv2 stand-in of instance id (HttpTokens=required):
// PUT /latest/api/token, then GETs carrying the token.
func (s *Sim) serveIMDS(w http.ResponseWriter, r *http.Request, id, path string) {
	inst, ok := s.instance(id)
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Server", "EC2ws")
	if path == "/latest/api/token" {
		s.imdsToken(w, r, id)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, PUT")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	// IMDSv2 only: no token, an expired one or another instance's is 401.
	s.imds.mu.Lock()
	t, valid := s.imds.tokens[r.Header.Get(imdsTokenHeader)]
	if valid && time.Now().After(t.expiry) {
		delete(s.imds.tokens, r.Header.Get(imdsTokenHeader))
		valid = false
	}
	s.imds.mu.Unlock()
	if !valid || t.instanceID != id {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}

	role := roleName(inst.IamInstanceProfileArn)
	hostname := hostnameFor(inst.PrivateIP, id)
	domain := inst.Region + ".compute.internal"
	if inst.Region == "us-east-1" {
		domain = "ec2.internal"
	}
	az := inst.AvailabilityZone
	if az == "" {
		az = inst.Region + "a"
	}
	text := func(body string) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(body))
	}
	switch strings.TrimSuffix(path, "/") {
	case "/latest/meta-data":
		text("ami-id\nhostname\niam/\ninstance-id\nlocal-hostname\nlocal-ipv4\nplacement/\npublic-ipv4\n")
		return
	case "/latest/meta-data/instance-id":
		text(id)
		return
	case "/latest/meta-data/local-ipv4":
		text(inst.PrivateIP)
		return
	case "/latest/meta-data/public-ipv4":
		if inst.PublicIP != "" {
			text(inst.PublicIP)
			return
		}
	case "/latest/meta-data/local-hostname", "/latest/meta-data/hostname":
		text(hostname + "." + domain)
		return
	case "/latest/meta-data/placement":
		text("availability-zone\nregion\n")
		return
	case "/latest/meta-data/placement/region":
		text(inst.Region)
		return
	case "/latest/meta-data/placement/availability-zone":
		text(az)
		return
	case "/latest/meta-data/iam":
		if role != "" {
			text("info\nsecurity-credentials/\n")
			return
		}
	case "/latest/meta-data/iam/info":
		if role != "" {
			s.imdsJSON(w, map[string]string{
				"Code": "Success", "LastUpdated": time.Now().UTC().Format(time.RFC3339),
				"InstanceProfileArn": inst.IamInstanceProfileArn, "InstanceProfileId": "AIPA" + strings.ToUpper(strings.TrimPrefix(id, "i-")),
			})
			return
		}
	case "/latest/meta-data/iam/security-credentials":
		if role != "" {
			text(role)
			return
		}
	case "/latest/meta-data/iam/security-credentials/" + role:
		if role != "" {
			c := s.credentialsFor(id)
			s.imdsJSON(w, map[string]string{
				"Code": "Success", "LastUpdated": c.issued.UTC().Format(time.RFC3339), "Type": "AWS-HMAC",
				"AccessKeyId": c.accessKeyID, "SecretAccessKey": c.secret, "Token": c.session,
				"Expiration": c.expiry.UTC().Format(time.RFC3339),
			})
			return
		}
	}
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte("<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<html><head><title>404 - Not Found</title></head><body><h1>404 - Not Found</h1></body></html>\n"))
}

func (s *Sim) imdsJSON(w http.ResponseWriter, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write(b)
}

// imdsToken answers PUT /latest/api/token: a TTL of 1-21600 s is required.
func (s *Sim) imdsToken(w http.ResponseWriter, r *http.Request, id string) {
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", "PUT")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(imdsTTLHeader))
	if err != nil || ttl < 1 || ttl > 21600 {
		http.Error(w, "Bad Request", http.StatusBadRequest)
		return
	}
	tok := randomString(56, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") + "=="
	s.imds.mu.Lock()
	s.imds.tokens[tok] = imdsToken{instanceID: id, expiry: time.Now().Add(time.Duration(ttl) * time.Second)}
	s.imds.mu.Unlock()
	w.Header().Set(imdsTTLHeader, strconv.Itoa(ttl))
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(tok))
}

// credentialsFor returns the instance's current role credentials, issuing
// new ones when the last expire within 5 minutes: AWS "make[s] new
// credentials available at least five minutes before the expiration of the
// old credentials" (EC2 User Guide, IAM roles for EC2, "Retrieve security
// credentials from instance metadata"), and promises nothing more, so the
// credentials a script reads may expire five minutes later
// (fidelity.CredentialsNearExpiry). Lifetimes are AWS time, scaled.
func (s *Sim) credentialsFor(id string) *roleCredentials {
	scaled := func(d time.Duration) time.Duration { return time.Duration(float64(d) * s.lat.Scale()) }
	s.imds.mu.Lock()
	defer s.imds.mu.Unlock()
	c := s.imds.creds[id]
	if c != nil && time.Until(c.expiry) > scaled(5*time.Minute) {
		return c
	}
	now := time.Now()
	expiry := now.Add(scaled(credLifetime))
	if s.cfg.Fidelity.Happens(fidelity.CredentialsNearExpiry) {
		expiry = now.Add(time.Duration(rand.Int64N(int64(scaled(5*time.Minute)) + 1)))
	}
	c = &roleCredentials{
		accessKeyID: "ASIA" + randomString(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
		secret:      randomString(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"),
		session:     "IQoJb3JpZ2luX2VjE" + randomString(600, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"),
		issued:      now, expiry: expiry,
	}
	s.imds.creds[id] = c
	s.imds.owners[c.accessKeyID] = id
	s.imds.issued[c.accessKeyID] = c
	return c
}
