# shrink.sh: on node 0, takes the leaving nodes out of the cluster one at a
# time: cordon, drain (bounded: a pod that will not go does not hold the
# scale), then `microk8s remove-node --force`, which deletes the Kubernetes
# node and, for a control-plane node, its dqlite entry (MicroK8s
# scripts/wrappers/remove_node.py: without --force a node registered with
# dqlite is refused until it ran `microk8s leave`; the instance is
# terminated next, so it never will). One node at a time: dqlite removes a
# voter by a configuration change its leader commits with a quorum of the
# voters left. After each removal the node's address is added to the
# "::mecd-removed" line, so a failure part way says which nodes are out.
# A lost node (a repair: DRAIN "no") is not drained: its kubelet is gone, a
# drain would wait for pods that never end, and deleting its Node object
# lets Kubernetes delete them.
# Inputs: LEAVING (space separated private IPs), DRAIN ("yes" or "no"),
# DRAIN_TIMEOUT (seconds), RETRY_SECONDS.
start=$(now_ms)
removed=""
for ip in $LEAVING; do
  name=$(node_name "$ip")
  if [ -n "$name" ] && [ "$DRAIN" = yes ]; then
    retry 3 microk8s kubectl cordon "$name" >/dev/null
    if ! microk8s kubectl drain "$name" --ignore-daemonsets --delete-emptydir-data --force \
      --timeout="${DRAIN_TIMEOUT}s" >/dev/null 2>&1; then
      log "draining ${name} did not finish within ${DRAIN_TIMEOUT}s: removing it anyway"
    fi
  fi
  if [ -n "$name" ]; then
    if ! out=$(retry 3 microk8s remove-node "$ip" --force 2>&1); then
      # Gone already (an earlier run of this command removed it, and its
      # answer was lost): that is what was asked.
      if [ -n "$(node_name "$ip")" ]; then
        die "removing node ${ip} (${name}) failed: $(printf '%s' "$out" | tail -c 400)"
      fi
      log "node ${ip} (${name}) is no longer in the cluster"
    fi
  else
    # Not a Kubernetes node (a join that failed part way): --force still
    # clears a dqlite entry of the address, and exits 1 (remove_node.py).
    microk8s remove-node "$ip" --force >/dev/null 2>&1 || true
    log "node ${ip} was not a Kubernetes node"
  fi
  removed="${removed},${ip}"
  echo "::mecd-removed ${removed#,}"
done
step shrink "$start"
