# install.sh: waits for MicroK8s, which every node installs at first boot
# (boot.sh, user data), and makes sure it runs. Node 0 then mints the join
# token and stores it in Parameter Store; the other nodes wait for it and
# join. One command for both: the joins start the moment node 0 is ready,
# with no second Run Command to dispatch.
# Inputs: CHANNEL, NODE0 (instance id), LEADER_IP (node 0's private IP),
# TOKEN_PARAM (empty for a single node), TOKEN_TTL (seconds), WORKERS
# (instance ids joining as workers), READY_TIMEOUT, RETRY_SECONDS.
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

if [ -z "$TOKEN_PARAM" ]; then
  exit 0
fi
start=$(now_ms)
if [ "$INSTANCE_ID" = "$NODE0" ]; then
  mint_token "$TOKEN_PARAM" "$TOKEN_TTL"
  echo "::mecd-check $(cert_check)"
  step joinToken "$start"
else
  # Node 0 finishes its own install about when this one does. The wait
  # ends before the command's own time limit, so a token that never comes
  # is named as such rather than as a timeout.
  join_cluster "$((READY_TIMEOUT * 9 / 10))"
  step join "$start"
fi
