# lib.sh: helpers shared by every mecd node script (prepended by the renderer).
# The node talks to Parameter Store itself, with its instance profile's
# credentials from IMDSv2, so no secret ever travels in a command's parameters
# or output (SSM Run Command keeps both in its history).
SNAP_COMMON=/var/snap/microk8s/common
SNAP_CURRENT=/var/snap/microk8s/current
IMDS_BASE="${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}"
IMDS_BASE="${IMDS_BASE%/}"
umask 077

# SSM Run Command keeps only the first 8,000 characters of a command's
# stderr (GetCommandInvocation): what the tools write there goes to a log,
# and a failing script ends by writing the log's last lines, so the cause
# shown is the end of the failure, not its beginning.
ERRLOG=$(mktemp)
exec 3>&2 2>>"$ERRLOG"
trap 'rc=$?; if [ "$rc" -ne 0 ]; then tail -c 6000 "$ERRLOG" >&3; fi; rm -f "$ERRLOG"' EXIT

die() {
  echo "mecd: $*" >&2
  exit 1
}

log() {
  echo "mecd: $*"
}

# now_ms prints the time in milliseconds since the epoch.
now_ms() {
  date +%s%3N
}

# step NAME START_MS: a progress marker the workflow reads back (no secrets).
step() {
  echo "::mecd-step $1 $2 $(now_ms)"
}

imds() {
  curl -sS --fail --retry 3 --retry-connrefused -H "X-aws-ec2-metadata-token: ${IMDS_TOKEN}" "${IMDS_BASE}/latest/$1"
}

# json_get PATH: reads JSON on stdin and prints the value at a dotted PATH.
json_get() {
  python3 -c '
import json, sys
d = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    d = d[k]
sys.stdout.write(d if isinstance(d, str) else json.dumps(d))
' "$1"
}

# aws_init reads the region and instance id from IMDSv2. The token lasts
# as long as IMDS allows (6 h): an install can outlast a short one.
aws_init() {
  IMDS_TOKEN=$(curl -sS --fail --retry 3 --retry-connrefused -X PUT "${IMDS_BASE}/latest/api/token" \
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600') || die "IMDSv2 token: is the metadata service reachable?"
  REGION=$(imds meta-data/placement/region)
  INSTANCE_ID=$(imds meta-data/instance-id)
  LOCAL_IP=$(imds meta-data/local-ipv4)
  SSM_URL="${AWS_ENDPOINT_URL_SSM:-https://ssm.${REGION}.amazonaws.com}"
  SSM_URL="${SSM_URL%/}"
}

# aws_creds reads the role's current credentials. It runs before every call:
# AWS makes new credentials available at least five minutes before the old
# ones expire, and promises nothing about credentials read earlier.
aws_creds() {
  local role creds
  role=$(imds meta-data/iam/security-credentials/) || die "no instance profile credentials"
  creds=$(imds "meta-data/iam/security-credentials/${role}")
  AWS_AK=$(printf '%s' "$creds" | json_get AccessKeyId)
  AWS_SK=$(printf '%s' "$creds" | json_get SecretAccessKey)
  AWS_ST=$(printf '%s' "$creds" | json_get Token)
}

# ssm ACTION BODY_FILE: one signed Parameter Store call; prints the answer's
# body. Credentials go to curl through a config on a pipe, never on its
# command line. Retries happen here, not with curl's --retry: with
# --fail-with-body, curl writes a failed attempt's body before the next
# attempt's, and the caller would read two JSON documents. Retried: no
# answer, 429 and 5xx, and SSM's HTTP 400 ThrottlingException and
# TooManyUpdates (curl would not retry those at all).
ssm() {
  local out code rc i
  for i in 1 2 3 4 5 6; do
    aws_creds
    rc=0
    out=$(curl -sS --fail-with-body -w '\n%{http_code}' --aws-sigv4 "aws:amz:${REGION}:ssm" \
      -K <(printf 'user = "%s:%s"\nheader = "x-amz-security-token: %s"\n' "$AWS_AK" "$AWS_SK" "$AWS_ST") \
      -H "X-Amz-Target: AmazonSSM.$1" -H 'Content-Type: application/x-amz-json-1.1' \
      --data-binary "@$2" "${SSM_URL}/") || rc=$?
    code=${out##*$'\n'}
    if [ "$code" = "$out" ]; then out=""; else out=${out%$'\n'*}; fi
    case "$rc:$code:$out" in
      0:*) break ;;
      *:000:* | *:429:* | *:5[0-9][0-9]:* | *:400:*ThrottlingException* | *:400:*TooManyUpdates*)
        [ "$i" -lt 6 ] && sleep "$(awk -v s="${RETRY_SECONDS:-1}" -v i="$i" 'BEGIN { print s * i }')" ;;
      *) break ;;
    esac
  done
  printf '%s' "$out"
  return "$rc"
}

# get_secure NAME: prints a SecureString's value (callers capture it).
get_secure() {
  local req out
  req=$(mktemp)
  printf '{"Name":"%s","WithDecryption":true}' "$1" >"$req"
  if ! out=$(ssm GetParameter "$req"); then
    rm -f "$req"
    die "read parameter $1: $(printf '%s' "$out" | head -c 300)"
  fi
  rm -f "$req"
  printf '%s' "$out" | json_get Parameter.Value
}

# put_secure NAME FILE: stores FILE's content as an Advanced-tier SecureString
# (a kubeconfig with embedded certificates is over the 4 KB Standard limit).
put_secure() {
  local req out
  req=$(mktemp)
  python3 -c '
import json, sys
print(json.dumps({"Name": sys.argv[1], "Value": open(sys.argv[2]).read(), "Type": "SecureString", "Tier": "Advanced", "Overwrite": True}))
' "$1" "$2" >"$req"
  if ! out=$(ssm PutParameter "$req"); then
    rm -f "$req"
    die "store parameter $1: $(printf '%s' "$out" | head -c 300)"
  fi
  rm -f "$req"
}

# cert_check prints the join check: the first 12 hex chars of the SHA-256 of
# this node's API server certificate (DER).
cert_check() {
  openssl x509 -in "${SNAP_CURRENT}/certs/server.crt" -outform DER | sha256sum | cut -c1-12
}

is_installed() {
  snap list microk8s >/dev/null 2>&1
}

# retry N CMD...: runs CMD until it succeeds, at most N times, waiting
# RETRY_SECONDS, then twice that, and so on, in between. It returns CMD's
# last exit status.
retry() {
  local n=$1 i=1 rc=0
  shift
  while :; do
    "$@" && return 0
    rc=$?
    if [ "$i" -ge "$n" ]; then
      return "$rc"
    fi
    sleep "$(awk -v s="$RETRY_SECONDS" -v i="$i" 'BEGIN { print s * i }')"
    i=$((i + 1))
  done
}
