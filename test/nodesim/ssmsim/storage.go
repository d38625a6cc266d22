package ssmsim

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Disk is an EBS volume attached to an instance, as the host sees it.
type Disk struct {
	VolumeID string
	// Root: the volume the image boots from (partitioned).
	Root bool
}

// hostStorage is what a host's storage tools see and change: its block
// devices, their filesystems and mounts, and the services, packages and
// kernel modules Longhorn's node preparation touches.
type hostStorage struct {
	ready    bool              // devices made under the host root
	devs     map[string]string // by-id link name -> device ("/dev/nvme1n1")
	fs       map[string]fsInfo // device -> its filesystem
	mounts   map[string]string // mount point (host path) -> device
	active   map[string]bool   // systemd unit -> active
	enabled  map[string]bool   // systemd unit -> enabled
	packages map[string]bool
	modules  map[string]bool
	indexed  bool // apt-get update ran: the package index is there
}

type fsInfo struct{ kind, uuid, label string }

// A host starts as Ubuntu Server 24.04 on EC2 does, as far as these tools
// go: open-iscsi is installed (it is in Ubuntu's server seed) but iscsid
// does not run until something connects to iscsid.socket (the package's
// socket activation); multipathd (multipath-tools, also in the seed) runs;
// iscsi_tcp is a module of the kernel's modules package, not loaded. apt
// has no package index that matches its sources: cloud-init points them at
// the region's mirror at first boot and does not run apt-get update unless
// the user data asks (cloud-init docs, "Configure APT": package_update
// "The default is false"; mirrors "auto select based on instance-data in
// EC2"), so the simulator takes the worst case, no index at all.
func newHostStorage() hostStorage {
	return hostStorage{
		devs: map[string]string{}, fs: map[string]fsInfo{}, mounts: map[string]string{},
		active:   map[string]bool{"multipathd.service": true},
		enabled:  map[string]bool{"multipathd.service": true},
		packages: map[string]bool{"open-iscsi": true, "multipath-tools": true},
		modules:  map[string]bool{},
	}
}

// availableModules are the kernel modules modprobe finds.
var availableModules = map[string]bool{"iscsi_tcp": true, "nvme_tcp": true, "dm_crypt": true}

// units are the systemd units the simulator knows, with the package that
// ships each.
var units = map[string]string{"iscsid.service": "open-iscsi", "multipathd.service": "multipath-tools"}

// makeDevicesLocked makes the host's block devices under its root, as
// udev names them on a Nitro instance: each EBS volume is an NVMe device
// (nvme0n1 the root, partitioned, then the others in attachment order)
// whose serial is the volume id without its dash, so
// /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<id> links to it,
// and "-partN" links to its partitions (EBS User Guide, "Amazon EBS and
// NVMe"; systemd 60-persistent-storage.rules). Caller holds s.mu.
func (h *host) makeDevicesLocked(disks []Disk) error {
	if h.storage.ready || len(disks) == 0 {
		return nil
	}
	byID := filepath.Join(h.root, "dev/disk/by-id")
	if err := os.MkdirAll(byID, 0o755); err != nil {
		return err
	}
	ordered := slices.Clone(disks)
	slices.SortStableFunc(ordered, func(a, b Disk) int {
		if a.Root != b.Root {
			if a.Root {
				return -1
			}
			return 1
		}
		return 0
	})
	for i, d := range ordered {
		dev := fmt.Sprintf("nvme%dn1", i)
		link := "nvme-Amazon_Elastic_Block_Store_" + strings.ReplaceAll(d.VolumeID, "-", "")
		names := map[string]string{link: dev}
		if d.Root {
			names[link+"-part1"] = dev + "p1"
			h.storage.fs["/dev/"+dev+"p1"] = fsInfo{kind: "ext4", uuid: newUUID(), label: "cloudimg-rootfs"}
		}
		for name, target := range names {
			if err := os.WriteFile(filepath.Join(h.root, "dev", target), nil, 0o600); err != nil {
				return err
			}
			_ = os.Remove(filepath.Join(byID, name))
			if err := os.Symlink("../../"+target, filepath.Join(byID, name)); err != nil {
				return err
			}
			h.storage.devs[name] = "/dev/" + target
		}
	}
	h.storage.ready = true
	return nil
}

