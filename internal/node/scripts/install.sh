# install.sh: installs MicroK8s on every node in parallel. Node 0 then
# registers the join token (read from Parameter Store) and prints the
# certificate check the other nodes join with.
# Inputs: CHANNEL, EXTRA_SANS (space separated), NODE0 (instance id),
# TOKEN_PARAM (empty for a single node), TOKEN_TTL (seconds), READY_TIMEOUT.
aws_init
start=$(now_ms)
mkdir -p "$SNAP_COMMON"
# The launch configuration must exist before `snap install` reads it.
{
  echo "---"
  echo "version: 0.1.0"
  echo "extraSANs:"
  for san in $EXTRA_SANS; do
    echo "  - ${san}"
  done
} >"${SNAP_COMMON}/.microk8s.yaml"
if is_installed; then
  log "microk8s already installed"
else
  snap install microk8s --classic --channel="$CHANNEL"
fi
microk8s status --wait-ready --timeout "$READY_TIMEOUT" >/dev/null
step install "$start"

if [ "$INSTANCE_ID" = "$NODE0" ] && [ -n "$TOKEN_PARAM" ]; then
  start=$(now_ms)
  token=$(get_secure "$TOKEN_PARAM")
  # add-node prints the token in its join instructions: discard them.
  microk8s add-node --token "$token" --token-ttl "$TOKEN_TTL" >/dev/null 2>&1 ||
    die "microk8s add-node failed"
  unset token
  echo "::mecd-check $(cert_check)"
  step joinToken "$start"
fi
