package ssmsim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/sivchari/kumo"
)

func TestIMDSv2(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.addInstance(func(i *Instance) { i.PublicIP = "203.0.113.7" })
	b := e.addInstance(func(i *Instance) { i.IamInstanceProfileArn = "" })
	base := func(i Instance) string { return e.srv.URL + "/_sim/imds/" + i.ID }
	do := func(method, u string, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, u, nil)
		maps.Copy(req.Header, headerOf(hdr))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := do("PUT", base(a)+"/latest/api/token", nil); code != 400 {
		t.Fatalf("token without TTL: %d", code)
	}
	if code, _ := do("GET", base(a)+"/latest/meta-data/instance-id", nil); code != 401 {
		t.Fatalf("IMDSv1 GET: %d", code)
	}
	code, tok := do("PUT", base(a)+"/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"})
	if code != 200 || tok == "" {
		t.Fatalf("token: %d", code)
	}
	h := map[string]string{"X-aws-ec2-metadata-token": tok}
	for path, want := range map[string]string{
		"instance-id":                    a.ID,
		"local-ipv4":                     a.PrivateIP,
		"public-ipv4":                    "203.0.113.7",
		"local-hostname":                 hostnameFor(a.PrivateIP, a.ID) + ".ec2.internal",
		"placement/region":               "us-east-1",
		"placement/availability-zone":    "us-east-1a",
		"iam/security-credentials/":      "mecd-node-test",
		"iam/security-credentials/other": "",
	} {
		code, body := do("GET", base(a)+"/latest/meta-data/"+path, h)
		if want == "" {
			if code != 404 {
				t.Errorf("%s: %d", path, code)
			}
			continue
		}
		if code != 200 || body != want {
			t.Errorf("%s: %d %q, want %q", path, code, body, want)
		}
	}
	_, info := do("GET", base(a)+"/latest/meta-data/iam/info", h)
	if !strings.Contains(info, a.IamInstanceProfileArn) {
		t.Fatalf("iam/info %s", info)
	}
	_, body := do("GET", base(a)+"/latest/meta-data/iam/security-credentials/mecd-node-test", h)
	var creds struct{ Code, AccessKeyId, SecretAccessKey, Token, Expiration string }
	if err := json.Unmarshal([]byte(body), &creds); err != nil || creds.Code != "Success" || !strings.HasPrefix(creds.AccessKeyId, "ASIA") ||
		len(creds.AccessKeyId) != 20 || creds.SecretAccessKey == "" || creds.Token == "" || creds.Expiration == "" {
		t.Fatalf("credentials %v %+v", err, creds)
	}
	if owner, ok := e.sim.CredentialOwner(creds.AccessKeyId); !ok || owner != a.ID {
		t.Fatalf("owner %q %v", owner, ok)
	}
	if _, ok := e.sim.CredentialOwner("ASIANOTISSUED"); ok {
		t.Fatal("unknown key has an owner")
	}
	// A token is good for its own instance only; an instance without a profile has no credentials.
	if code, _ := do("GET", base(b)+"/latest/meta-data/instance-id", h); code != 401 {
		t.Fatalf("token of another instance: %d", code)
	}
	_, tokB := do("PUT", base(b)+"/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"})
	if code, _ := do("GET", base(b)+"/latest/meta-data/iam/security-credentials/", map[string]string{"X-aws-ec2-metadata-token": tokB}); code != 404 {
		t.Fatalf("no profile: %d", code)
	}
	if code, _ := do("GET", base(b)+"/latest/meta-data/public-ipv4", map[string]string{"X-aws-ec2-metadata-token": tokB}); code != 404 {
		t.Fatalf("no public IP: %d", code)
	}
}

// TestScriptReadsSecureStringWithIMDSCredentials is the node scripts' way to a
// secret: IMDSv2 credentials, then curl --aws-sigv4 to Parameter Store (kumo,
// behind the test front), the value written to a file and never printed.
func TestScriptReadsSecureStringWithIMDSCredentials(t *testing.T) {
	k := kumo.NewServer()
	t.Cleanup(k.Close)
	ku, _ := url.Parse(k.URL)
	e := newEnv(t, envOptions{fallback: httputil.NewSingleHostReverseProxy(ku)})
	inst := e.addInstance()

	secretBytes := make([]byte, 24)
	_, _ = rand.Read(secretBytes)
	secret := hex.EncodeToString(secretBytes)
	name := "/mecd/x/join-token"
	if _, err := e.ssm.PutParameter(context.Background(), &ssm.PutParameterInput{Name: &name, Value: &secret,
		Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}

	script := `set -euo pipefail
IMDS="${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}"
IMDS_TOKEN=$(curl -sS -f -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$IMDS/latest/api/token")
ROLE=$(curl -sS -f -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" "$IMDS/latest/meta-data/iam/security-credentials/")
CREDS=$(curl -sS -f -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" "$IMDS/latest/meta-data/iam/security-credentials/$ROLE")
field() { printf '%s' "$CREDS" | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
AK=$(field AccessKeyId); SK=$(field SecretAccessKey); TOKEN=$(field Token)
umask 077
curl -sS -f --aws-sigv4 "aws:amz:${AWS_REGION}:ssm" --user "$AK:$SK" -H "x-amz-security-token: $TOKEN" \
  -H 'X-Amz-Target: AmazonSSM.GetParameter' -H 'Content-Type: application/x-amz-json-1.1' \
  -d '{"Name":"/mecd/x/join-token","WithDecryption":true}' "$AWS_ENDPOINT_URL_SSM/" |
  python3 -c 'import json,sys; sys.stdout.write(json.load(sys.stdin)["Parameter"]["Value"])' > "${MECD_HOST_ROOT:-}/etc-join-token"
echo "read with $AK"`
	r := e.mustSh(t, inst.ID, script)
	got, err := os.ReadFile(filepath.Join(e.host(t, inst.ID).RootDir, "etc-join-token"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != secret {
		t.Fatalf("the script read %d bytes, not the secret", len(got))
	}
	ak := strings.TrimPrefix(strings.TrimSpace(r.stdout), "read with ")
	if owner, ok := e.sim.CredentialOwner(ak); !ok || owner != inst.ID {
		t.Fatalf("credentials %q not from this host's IMDS", ak)
	}
	for _, inv := range e.sim.Invocations() {
		if strings.Contains(inv.Stdout+inv.Stderr+strings.Join(inv.Parameters["commands"], ""), secret) {
			t.Fatal("the secret leaked into the command's parameters or outputs")
		}
	}
}

// headerOf is hdr as a canonical http.Header.
func headerOf(hdr map[string]string) http.Header {
	h := http.Header{}
	for k, v := range hdr {
		h.Set(k, v)
	}
	return h
}
