# finalize.sh: on node 0, finishes the build when the install command did
# not (a join failed and was retried after a reset, or lagged): see
# finalize_cluster in lib.sh.
# Inputs: ADDONS (space separated), EXPECTED_NODES, EXPECT_IPS (optional), ENDPOINT_HOST,
# KUBECONFIG_PARAM, VERIFY_ATTEMPTS, RETRY_SECONDS, and for mecd's own addons
# OWN_ADDONS, ADDON_TIMEOUT, STORAGE_DISKS.
aws_init
finalize_cluster
