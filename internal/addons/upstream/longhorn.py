#!/usr/bin/env python3
"""Writes manifests/longhorn.yaml from Longhorn's own install manifest.

Usage: python3 upstream/longhorn.py LONGHORN_YAML > manifests/longhorn.yaml
where LONGHORN_YAML is deploy/longhorn.yaml of the release tag (Longhorn's
documented kubectl install: the Helm chart rendered with its default
values). Its sha256 is checked: another release is a deliberate change here.

mecd's changes, each for a reason (the header of the output lists them):
- CRD descriptions are dropped: they are kubectl explain's text, 40 % of
  the file, and the whole node command must stay small (internal/addons
  Script); validation (types, enums, required) is kept.
- Settings (longhorn-default-setting, read by longhorn-manager at its first
  start; types/setting.go names them):
  create-default-disk-labeled-nodes: disks only where node 0 labelled a node
  (its data volumes), never the root volume;
  node-down-pod-deletion-policy delete-both-statefulset-and-deployment-pod:
  a lost node's pods are force-deleted so their volumes attach elsewhere;
  upgrade-checker and allow-collecting-longhorn-usage-metrics false: nodes
  do not call Longhorn's upgrade responder.
- KUBELET_ROOT_DIR on longhorn-driver-deployer (the chart's
  csi.kubeletRootDir): MicroK8s' kubelet runs inside kubelite, so Longhorn's
  detection, which looks for a kubelet or k3s process
  (longhorn-manager app/get_proc_arg.go), fails on MicroK8s.
"""
import hashlib
import sys

import yaml

RELEASE = "v1.12.1"
SHA256 = "41648963af867ac1d0c85755fb53cf61cacd57c9bb22e1942e3fb0439eeb04fd"
KUBELET_ROOT_DIR = "/var/snap/microk8s/common/var/lib/kubelet"
SETTINGS = {
    "create-default-disk-labeled-nodes": "true",
    "node-down-pod-deletion-policy": "delete-both-statefulset-and-deployment-pod",
    "upgrade-checker": "false",
    "allow-collecting-longhorn-usage-metrics": "false",
}


def strip(o):
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items() if k != "description"}
    if isinstance(o, list):
        return [strip(x) for x in o]
    return o


def literal(dumper, s):
    style = "|" if "\n" in s else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style=style)


def main(path):
    raw = open(path, "rb").read()
    got = hashlib.sha256(raw).hexdigest()
    if got != SHA256:
        sys.exit(f"{path}: sha256 {got}, not Longhorn {RELEASE}'s {SHA256}")
    out = []
    for d in yaml.safe_load_all(raw):
        if d is None:
            continue
        kind, name = d["kind"], d["metadata"]["name"]
        if kind == "CustomResourceDefinition":
            d = strip(d)
        elif kind == "ConfigMap" and name == "longhorn-default-setting":
            text = d["data"]["default-setting.yaml"].rstrip("\n")
            for k, v in SETTINGS.items():
                text += f'\n{k}: "{v}"'
            d["data"]["default-setting.yaml"] = text + "\n"
        elif kind == "Deployment" and name == "longhorn-driver-deployer":
            c = d["spec"]["template"]["spec"]["containers"][0]
            c["env"].append({"name": "KUBELET_ROOT_DIR", "value": KUBELET_ROOT_DIR})
        out.append(d)
    yaml.add_representer(str, literal, Dumper=yaml.SafeDumper)
    sys.stdout.write(
        f"# Longhorn {RELEASE} (github.com/longhorn/longhorn deploy/longhorn.yaml,\n"
        f"# sha256 {got}), as written by internal/addons/upstream/longhorn.py:\n"
        "# CRD descriptions dropped; settings create-default-disk-labeled-nodes,\n"
        "# node-down-pod-deletion-policy, upgrade-checker and usage metrics off;\n"
        f"# KUBELET_ROOT_DIR={KUBELET_ROOT_DIR} on the driver deployer.\n"
    )
    sys.stdout.write(yaml.safe_dump_all(out, sort_keys=False, width=1000, explicit_start=True))


if __name__ == "__main__":
    main(sys.argv[1])
