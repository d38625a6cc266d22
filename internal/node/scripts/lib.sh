# lib.sh: helpers shared by every mecd node script (prepended by the renderer).
# The node talks to Parameter Store itself, with its instance profile's
# credentials from IMDSv2, so no secret ever travels in a command's parameters
# or output (SSM Run Command keeps both in its history).
SNAP_COMMON=/var/snap/microk8s/common
SNAP_CURRENT=/var/snap/microk8s/current
# mecd's own state on the node (root only).
MECD_STATE=/var/lib/mecd/state
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

# join_failed: like die, with exit 3, which tells the workflow that this
# node's join failed (it resets the node and retries) rather than the step.
join_failed() {
  echo "mecd: $*" >&2
  exit 3
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
# TooManyUpdates (curl would not retry those at all), and
# ExpiredTokenException: credentials read just before they expired, which
# the next attempt reads anew (IMDS has had new ones for five minutes); and
# AccessDeniedException: the step that sent this script has just changed
# the node role's policy, and IAM applies a change only after a while
# (eventually consistent); a real denial fails after the last attempt.
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
      *:000:* | *:429:* | *:5[0-9][0-9]:* | *:400:*ThrottlingException* | *:400:*TooManyUpdates* | *:400:*ExpiredTokenException* | *:400:*AccessDeniedException*)
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

# await_secure NAME SECONDS: get_secure, waiting up to SECONDS while the
# parameter does not exist yet (another node stores it). It looks again
# after a tenth of the time already waited, at least a tenth of
# RETRY_SECONDS (1 s on AWS; never under 50 ms) and at most RETRY_SECONDS:
# the wait is on the critical path, but every joiner of every MEC building
# polls Parameter Store, whose GetParameter allows 40 calls a second per
# account by default (standard throughput), so a long wait looks seldom.
await_secure() {
  local req out deadline start
  req=$(mktemp)
  printf '{"Name":"%s","WithDecryption":true}' "$1" >"$req"
  deadline=$(($(date +%s) + $2))
  start=$(now_ms)
  while ! out=$(ssm GetParameter "$req" 2>/dev/null); do
    case "$out" in
      *ParameterNotFound*) ;;
      *)
        rm -f "$req"
        die "read parameter $1: $(printf '%s' "$out" | head -c 300)"
        ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
      rm -f "$req"
      die "parameter $1 did not appear within $2 s: $(printf '%s' "$out" | head -c 200)"
    fi
    sleep "$(awk -v s="${RETRY_SECONDS:-1}" -v ms="$(($(now_ms) - start))" \
      'BEGIN { w = s / 10; if (w < 0.05) w = 0.05; if (ms / 10000 > w) w = ms / 10000; if (w > s) w = s; print w }')"
  done
  rm -f "$req"
  printf '%s' "$out" | json_get Parameter.Value
}

# join_cluster (a joining node): joins node 0's cluster with the token node 0
# stored in TOKEN_PARAM, waiting up to WAIT seconds for it, verifying node
# 0's certificate with the check stored with it (never --skip-verify), as a
# worker if WORKERS names this instance. A failed join exits 3.
# Inputs: LEADER_IP, TOKEN_PARAM, WORKERS; $1: WAIT.
join_cluster() {
  local marker="${SNAP_COMMON}/.mecd-joined" args=() w url errfile
  if [ -f "$marker" ]; then
    log "already joined"
    return 0
  fi
  for w in $WORKERS; do
    if [ "$w" = "$INSTANCE_ID" ]; then
      args+=(--worker)
    fi
  done
  url=$(await_secure "$TOKEN_PARAM" "$1") || exit 1
  # "<token>/<check>": without the check, join.py would not verify node 0.
  if ! [[ "$url" =~ ^[^/]+/[0-9a-f]{12}$ ]]; then
    unset url
    die "the join token in ${TOKEN_PARAM} carries no certificate check: node 0 must store it again (a reset does)"
  fi
  errfile=$(mktemp)
  # join.py prints its failures on stdout ("Connection failed. ...",
  # "Failed to join cluster. Error code ..."): keep both streams.
  if ! microk8s join "${LEADER_IP}:25000/${url}" "${args[@]}" >"$errfile" 2>&1; then
    # The error may quote the join URL: never let the token out.
    sed "s/${url%%/*}/<redacted>/g" "$errfile" | tail -n 20 >&2
    rm -f "$errfile"
    join_failed "microk8s join failed on ${INSTANCE_ID}"
  fi
  rm -f "$errfile"
  unset url
  touch "$marker"
}

