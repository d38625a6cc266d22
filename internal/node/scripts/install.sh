# install.sh: waits for MicroK8s, which every node installs at first boot
# (boot.sh, user data), and makes sure it runs. Node 0 then
# mints the join token, stores it in Parameter Store and prints the
# certificate check the other nodes join with.
# Inputs: CHANNEL, NODE0 (instance id),
# TOKEN_PARAM (empty for a single node), TOKEN_TTL (seconds), READY_TIMEOUT,
# RETRY_SECONDS.
aws_init
start=$(now_ms)
# The user data (boot.sh) installs MicroK8s at first boot: wait for it.
if command -v cloud-init >/dev/null; then
  timeout "$READY_TIMEOUT" cloud-init status --wait >/dev/null || log "cloud-init did not finish cleanly: installing here"
fi
if [ -f "${MECD_STATE}/boot-install" ]; then
  read -r boot_start boot_end <"${MECD_STATE}/boot-install"
  start=$boot_start
else
  # No install at boot (no cloud-init, or it failed): the same, now.
  install_microk8s
fi
microk8s status --wait-ready --timeout "$READY_TIMEOUT" >/dev/null || die "microk8s did not become ready"
step install "$start"

if [ "$INSTANCE_ID" = "$NODE0" ] && [ -n "$TOKEN_PARAM" ]; then
  start=$(now_ms)
  mint_token "$TOKEN_PARAM" "$TOKEN_TTL"
  echo "::mecd-check $(cert_check)"
  step joinToken "$start"
fi
