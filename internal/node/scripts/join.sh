# join.sh: joins this node to node 0's cluster again after a failed join
# and its reset (the first join is the install step's, install.sh).
# Inputs: LEADER_IP, TOKEN_PARAM, WORKERS (instance ids joining as workers), READY_TIMEOUT,
# RETRY_SECONDS.
aws_init
start=$(now_ms)
# Node 0 stored the reset's fresh token before this was sent.
join_cluster "$READY_TIMEOUT"
step join "$start"