# put_secure NAME FILE TIER OVERWRITE: stores FILE's content as a SecureString
# (a kubeconfig with embedded certificates is over the 4 KB Standard limit:
# Advanced). With OVERWRITE "false" a value already there is kept: the node
# role may write such a parameter once (ssm:Overwrite), and a retried step
# finds its earlier write.
put_secure() {
  local req out
  req=$(mktemp)
  python3 -c '
import json, sys
print(json.dumps({"Name": sys.argv[1], "Value": open(sys.argv[2]).read(), "Type": "SecureString", "Tier": sys.argv[3], "Overwrite": sys.argv[4] == "true"}))
' "$1" "$2" "$3" "$4" >"$req"
  if ! out=$(ssm PutParameter "$req"); then
    rm -f "$req"
    case "$4:$out" in
      false:*ParameterAlreadyExists*)
        log "parameter $1 was stored before"
        return 0
        ;;
    esac
    die "store parameter $1: $(printf '%s' "$out" | head -c 300)"
  fi
  rm -f "$req"
}

# mint_token PARAM TTL (node 0): MicroK8s makes a join token valid for TTL
# seconds and prints it, so it is on no command line (`microk8s join`, on
# the joiners, takes it only as an argument: scripts/wrappers/join.py). It
# is stored as PARAM for the joiners, followed by "/" and this node's
# certificate check (not a secret: the joiners verify node 0 with it), as
# the end of a join URL; its hash is kept for revoke_tokens.
mint_token() {
  local tok f
  tok=$(microk8s add-node --token-ttl "$2" --format token 2>/dev/null) || die "microk8s add-node failed"
  tok=$(printf '%s' "$tok" | tr -d '[:space:]')
  [ "${#tok}" -ge 32 ] || die "microk8s add-node printed no token"
  printf '%s' "$tok" | sha256sum | cut -d' ' -f1 >>"${SNAP_COMMON}/.mecd-tokens"
  f=$(mktemp)
  printf '%s/%s' "$tok" "$(cert_check)" >"$f"
  unset tok
  put_secure "$1" "$f" Standard true
  rm -f "$f"
}

# revoke_tokens (node 0): removes every token mint_token made from
# MicroK8s' token file. MicroK8s has no command for it, and keeps a TTL
# token valid until it expires even after a join used it
# (microk8s-cluster-agent pkg/snap/snap.go ConsumeClusterToken); the file
# holds "<token>" or "<token>|<expiry>" lines (scripts/wrappers/add_token.py).
revoke_tokens() {
  local hashes="${SNAP_COMMON}/.mecd-tokens" file="${SNAP_CURRENT}/credentials/cluster-tokens.txt"
  if [ ! -f "$hashes" ] || [ ! -f "$file" ]; then
    return 0
  fi
  # Another run of this step may be revoking at the same time (a retried
  # command): whichever comes second finds less, or nothing, to do.
  python3 -c '
import hashlib, sys
try:
    spent = set(open(sys.argv[2]).read().split())
    lines = open(sys.argv[1]).read().splitlines(keepends=True)
except FileNotFoundError:
    sys.exit(0)
path = sys.argv[1]
keep = [l for l in lines if hashlib.sha256(l.strip().split("|", 1)[0].encode()).hexdigest() not in spent]
with open(path, "w") as f:  # in place: the file keeps its owner and mode
    f.writelines(keep)
' "$file" "$hashes" || die "could not revoke the join tokens"
  rm -f "$hashes"
}

# cert_check prints the join check: the first 12 hex chars of the SHA-256 of
# this node's API server certificate (DER).
cert_check() {
  openssl x509 -in "${SNAP_CURRENT}/certs/server.crt" -outform DER | sha256sum | cut -c1-12
}

