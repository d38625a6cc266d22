# install.sh: installs MicroK8s on every node in parallel. Node 0 then
# mints the join token, stores it in Parameter Store and prints the
# certificate check the other nodes join with.
# Inputs: CHANNEL, EXTRA_SANS (space separated), NODE0 (instance id),
# TOKEN_PARAM (empty for a single node), TOKEN_TTL (seconds), READY_TIMEOUT,
# RETRY_SECONDS.
aws_init
start=$(now_ms)
# At first boot snapd takes no change before it seeded the image's snaps.
snap wait system seed.loaded
# No snap (the SSM agent's included) auto-refreshes while the MEC is built;
# the hold ends by itself.
snap refresh --hold=3h >/dev/null || log "could not hold snap refreshes"
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

if is_installed; then
  log "microk8s already installed"
else
  install_snap || die "snap install microk8s failed"
fi
microk8s status --wait-ready --timeout "$READY_TIMEOUT" >/dev/null || die "microk8s did not become ready"
step install "$start"

if [ "$INSTANCE_ID" = "$NODE0" ] && [ -n "$TOKEN_PARAM" ]; then
  start=$(now_ms)
  mint_token "$TOKEN_PARAM" "$TOKEN_TTL"
  echo "::mecd-check $(cert_check)"
  step joinToken "$start"
fi
