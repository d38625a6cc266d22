# install.sh: waits for MicroK8s, which every node installs at first boot
# (boot.sh, user data), and makes sure it runs. Node 0 then mints the join
# token and stores it in Parameter Store; the other nodes wait for it and
# join. Once every node joined, node 0 finishes the build (finalize_cluster:
# addons, the nodes Ready, the kubeconfig). One command for all of it: the
# joins start the moment node 0 is ready, the addons a join cannot miss
# (EARLY_ADDONS) at the same time, and the others (LATE_ADDONS) the moment
# the last node joined, with no other Run Command to dispatch. A join that fails or
# lags past JOIN_WAIT_MS leaves the finish to the finalize step (a scale,
# which has none, fails instead).
# Inputs: CHANNEL, CLUSTER_DNS (as boot.sh's), NODE0 (instance id), LEADER_IP (node 0's private IP),
# TOKEN_PARAM (empty for a single node), TOKEN_TTL (seconds), WORKERS
# (instance ids joining as workers), READY_TIMEOUT, RETRY_SECONDS,
# JOIN_WAIT_MS, EARLY_ADDONS and LATE_ADDONS (ADDONS split), STORAGE_DISKS
# (data volumes per node, with replicated-storage), and finalize_cluster's
# (node 0).
# unfinished WHY (node 0): the finish did not happen in this command. A
# provisioning's finalize step does it next; a scale (EXPECT_IPS: its new
# nodes) has no such step, so its command fails naming why.
unfinished() {
  if [ -n "${EXPECT_IPS:-}" ]; then
    die "$1: the scale is not finished"
  fi
  log "$1: the finalize step finishes the build"
}

aws_init
began=$(now_ms)
start=$began
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
# Replicated storage: the node's disks and iSCSI, before Longhorn can land
# on it (it lands once the node joined).
if [ -n "${STORAGE_DISKS:-}" ]; then
  start=$(now_ms)
  prepare_storage
  step storage "$start"
fi

# The finish needs its inputs (finalize_cluster's): without them, as a
# command that only installs, it is the finalize step's.
finish=${KUBECONFIG_PARAM:-}
if [ -z "$TOKEN_PARAM" ]; then
  if [ -n "$finish" ]; then
    finalize_cluster
  fi
  exit 0
fi
start=$(now_ms)
if [ "$INSTANCE_ID" = "$NODE0" ]; then
  mint_token "$TOKEN_PARAM" "$TOKEN_TTL"
  echo "::mecd-check $(cert_check)"
  step joinToken "$start"
  # The addons a join cannot miss (EARLY_ADDONS; SplitAddons in
  # internal/node) are enabled while the others join.
  early=""
  if [ -n "$finish" ] && [ -n "${EARLY_ADDONS:-}" ]; then
    ADDONS_START=$(now_ms)
    # shellcheck disable=SC2086 # one word per addon
    (add_addons $EARLY_ADDONS) &
    early=$!
  fi
  # The finish runs only with half the command's time limit left, and a
  # failure of it (a node that registered but whose join then failed leaves
  # too few Ready) is not this node's: it leaves the finish to the finalize
  # step, after the joins' outcome decided what comes first. A background
  # job keeps `set -e` in force inside it (a condition would turn it off).
  joined=0
  if [ -n "$finish" ] && await_members "$EXPECTED_NODES" "$JOIN_WAIT_MS"; then
    joined=1
  fi
  if [ -n "$early" ]; then
    if wait "$early"; then
      ADDONS=${LATE_ADDONS:-}
    else
      unset ADDONS_START
      log "enabling ${EARLY_ADDONS} before the joins ended failed: they are enabled again after them"
    fi
  fi
  if [ -z "$finish" ]; then
    :
  elif [ "$joined" -eq 0 ]; then
    unfinished "not every node joined within ${JOIN_WAIT_MS} ms"
  elif [ $(($(now_ms) - began)) -gt $((READY_TIMEOUT * 500)) ]; then
    unfinished "less than half the command's time is left"
  else
    (finalize_cluster) &
    if ! wait $!; then
      unfinished "finishing the build failed here"
    fi
  fi
else
  # Node 0 finishes its own install about when this one does. The wait
  # ends before the command's own time limit, so a token that never comes
  # is named as such rather than as a timeout.
  join_cluster "$((READY_TIMEOUT * 9 / 10))"
  step join "$start"
fi
