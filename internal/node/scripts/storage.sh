# storage.sh: helpers for the replicated-storage addon, added after lib.sh
# to every command but the user data (boot.sh), which has no room for them.
# Replicated storage (the replicated-storage addon, Longhorn). STORAGE_DISKS
# is the number of data volumes per node; each is mounted at
# ${DISKS_DIR}/dataN, the same N on every node, so node 0 can tell Longhorn
# every node's disks.
DISKS_DIR=/var/lib/mecd/disks

# data_disks prints the data volumes' device links in volume id order, so
# each keeps its number on every run. On Nitro instances an EBS volume is an
# NVMe device whose serial is its volume id, and udev names it
# /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<id> (EBS User Guide,
# "Amazon EBS and NVMe"; systemd 60-persistent-storage.rules, which also
# makes "-partN" links for partitions and "_N" links for the namespace).
# The root volume is the one with partitions.
data_disks() {
  local l
  for l in /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol*; do
    case $l in *-part* | *_[0-9]*) continue ;; esac
    [ -e "$l" ] || continue
    [ -e "${l}-part1" ] && continue
    printf '%s\n' "$l"
  done
}

# prepare_storage (every node, before it joins): what Longhorn needs of a
# node (Longhorn docs, "Installation Requirements"). iscsid running:
# longhorn-manager starts only where it finds the iscsid process
# (longhorn-manager app/daemon.go environmentCheck), and Ubuntu starts
# iscsid on demand (iscsid.socket), so it is started here, and open-iscsi
# installed if the image lacks it. The iscsi_tcp module, now and at every
# boot. multipathd kept off Longhorn's iSCSI disks (/dev/sd*), which it
# would otherwise claim (Longhorn KB, "MountVolume.SetUp failed for volume
# due to multipathd on the node"). Then each data volume: formatted ext4 if
# it holds no filesystem (a volume with any signature is never formatted),
# in /etc/fstab (nofail: a missing volume does not stop the boot), mounted.
prepare_storage() {
  local disks d dir n=0 uuid
  if ! systemctl enable --now iscsid.service >/dev/null 2>&1; then
    log "iscsid does not start: installing open-iscsi"
    # A new instance has no package index for its sources (cloud-init
    # points them at the region's mirror and, by default, does not run
    # apt-get update: "Unable to locate package" without this).
    retry 3 apt-get update -q >&2 || die "apt-get update failed: open-iscsi cannot be installed"
    DEBIAN_FRONTEND=noninteractive retry 3 apt-get install -y -q open-iscsi >&2 ||
      die "apt-get install open-iscsi failed: Longhorn needs iscsiadm and iscsid on every node"
    systemctl enable --now iscsid.service >&2 || die "iscsid does not start: Longhorn needs it on every node"
  fi
  modprobe iscsi_tcp || die "the iscsi_tcp kernel module does not load: Longhorn's V1 engine needs it"
  mkdir -p /etc/modules-load.d /etc/multipath/conf.d
  echo iscsi_tcp >/etc/modules-load.d/mecd-longhorn.conf
  printf 'blacklist {\n  devnode "^sd[a-z0-9]+"\n}\n' >/etc/multipath/conf.d/mecd-longhorn.conf
  if systemctl is-active --quiet multipathd.service; then
    systemctl restart multipathd.service >&2 || die "multipathd does not restart"
  fi
  mapfile -t disks < <(data_disks)
  [ "${#disks[@]}" -ge "$STORAGE_DISKS" ] ||
    die "found ${#disks[@]} of ${STORAGE_DISKS} data volumes (/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol*)"
  for d in "${disks[@]:0:$STORAGE_DISKS}"; do
    dir="${DISKS_DIR}/data${n}"
    mkdir -p "$dir"
    if ! mountpoint -q "$dir"; then
      # blkid -p exits 2 when the device holds no signature at all.
      if blkid -p "$d" >/dev/null 2>&1; then
        :
      elif [ $? -eq 2 ]; then
        mkfs.ext4 -q -m 0 -L "mecd-data${n}" "$d" >&2 || die "mkfs.ext4 on ${d} failed"
      else
        die "blkid cannot read ${d}"
      fi
      uuid=$(blkid -s UUID -o value "$d") || die "${d} has no filesystem UUID"
      grep -q "^UUID=${uuid} " /etc/fstab || echo "UUID=${uuid} ${dir} ext4 defaults,nofail 0 2" >>/etc/fstab
      mount "$d" "$dir" >&2 || die "mount ${d} on ${dir} failed"
    fi
    n=$((n + 1))
  done
  echo "::mecd-data-disks ${n}"
}