is_installed() {
  snap list microk8s >/dev/null 2>&1
}

# retry N CMD...: runs CMD until it succeeds, waiting a tenth of
# RETRY_SECONDS (at least 50 ms) before the second try, then twice that, and
# so on up to RETRY_SECONDS, for as long in all as RETRY_SECONDS × N(N-1)/2
# (and at most 4N tries): a service that comes back (the API server after
# dqlite re-formed) is seen soon after, not a whole interval late. It
# returns CMD's last exit status.
retry() {
  local n=$1 i=1 rc=0 w slept=0 budget
  shift
  budget=$(awk -v s="$RETRY_SECONDS" -v n="$n" 'BEGIN { print s * n * (n - 1) / 2 }')
  w=$(awk -v s="$RETRY_SECONDS" 'BEGIN { w = s / 10; print (w < 0.05 ? 0.05 : w) }')
  while :; do
    "$@" && return 0
    rc=$?
    if [ "$i" -ge $((4 * n)) ] || awk -v a="$slept" -v b="$budget" 'BEGIN { exit !(a >= b) }'; then
      return "$rc"
    fi
    sleep "$w"
    slept=$(awk -v a="$slept" -v w="$w" 'BEGIN { print a + w }')
    w=$(awk -v w="$w" -v s="$RETRY_SECONDS" 'BEGIN { w *= 2; print (w > s ? s : w) }')
    i=$((i + 1))
  done
}

# write_launch_config writes MicroK8s' launch configuration, which `snap
# install` reads: the API server certificate also names this node's
# addresses, the public one (an endpoint a kubeconfig may point at) included.
write_launch_config() {
  local public
  public=$(imds meta-data/public-ipv4 2>/dev/null) || public=""
  mkdir -p "$SNAP_COMMON"
  {
    echo "---"
    echo "version: 0.1.0"
    # With the dns addon, as MicroK8s' own default configuration
    # (microk8s.default.yaml), which this one displaces, sets them: every
    # node has the addon's kubelet arguments from the start, a node that
    # joins while node 0 enables dns included.
    if [ -n "${CLUSTER_DNS:-}" ]; then
      echo "extraKubeletArgs:"
      echo "  --cluster-domain: cluster.local"
      echo "  --cluster-dns: ${CLUSTER_DNS}"
    fi
    echo "extraSANs:"
    for san in $public $LOCAL_IP; do
      echo "  - ${san}"
    done
  } >"${SNAP_COMMON}/.microk8s.yaml"
}

# install_microk8s installs MicroK8s with its launch configuration, unless
# it is there already.
install_microk8s() {
  # At first boot snapd takes no change before it seeded the image's snaps.
  snap wait system seed.loaded
  # No snap (the SSM agent's included) auto-refreshes while the MEC is
  # built; the hold ends by itself.
  snap refresh --hold=3h >/dev/null || log "could not hold snap refreshes"
  write_launch_config
  if is_installed; then
    log "microk8s already installed"
  else
    install_snap || die "snap install microk8s failed"
  fi
}

# install_snap retries while snapd answers exit 10 (too early, or another
# change on microk8s in progress); any other failure is final.
install_snap() {
  local rc=0
  for _ in $(seq 1 30); do
    snap install microk8s --classic --channel="$CHANNEL" && return 0
    rc=$?
    [ "$rc" -eq 10 ] || return "$rc"
    log "snapd is busy; trying again"
    sleep "$RETRY_SECONDS"
  done
  return "$rc"
}