// hostPath is the path a script meant: a path under the host root (the
// script's mapped paths) is taken back to the host's own.
func (h *host) hostPath(p string) string {
	if rel, ok := strings.CutPrefix(p, h.root); ok && (rel == "" || rel[0] == '/') {
		return "/" + strings.TrimPrefix(rel, "/")
	}
	return p
}

// device is the block device a path names ("" if none): a /dev node or a
// by-id link to one.
func (h *host) deviceLocked(p string) string {
	hp := h.hostPath(p)
	if name, ok := strings.CutPrefix(hp, "/dev/disk/by-id/"); ok {
		return h.storage.devs[name]
	}
	for _, d := range h.storage.devs {
		if d == hp {
			return d
		}
	}
	return ""
}

// storageTool runs the host tools Longhorn's node preparation uses. Each
// answers as the real one does, its exit codes included.
func (s *Sim) storageTool(h *host, argv []string) result {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &h.storage
	if st.devs == nil {
		*st = newHostStorage()
	}
	args := argv[1:]
	switch argv[0] {
	case "systemctl":
		return st.systemctl(args)
	case "modprobe":
		// modprobe(8): a module it cannot find is fatal, exit 1.
		if len(args) != 1 || strings.HasPrefix(args[0], "-") {
			return fail(1, "modprobe: the node simulator loads one module by name\n")
		}
		if !availableModules[args[0]] {
			return fail(1, fmt.Sprintf("modprobe: FATAL: Module %s not found in directory /lib/modules/6.14.0-1015-aws\n", args[0]))
		}
		st.modules[args[0]] = true
		return success("")
	case "apt-get":
		return st.aptGet(args)
	case "blkid":
		return h.blkidLocked(args)
	case "mkfs.ext4":
		return h.mkfsLocked(args)
	case "mount":
		return h.mountLocked(args)
	case "mountpoint":
		// mountpoint(1): 0 for a mount point, 32 otherwise.
		if len(args) != 2 || args[0] != "-q" {
			return fail(1, "mountpoint: the node simulator takes -q DIR\n")
		}
		if st.mounts[h.hostPath(args[1])] != "" {
			return success("")
		}
		return result{code: 32}
	}
	return fail(127, argv[0]+": command not found\n")
}

// systemctl: enable [--now], start, restart, is-active [--quiet]. A unit
// whose package is not installed does not exist ("Unit file ... does not
// exist", exit 1; is-active prints inactive, exit 3: systemctl(1)).
func (st *hostStorage) systemctl(args []string) result {
	var verb, unit string
	now, quiet := false, false
	for _, a := range args {
		switch {
		case a == "--now":
			now = true
		case a == "--quiet" || a == "-q":
			quiet = true
		case strings.HasPrefix(a, "-"):
			return fail(1, fmt.Sprintf("systemctl: unrecognized option '%s'\n", a))
		case verb == "":
			verb = a
		case unit == "":
			unit = a
		default:
			return fail(1, "systemctl: the node simulator takes one unit\n")
		}
	}
	if !strings.Contains(unit, ".") {
		unit += ".service"
	}
	exists := st.packages[units[unit]]
	switch verb {
	case "is-active":
		out := "inactive\n"
		if exists && st.active[unit] {
			out = "active\n"
		}
		if quiet {
			out = ""
		}
		if exists && st.active[unit] {
			return success(out)
		}
		return result{stdout: out, code: 3}
	case "enable", "start", "restart":
		if !exists {
			if verb == "enable" {
				return fail(1, fmt.Sprintf("Failed to enable unit: Unit file %s does not exist.\n", unit))
			}
			return fail(5, fmt.Sprintf("Failed to %s %s: Unit %s not found.\n", verb, unit, unit))
		}
		if verb == "enable" {
			st.enabled[unit] = true
			if !now {
				return success("")
			}
		}
		st.active[unit] = true
		return success("")
	}
	return fail(1, fmt.Sprintf("systemctl: the node simulator does not know the verb %q\n", verb))
}