# label_storage_nodes (node 0): tells Longhorn every node's disks, the
# label node.longhorn.io/create-default-disk=config and the annotation
# node.longhorn.io/default-disks-config, which longhorn-manager reads for a
# node without disks, also one labelled after it registered (with the
# setting create-default-disk-labeled-nodes: controller/
# kubernetes_node_controller.go syncDefaultDisks). A node without the
# label gets no disk: Longhorn never writes to a root volume.
label_storage_nodes() {
  local cfg="" i
  for i in $(seq 0 $((STORAGE_DISKS - 1))); do
    cfg="${cfg}${cfg:+,}{\"name\":\"data${i}\",\"path\":\"${DISKS_DIR}/data${i}\",\"allowScheduling\":true}"
  done
  retry 8 microk8s kubectl annotate nodes --all --overwrite "node.longhorn.io/default-disks-config=[${cfg}]" >&2 ||
    die "could not annotate the nodes with their Longhorn disks"
  retry 8 microk8s kubectl label nodes --all --overwrite node.longhorn.io/create-default-disk=config >&2 ||
    die "could not label the nodes for their Longhorn disks"
}

# undefault_hostpath (node 0): Longhorn's class is the default StorageClass;
# microk8s-hostpath (hostpath-storage, which observability enables too)
# stops being one, so no claim without a class lands on a node-local disk
# (with two, Kubernetes would pick the newer: "Change the default
# StorageClass"). Without hostpath-storage there is nothing to change.
undefault_hostpath() {
  local out i
  for i in 1 2 3 4 5; do
    if out=$(microk8s kubectl annotate storageclass microk8s-hostpath --overwrite storageclass.kubernetes.io/is-default-class=false 2>&1); then
      return 0
    fi
    case $out in *NotFound*) return 0 ;; esac
    sleep "$RETRY_SECONDS"
  done
  printf '%s\n' "$out" | tail -n 3 >&2
  die "could not make microk8s-hostpath a non-default StorageClass"
}

# longhorn_disks_pending (node 0: replicated-storage's check once its pods
# are ready) prints each Kubernetes node whose Longhorn node lacks one of
# its STORAGE_DISKS disks, or has one not Ready or not Schedulable
# (nodes.longhorn.io spec.disks and status.diskStatus conditions:
# longhorn-manager k8s/pkg/apis/longhorn/v1beta2/node.go), and nothing once
# every node has them all. Longhorn takes a node's disks from its
# annotation silently or not at all (a refused one is a warning in its
# log), so its pods can all be ready where no replica can be placed.
longhorn_disks_pending() {
  local nodes lhn
  if ! nodes=$(microk8s kubectl get nodes --no-headers 2>/dev/null | awk '{ print $1 }') || [ -z "$nodes" ]; then
    echo "the API server did not list the nodes"
    return 0
  fi
  if ! lhn=$(microk8s kubectl -n longhorn-system get nodes.longhorn.io -o json 2>/dev/null); then
    echo "nodes.longhorn.io could not be read"
    return 0
  fi
  # shellcheck disable=SC2086 # one word per node
  printf '%s' "$lhn" | python3 -c '
import json, sys
want = int(sys.argv[1])
have = {n["metadata"]["name"]: n for n in json.load(sys.stdin).get("items") or []}
out = []
for name in sys.argv[2:]:
    n = have.get(name)
    if n is None:
        out.append(name + ": no Longhorn node yet")
        continue
    disks = (n.get("spec") or {}).get("disks") or {}
    if len(disks) < want:
        out.append("%s: %d of %d Longhorn disks (node.longhorn.io/default-disks-config not taken)" % (name, len(disks), want))
    status = (n.get("status") or {}).get("diskStatus") or {}
    for d in sorted(disks):
        conds = {c.get("type"): c for c in (status.get(d) or {}).get("conditions") or []}
        for t in ("Ready", "Schedulable"):
            c = conds.get(t) or {}
            if c.get("status") != "True":
                out.append("%s: disk %s not %s%s" % (name, d, t, " (%s)" % c["reason"] if c.get("reason") else ""))
print("; ".join(out))
' "${STORAGE_DISKS:-1}" $nodes
}