# finalize_cluster (node 0, every node joined): enables the addons, verifies
# every node is Ready and stores the kubeconfig, pointed at the MEC's
# endpoint, as a SecureString. Right after the joins the API server may
# refuse connections for a while (dqlite re-forms): every call that needs it
# is retried, never fatal at once. Inputs: ADDONS (space separated),
# EXPECTED_NODES, ENDPOINT_HOST, KUBECONFIG_PARAM, VERIFY_ATTEMPTS, and for
# mecd's own addons OWN_ADDONS, ADDON_TIMEOUT and STORAGE_DISKS (with
# replicated-storage: storage.sh).
finalize_cluster() {
  local start ready=0 nodes kc every
  # ADDONS_START: the install command enabled some addons already, from then.
  start=${ADDONS_START:-$(now_ms)}
  # shellcheck disable=SC2086 # one word per addon
  add_addons $ADDONS
  # mecd's own addons (internal/addons), after the MicroK8s addons they need.
  if [ -n "${STORAGE_DISKS:-}" ]; then
    label_storage_nodes
  fi
  for a in ${OWN_ADDONS:-}; do
    "addon_${a//-/_}"
  done
  if [ -n "${STORAGE_DISKS:-}" ]; then
    undefault_hostpath
  fi
  step addons "$start"

  start=$(now_ms)
  ready=0
  # VERIFY_ATTEMPTS poll intervals in all, looking every tenth of one.
  every=$(awk -v s="$RETRY_SECONDS" 'BEGIN { e = s / 10; print (e < 0.05 ? 0.05 : e) }')
  # EXPECT_IPS (a scale's or a repair's new nodes) must be Ready
  # themselves: a count alone is met by a node that is about to leave (its
  # agent lost, its kubelet still up) before a new one joined.
  missing=""
  for _ in $(seq 1 $((VERIFY_ATTEMPTS * 10))); do
    if nodes=$(microk8s kubectl get nodes -o wide --no-headers 2>/dev/null); then
      ready=$(printf '%s\n' "$nodes" | awk '$2 == "Ready" { n++ } END { print n + 0 }')
      missing=""
      for ip in ${EXPECT_IPS:-}; do
        printf '%s\n' "$nodes" | awk -v ip="$ip" '$6 == ip && $2 == "Ready" { f = 1 } END { exit !f }' || missing="${missing} ${ip}"
      done
      if [ "$ready" -ge "$EXPECTED_NODES" ] && [ -z "$missing" ]; then
        break
      fi
    fi
    sleep "$every"
  done
  if [ -n "$missing" ]; then
    microk8s kubectl get nodes --no-headers >&2 || true
    die "the new nodes${missing} are not Ready"
  fi
  if [ "$ready" -lt "$EXPECTED_NODES" ]; then
    microk8s kubectl get nodes --no-headers >&2 || true
    die "only ${ready} of ${EXPECTED_NODES} nodes are Ready"
  fi
  echo "::mecd-nodes-ready ${ready}"
  step verify "$start"

  # Every node joined: no token of this build stays valid.
  revoke_tokens
  start=$(now_ms)
  kc=$(mktemp)
  retry 5 microk8s config >"$kc" || die "microk8s config failed"
  python3 -c '
import re, sys
path, host = sys.argv[1], sys.argv[2]
text = open(path).read()
text, n = re.subn(r"(?m)^(\s*server:\s*)https://[^\s]+$", lambda m: m.group(1) + "https://" + host + ":16443", text)
if n == 0:
    sys.exit("kubeconfig has no server line")
open(path, "w").write(text)
  ' "$kc" "$ENDPOINT_HOST"
  put_secure "$KUBECONFIG_PARAM" "$kc" Advanced false
  rm -f "$kc"
  step kubeconfig "$start"
  echo "::mecd-finalized yes"
}