// aptGet is apt-get(8) for the one package node preparation may install:
// `update` (fetches the package index), `install -y [-q] open-iscsi`
// (another package, or any before the index is there, is one apt-get
// cannot locate: "E: Unable to locate package", exit 100) and `remove -y
// PKG` (a minimal image is one without it).
func (st *hostStorage) aptGet(args []string) result {
	var verb string
	var pkgs []string
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "-"):
		case verb == "":
			verb = a
		default:
			pkgs = append(pkgs, a)
		}
	}
	switch verb {
	case "update":
		st.indexed = true
		return success("Reading package lists...\n")
	case "remove":
		for _, p := range pkgs {
			delete(st.packages, p)
			for u, owner := range units {
				if owner == p {
					st.active[u], st.enabled[u] = false, false
				}
			}
		}
		return success("")
	case "install":
		if len(pkgs) == 0 {
			break
		}
		for _, p := range pkgs {
			if p != "open-iscsi" || !st.indexed {
				return fail(100, fmt.Sprintf("E: Unable to locate package %s\n", p))
			}
		}
		st.packages["open-iscsi"] = true
		return success("Setting up open-iscsi (2.1.9-3ubuntu5.4) ...\n")
	}
	return fail(100, "E: the node simulator's apt-get knows update, install and remove\n")
}

// blkidLocked: `blkid -p DEV` (low-level probe) and `blkid -s TAG -o value
// DEV`. blkid(8): exit 2 when no token is found, a device without any
// signature included.
func (h *host) blkidLocked(args []string) result {
	tag, dev := "", ""
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-p":
		case (a == "-s" || a == "-o") && i+1 < len(args):
			if a == "-s" {
				tag = args[i+1]
			} else if args[i+1] != "value" {
				return fail(4, "blkid: the node simulator prints -o value only\n")
			}
			i++
		default:
			dev = a
		}
	}
	d := h.deviceLocked(dev)
	fs, ok := h.storage.fs[d]
	if d == "" || !ok {
		return result{code: 2}
	}
	vals := map[string]string{"UUID": fs.uuid, "LABEL": fs.label, "TYPE": fs.kind}
	if tag != "" {
		if vals[tag] == "" {
			return result{code: 2}
		}
		return success(vals[tag] + "\n")
	}
	return success(fmt.Sprintf("%s: UUID=%q LABEL=%q TYPE=%q USAGE=\"filesystem\"\n", h.hostPath(dev), fs.uuid, fs.label, fs.kind))
}

// mkfsLocked is `mkfs.ext4 [-q] [-m N] [-L LABEL] DEV`: it refuses a
// mounted device, as mke2fs does.
func (h *host) mkfsLocked(args []string) result {
	label, dev := "", ""
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-q" || a == "-F":
		case (a == "-m" || a == "-L") && i+1 < len(args):
			if a == "-L" {
				label = args[i+1]
			}
			i++
		default:
			dev = a
		}
	}
	d := h.deviceLocked(dev)
	if d == "" {
		return fail(1, "mke2fs: No such file or directory while trying to determine filesystem size\n")
	}
	for _, m := range h.storage.mounts {
		if m == d {
			return fail(1, fmt.Sprintf("%s is mounted; will not make a filesystem here!\n", h.hostPath(dev)))
		}
	}
	h.storage.fs[d] = fsInfo{kind: "ext4", uuid: newUUID(), label: label}
	return success("")
}

// mountLocked is `mount DEV DIR`. mount(8) exits 32 when the mount fails:
// no such mount point, no filesystem it can mount, or already mounted.
func (h *host) mountLocked(args []string) result {
	if len(args) != 2 || strings.HasPrefix(args[0], "-") {
		return fail(1, "mount: the node simulator takes DEVICE DIR\n")
	}
	dev, dir := args[0], h.hostPath(args[1])
	if fi, err := os.Stat(args[1]); err != nil || !fi.IsDir() {
		return fail(32, fmt.Sprintf("mount: %s: mount point does not exist.\n", dir))
	}
	d := h.deviceLocked(dev)
	if cur := h.storage.mounts[dir]; cur != "" {
		return fail(32, fmt.Sprintf("mount: %s: %s already mounted on %s.\n", dir, cur, dir))
	}
	if _, ok := h.storage.fs[d]; d == "" || !ok {
		return fail(32, fmt.Sprintf("mount: %s: wrong fs type, bad option, bad superblock on %s, missing codepage or helper program, or other error.\n", dir, h.hostPath(dev)))
	}
	h.storage.mounts[dir] = d
	return success("")
}
