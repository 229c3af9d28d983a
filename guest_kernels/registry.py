"""The modes: each pairs a guest kernel with what the hypervisor does for it."""

from __future__ import annotations

from dataclasses import dataclass

from guest_kernels.base import GuestKernel
from guest_kernels.bt import BTKernel
from guest_kernels.hvm import HVMKernel, HVMShadowKernel, PVHKernel, PVHVMKernel
from guest_kernels.native import ContainerKernel, NativeKernel
from guest_kernels.pv import PV32Kernel, PVKernel


@dataclass(frozen=True)
class ModeInfo:
    name: str
    kernel: type[GuestKernel]
    guest_type: str  # hypercall availability column: pv32, pv64, hvm64, or "none"
    paging: str  # direct (native page tables), pv-direct, shadow, bt-shadow, hap
    io: str  # native, pv (split drivers), emulated (device model), none
    needs_vtx: bool
    virtualized: bool
    summary: str


MODES: dict[str, ModeInfo] = {
    m.name: m
    for m in (
        ModeInfo("native", NativeKernel, "none", "direct", "native", False, False,
                 "bare metal: the kernel in ring 0, no hypervisor"),
        ModeInfo("container", ContainerKernel, "none", "direct", "native", False, False,
                 "OS container: processes of one shared host kernel"),
        ModeInfo("pv", PVKernel, "pv64", "pv-direct", "pv", False, True,
                 "Xen x86-64 PV: kernel in ring 3, syscalls bounce through Xen, validated page tables"),
        ModeInfo("pv32", PV32Kernel, "pv32", "pv-direct", "pv", False, True,
                 "Xen 32-bit PV (SOSP'03): kernel in ring 1, direct syscall trap gate"),
        ModeInfo("bt", BTKernel, "none", "bt-shadow", "emulated", False, True,
                 "binary translation + shadow paging + emulated devices (VMware-style)"),
        ModeInfo("hvm-shadow", HVMShadowKernel, "hvm64", "shadow", "emulated", True, True,
                 "VT-x/AMD-V first generation: exits on sensitive events, shadow paging"),
        ModeInfo("hvm", HVMKernel, "hvm64", "hap", "emulated", True, True,
                 "VT-x with EPT/NPT, devices emulated by a device model in dom0"),
        ModeInfo("pvhvm", PVHVMKernel, "hvm64", "hap", "pv", True, True,
                 "hvm plus PV disk and network drivers"),
        ModeInfo("pvh", PVHKernel, "hvm64", "hap", "pv", True, True,
                 "HAP, PV drivers and event channels, no device model"),
    )
}


def mode_info(name: str) -> ModeInfo:
    return MODES[name]


def kernel_for(name: str) -> type[GuestKernel]:
    return MODES[name].kernel