# apply_addon NAME NAMESPACE TIMEOUT ROLLOUTS JOBS [CHECK] (node 0; the
# manifest on stdin, gzipped and base64 encoded): applies one of mecd's own
# addons, then waits until it is ready: each rollout done (which waits for
# its pods' readiness probes, the services' own health checks), each job
# complete, then CHECK printing nothing (what it prints is what is not
# ready), all within TIMEOUT seconds (at most ADDON_TIMEOUT, a third of
# the command's own time, so the script names what is not ready before SSM
# ends it). A wait the API server cut short (it refuses connections while
# dqlite re-forms) is tried again until the deadline. What is not ready is
# named, with the pods that are not.
apply_addon() {
  local name=$1 ns=$2 limit=$3 rollouts=$4 jobs=$5 check=${6:-} f out start deadline left r pending="" every pods ok
  start=$(now_ms)
  [ "$limit" -le "$ADDON_TIMEOUT" ] || limit=$ADDON_TIMEOUT
  deadline=$((start + limit * 1000))
  every=$(awk -v s="$RETRY_SECONDS" 'BEGIN { e = s / 10; print (e < 0.05 ? 0.05 : e) }')
  f=$(mktemp)
  if ! base64 -d | gunzip >"$f"; then
    rm -f "$f"
    die "addon ${name}: its manifest does not decode"
  fi
  # Quiet unless it fails: SSM keeps only the first 8,000 characters of
  # stderr (GetCommandInvocation), and the cause must not be cut off.
  if ! out=$(retry 8 microk8s kubectl apply -f "$f" 2>&1); then
    rm -f "$f"
    printf '%s\n' "$out" | tail -n 5 >&2
    die "addon ${name}: kubectl apply failed"
  fi
  rm -f "$f"
  for r in $rollouts $jobs; do
    ok=0
    while :; do
      left=$(((deadline - $(now_ms)) / 1000))
      [ "$left" -ge 1 ] || left=1
      case $r in
        job/*) microk8s kubectl -n "$ns" wait --for=condition=complete "$r" --timeout="${left}s" >/dev/null 2>&1 && ok=1 ;;
        *) microk8s kubectl -n "$ns" rollout status "$r" --timeout="${left}s" >/dev/null 2>&1 && ok=1 ;;
      esac
      if [ "$ok" -eq 1 ] || [ "$(now_ms)" -ge "$deadline" ]; then
        break
      fi
      sleep "$every"
    done
    [ "$ok" -eq 1 ] || pending="${pending} ${r}"
  done
  if [ -n "$pending" ]; then
    # Pods not ready: READY short of its total, and not a finished Job's.
    pods=$(microk8s kubectl -n "$ns" get pods --no-headers 2>/dev/null |
      awk '{ split($2, n, "/") } n[1] != n[2] && $3 != "Completed" { printf "%s%s %s", sep, $1, $3; sep = ", " }') || true
    die "addon ${name} is not ready after ${limit}s:${pending}${pods:+ (pods: ${pods})}"
  fi
  # The addon's own readiness beyond its pods (Check in internal/addons).
  if [ -n "$check" ]; then
    while :; do
      out=$("$check") || out="${out:-${check} failed}"
      if [ -z "$out" ] || [ "$(now_ms)" -ge "$deadline" ]; then
        break
      fi
      sleep "$every"
    done
    [ -z "$out" ] || die "addon ${name} is not ready after ${limit}s: ${out}"
  fi
  echo "::mecd-addon-${name} ready:$((($(now_ms) - start) / 1000))s"
}

# add_addons ADDON... (node 0): enables the addons, retried (the API server
# may refuse connections for a while after a join). Their output goes to
# stderr: stdout keeps the markers, and SSM returns only the first 24,000
# characters of each (GetCommandInvocation).
add_addons() {
  [ "$#" -eq 0 ] || retry 8 microk8s enable "$@" >&2 || die "microk8s enable $* failed"
  for a in "$@"; do
    echo "::mecd-addon-${a} enabled"
  done
}

# await_members N MS (node 0): waits up to MS milliseconds until N nodes are
# in the cluster (the API lists a node once its kubelet registered, after
# its join), looking every tenth of RETRY_SECONDS (at least 50 ms).
await_members() {
  local want=$1 until=$(($(now_ms) + $2)) n every
  every=$(awk -v s="$RETRY_SECONDS" 'BEGIN { e = s / 10; print (e < 0.05 ? 0.05 : e) }')
  while :; do
    n=$(microk8s kubectl get nodes --no-headers 2>/dev/null | wc -l) || n=0
    if [ "$n" -ge "$want" ]; then
      return 0
    fi
    if [ "$(now_ms)" -ge "$until" ]; then
      return 1
    fi
    sleep "$every"
  done
}

# node_name IP prints the name of the Kubernetes node whose internal address
# is IP ("" when none is): the INTERNAL-IP column of `kubectl get nodes -o
# wide`, as MicroK8s' remove_node.py matches a node by its InternalIP.
node_name() {
  retry 3 microk8s kubectl get nodes -o wide --no-headers | awk -v ip="$1" '$6 == ip { print $1; exit }'
}

