# reset.sh: undoes a failed join so it can be retried: node 0 forgets the
# failed nodes (dqlite would answer "already known"), each failed node leaves.
# Inputs: NODE0 (instance id), FAILED_IPS (space separated private IPs),
# TOKEN_PARAM, TOKEN_TTL (seconds).
aws_init
start=$(now_ms)
if [ "$INSTANCE_ID" = "$NODE0" ]; then
  for ip in $FAILED_IPS; do
    microk8s remove-node "$ip" --force >/dev/null 2>&1 || log "node ${ip} was not known"
  done
  # A fresh token for the retry; the old ones end here.
  revoke_tokens
  mint_token "$TOKEN_PARAM" "$TOKEN_TTL"
else
  rm -f "${SNAP_COMMON}/.mecd-joined"
  microk8s leave >/dev/null 2>&1 || log "nothing to leave"
fi
step reset "$start"
