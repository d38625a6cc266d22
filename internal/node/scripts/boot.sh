# boot.sh: the nodes' user data. Cloud-init runs it once, at first boot, as
# root, while the SSM agent registers: it installs MicroK8s with its launch
# configuration, so the install overlaps the agent's start (whose tail is
# long). It holds no secret: anyone allowed ec2:DescribeInstanceAttribute
# can read user data. The install step waits for it (cloud-init status
# --wait) and reports its timings; it installs itself if this did not.
# Inputs: CHANNEL, CLUSTER_DNS (the dns addon's address, or empty without
# it), RETRY_SECONDS.
aws_init
start=$(now_ms)
mkdir -p "$MECD_STATE"
install_microk8s
echo "${start} $(now_ms)" >"${MECD_STATE}/boot-install"
