# finalize.sh: on node 0, enables the addons, verifies every node is Ready
# and stores the kubeconfig, pointed at the MEC's endpoint, as a SecureString.
# Inputs: ADDONS (space separated), EXPECTED_NODES, ENDPOINT_HOST,
# KUBECONFIG_PARAM, VERIFY_ATTEMPTS, RETRY_SECONDS.
# Right after the joins the API server may refuse connections for a while
# (dqlite re-forms): every call that needs it is retried, never fatal at once.
aws_init
# Every node joined: no token of this build stays valid.
revoke_tokens
start=$(now_ms)
if [ -n "$ADDONS" ]; then
  # shellcheck disable=SC2086 # one word per addon
  retry 8 microk8s enable $ADDONS || die "microk8s enable ${ADDONS} failed"
fi
step addons "$start"

start=$(now_ms)
ready=0
for _ in $(seq 1 "$VERIFY_ATTEMPTS"); do
  if nodes=$(microk8s kubectl get nodes --no-headers); then
    ready=$(printf '%s\n' "$nodes" | awk '$2 == "Ready" { n++ } END { print n + 0 }')
    if [ "$ready" -ge "$EXPECTED_NODES" ]; then
      break
    fi
  fi
  sleep "$RETRY_SECONDS"
done
if [ "$ready" -lt "$EXPECTED_NODES" ]; then
  microk8s kubectl get nodes --no-headers >&2 || true
  die "only ${ready} of ${EXPECTED_NODES} nodes are Ready"
fi
echo "::mecd-nodes-ready ${ready}"
step verify "$start"

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
