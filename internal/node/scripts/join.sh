# join.sh: joins this node to node 0's cluster, verifying node 0's
# certificate with the check hash (never --skip-verify).
# Inputs: LEADER_IP, CHECK, TOKEN_PARAM, WORKERS (instance ids joining as workers).
aws_init
start=$(now_ms)
marker="${SNAP_COMMON}/.mecd-joined"
if [ -f "$marker" ]; then
  log "already joined"
  step join "$start"
  exit 0
fi
args=()
for w in $WORKERS; do
  if [ "$w" = "$INSTANCE_ID" ]; then
    args+=(--worker)
  fi
done
token=$(get_secure "$TOKEN_PARAM")
errfile=$(mktemp)
if ! microk8s join "${LEADER_IP}:25000/${token}/${CHECK}" "${args[@]}" >/dev/null 2>"$errfile"; then
  # The error may quote the join URL: never let the token out.
  sed "s/${token}/<redacted>/g" "$errfile" | tail -n 20 >&2
  rm -f "$errfile"
  die "microk8s join failed on ${INSTANCE_ID}"
fi
rm -f "$errfile"
unset token
touch "$marker"
step join "$start"
