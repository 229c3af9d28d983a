"""Conversions between physical machines and virtual machines: P2V (cold and hot), V2V across VMM
kinds, V2P with the hardware-profile check.

Design note
-----------
Models the survey's conversion rows (``../shared/reference/survey.md`` rows 9-12) with the tools
that do them: ``virt-p2v`` / ``virt-v2v`` (libguestfs: copy the disk, ``qemu-img convert`` the
image format, inject virtio or Xen drivers, fix the boot configuration) and disk-cloning for V2P
(Clonezilla/partclone: copy the used blocks, the target hardware's drivers).

* **Cold P2V**: the source is stopped; the used blocks (or every block) cross the link at
  min(disk rate, link rate); drivers are injected; the VM boots. Total = copy + injection + boot.
* **Hot P2V**: the copy runs while the source works and writes (its changed-block bitmap records
  what it dirties); then the source stops, the changed blocks are synced, and the switch-over
  (driver injection, boot, the address taken over). Downtime = final sync + switch-over.
  The guest first boots with emulated devices (``hvm``) and can switch to PV drivers (``pvhvm``).
* **V2V** across VMM kinds (Xen <-> KVM): offline -- shutdown, image conversion at disk speed (read
  and write of the used blocks), the copy over the link, driver replacement, boot. The target must
  run the target mode (Xen runs pv, pv32, pvh, hvm, hvm-shadow, pvhvm; KVM runs kvm-virtio; a
  VMware-style VMM runs bt). **PV kernel assumption**: a 64-bit PV guest runs a pvops Linux kernel,
  which boots unchanged as an HVM/KVM guest (pvops detects the platform at boot), so only its
  drivers change; a 32-bit PV (``pv32``, XenLinux-style) kernel cannot boot outside Xen PV and is
  swapped for a distribution kernel (``swap_kernel``; KERNEL_SWAP_MS), otherwise refused.
* **V2P**: block copy of the image to the physical disk; an image carries one hardware profile and
  is refused on another unless the target's drivers are injected.

Simplifications: contiguous used blocks; a constant write rate; the link carries nothing else;
driver injection and boot are fixed times (below, each an assumption).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from guest_kernels.modes import MODES
from pvsim.core.errors import ScenarioError
from pvsim.core.schema import unknown
from pvsim.ha.disk import BLOCK, Disk

# which VMM kind runs which mode: read from the mode table (``ModeSpec.vmm``)
VMM_RUNS = {k: tuple(m for m, s in MODES.items() if s.vmm == k) for k in ("xen", "kvm", "vmware")}


def _xenlinux(mode: str) -> bool:
    """A 32-bit PV (XenLinux) kernel: boots only as a 32-bit PV guest of Xen."""
    return MODES[mode].guest_type == "pv32"

DRIVER_INJECT_MS = 30_000  # virt-v2v: mount the image, install virtio/PV drivers, rebuild initramfs [assumption]
SWITCH_ADDR_MS = 50  # gratuitous ARP for the kept addresses [assumption]
BOOT_VM_MS = 15_000  # the converted guest boots (firmware, kernel, init) [assumption]
BOOT_PHYS_MS = 60_000  # a physical server boots: POST, firmware, kernel, init [assumption]
CLEAN_STOP_MS = 10_000  # the guest's clean shutdown before an offline conversion [assumption]
KERNEL_SWAP_MS = 60_000  # install a distribution kernel in place of a XenLinux PV kernel [assumption]


@dataclass(frozen=True)
class DiskArgs:
    size_gib: float = 20.0
    used_frac: float = 0.4
    disk_mb_per_s: float = 500.0  # sequential read of the source disk (10^6 B/s)
    link_mbps: float = 1000.0
    write_mb_per_s: float = 0.0  # the source's writes during a hot copy
    hot_mib: float = 256.0
    all_blocks: bool = False
    seed: int = 0


def _disk(a: DiskArgs) -> Disk:
    if not 0 < a.size_gib <= 64 * 1024:
        raise ScenarioError("--size-gib", f"must be 0..65536, got {a.size_gib:g}")
    if not 0 < a.used_frac <= 1:
        raise ScenarioError("--used-frac", f"must be in (0, 1], got {a.used_frac:g}")
    if a.disk_mb_per_s <= 0:
        raise ScenarioError("--disk-mb-per-s", "must be > 0")
    if a.link_mbps <= 0:
        raise ScenarioError("--link-mbps", "must be > 0")
    return Disk(int(a.size_gib * 1024), a.used_frac, a.write_mb_per_s, a.hot_mib, seed=a.seed)


def _rate(a: DiskArgs) -> float:
    """Bytes per ms of a copy: the slower of the disk and the link."""
    return min(a.disk_mb_per_s * 1e6, a.link_mbps * 1e6 / 8) / 1e3


def _copy(d: Disk, a: DiskArgs, dst) -> tuple[int, float]:
    n = d.copy_all_to(dst) if a.all_blocks else d.copy_used_to(dst)
    return n, n * BLOCK / _rate(a)


def p2v(a: DiskArgs, hot: bool = False, inject_ms: float = DRIVER_INJECT_MS, boot_ms: float = BOOT_VM_MS) -> dict:
    d = _disk(a)
    dst = np.zeros(d.n, dtype=np.int64)
    n, copy_ms = _copy(d, a, dst)
    row = {"kind": "p2v", "method": "hot" if hot else "cold", "blocks_copied": n, "copy_ms": copy_ms,
           "inject_ms": inject_ms, "boot_ms": boot_ms, "boots_as": "hvm", "then": "pvhvm"}
    if not hot:
        total = copy_ms + inject_ms + boot_ms
        row.update(sync_blocks=0, sync_ms=0.0, total_ms=total, downtime_ms=total, bytes=n * BLOCK)
    else:
        d.run(copy_ms * 1e6)  # the source writes while it is copied
        changed = int(d.changed.sum())
        s = d.sync_to(dst)
        sync_ms = s * BLOCK / _rate(a)
        switch = inject_ms + boot_ms + SWITCH_ADDR_MS
        row.update(sync_blocks=s, sync_ms=sync_ms, switch_ms=switch, total_ms=copy_ms + sync_ms + switch,
                   downtime_ms=sync_ms + switch, bytes=(n + s) * BLOCK, changed_during_copy=changed)
    row["image_matches"] = bool(np.array_equal(dst[d.used.astype(bool)], d.version[d.used.astype(bool)]))
    return row


def check_v2v(mode: str, to_mode: str, to_vmm: str, swap_kernel: bool) -> None:
    allm = sorted({m for v in VMM_RUNS.values() for m in v})
    if mode not in allm:
        raise unknown("--mode", mode, allm, what="mode")
    if to_vmm not in VMM_RUNS:
        raise unknown("--to-vmm", to_vmm, VMM_RUNS, what="VMM kind")
    if to_mode not in VMM_RUNS[to_vmm]:
        raise ScenarioError("--to-mode", f"a {to_vmm} VMM cannot run a {to_mode!r} guest; it runs "
                                         f"{', '.join(VMM_RUNS[to_vmm])}")
    if _xenlinux(mode) and not _xenlinux(to_mode) and not swap_kernel:
        raise ScenarioError("--to-mode", f"a pv32 (XenLinux) kernel does not boot as {to_mode!r}; "
                                         "give --swap-kernel to install a distribution kernel")


def v2v(a: DiskArgs, mode: str, to_mode: str, to_vmm: str, swap_kernel: bool = False,
        inject_ms: float = DRIVER_INJECT_MS, boot_ms: float = BOOT_VM_MS) -> dict:
    check_v2v(mode, to_mode, to_vmm, swap_kernel)
    d = _disk(a)
    dst = np.zeros(d.n, dtype=np.int64)
    n, copy_ms = _copy(d, a, dst)
    convert_ms = 2 * n * BLOCK / (a.disk_mb_per_s * 1e3)  # qemu-img convert: read + write at disk speed
    swap = KERNEL_SWAP_MS if (_xenlinux(mode) and not _xenlinux(to_mode)) else 0.0
    drivers = 0.0 if to_mode == mode else inject_ms
    total = CLEAN_STOP_MS + convert_ms + copy_ms + drivers + swap + boot_ms
    return {"kind": "v2v", "method": "offline", "from_mode": mode, "to_mode": to_mode, "to_vmm": to_vmm,
            "blocks_copied": n, "bytes": n * BLOCK, "shutdown_ms": CLEAN_STOP_MS, "convert_ms": convert_ms,
            "copy_ms": copy_ms, "drivers_ms": drivers, "kernel_swap_ms": swap, "boot_ms": boot_ms,
            "total_ms": total, "downtime_ms": total,
            "image_matches": bool(np.array_equal(dst[d.used.astype(bool)], d.version[d.used.astype(bool)]))}


def v2p(a: DiskArgs, image_hw: str, target_hw: str, inject: bool = False, inject_ms: float = DRIVER_INJECT_MS,
        boot_ms: float = BOOT_PHYS_MS) -> dict:
    if image_hw != target_hw and not inject:
        raise ScenarioError("--target-hw", f"the image was made for hardware {image_hw!r}, the target is "
                                           f"{target_hw!r}; give --inject-drivers (one image per hardware "
                                           "configuration)")
    d = _disk(a)
    dst = np.zeros(d.n, dtype=np.int64)
    n, copy_ms = _copy(d, a, dst)
    drivers = inject_ms if image_hw != target_hw else 0.0
    total = CLEAN_STOP_MS + copy_ms + drivers + boot_ms
    return {"kind": "v2p", "method": "clone", "image_hw": image_hw, "target_hw": target_hw, "blocks_copied": n,
            "bytes": n * BLOCK, "copy_ms": copy_ms, "drivers_ms": drivers, "boot_ms": boot_ms, "total_ms": total,
            "downtime_ms": total,
            "image_matches": bool(np.array_equal(dst[d.used.astype(bool)], d.version[d.used.astype(bool)]))}
