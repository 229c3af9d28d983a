"""The mode table: every mode declared once, and the only place that knows what a mode name means.

Design note
-----------
A *mode* is how a domain's OS runs on the simulated machine. Each :class:`ModeSpec` names

* ``kernel``: the :class:`~guest_kernels.base.GuestKernel` subclass that turns the workload's OS
  actions into what this mode makes of them (traps bounced by Xen, hypercalls, VM exits,
  binary-translation callouts) -- behaviour that differs per mode lives there;
* ``guest_type``: the hypercall-availability column of Xen's ``hypercall-defs.c`` (``pv32``,
  ``pv64``, ``hvm64``), or ``None`` for an OS that makes no Xen hypercalls;
* ``control``: what runs the mode's device backends and device model: ``"dom0"`` (Xen's
  Domain-0), ``"host"`` (a KVM-style host kernel) or ``None`` (the OS drives the hardware itself);
* ``cpu``: how the CPU is virtualized: ``bare`` (no VMM), ``paravirt`` (a modified kernel that
  calls the hypervisor), ``translated`` (binary translation), ``vtx`` (VT-x/AMD-V), ``process``
  (the guest kernel is a host process that intercepts its processes' traps with ptrace: UML);
* ``paging``: the machine-side MMU component: ``hardware`` (the OS's own tables, walked by the
  hardware), ``direct`` (Xen's PV direct paging: validated guest tables), ``shadow``, ``hap``
  (EPT/NPT): :data:`pvsim.mm.machine.PAGING` maps the name to a class;
* ``devices``: the device-path component (``host`` stack, ``split`` drivers, ``emulated`` devices,
  ``virtio``): :data:`pvsim.io.paths.DEVICE_PATHS` maps the name to classes;
* ``needs``: the hardware it needs (``vtx``, ``hap``), checked against a profile;
* ``sole``: a bare-metal OS is the only OS on its host; ``shares_host_kernel``: a container runs
  the host's own kernel (and may only share a host with other containers);
* ``os_kinds``: the guest OS kinds the mode can run at all (UML is a port of Linux only);
  ``bits``: the fixed width of the mode's guest ABI (pv32: 32, pv: 64), or ``None`` for either.
  The OS rules that read them are in :mod:`guest_kernels.oskinds`.

Every subsystem reads these fields; no other module compares a mode name (a test keeps it so). A
new mode is one row here plus, if it behaves differently, its kernel class.

Simplifications: the KVM-style mode's host kernel is modelled as a native kernel scheduled by the
host's scheduler (no CFS model); a binary-translating VMM's device backends run in the control
domain of the host it is on (its hosted world switch is priced by ``bt.world_switch_cycles``).
Whether ``bt``'s VMM is hosted (VMware Workstation: world switches to a host OS for devices, new
guest frames and host ticks) or bare-metal is a profile choice (``bt.hosted_count``), not a mode:
see :mod:`guest_kernels.bt_hosted`.

UML (``uml``) has no hypervisor. Its control kind is ``host``: it runs on a host Linux kernel,
which owns the real disk and NIC and on which a UML's I/O ends (its block device is a host file,
its network a TUN descriptor). That host work is done synchronously in the UML's own host
processes through host system calls, so it is priced on the UML domain's vCPU by
:class:`~guest_kernels.uml.UMLKernel` (device kind ``host``: the guest's stack drives the
"device", here host descriptors), not as threads of the host's control domain.
"""

from __future__ import annotations

from dataclasses import dataclass

from guest_kernels.base import GuestKernel
from guest_kernels.bt import BTKernel
from guest_kernels.hvm import HVMKernel, HVMShadowKernel, KVMKernel, PVHKernel, PVHVMKernel
from guest_kernels.native import ContainerKernel, NativeKernel
from guest_kernels.pv import PV32Kernel, PVKernel
from guest_kernels.uml import UMLKernel

CONTROL_KINDS = ("dom0", "host")
CPU_KINDS = ("bare", "paravirt", "translated", "vtx", "process")
OS_KINDS = ("linux", "bsd", "solaris", "windows")
ALL_OS = frozenset(OS_KINDS)
PAGING_KINDS = ("hardware", "direct", "shadow", "hap")
DEVICE_KINDS = ("host", "split", "emulated", "virtio")


@dataclass(frozen=True)
class ModeSpec:
    name: str
    kernel: type[GuestKernel]
    guest_type: str | None
    control: str | None
    cpu: str
    paging: str
    devices: str
    needs: frozenset = frozenset()
    sole: bool = False
    shares_host_kernel: bool = False
    summary: str = ""
    os_kinds: frozenset = ALL_OS
    bits: int | None = None

    @property
    def virtualized(self) -> bool:
        """Runs on a hypervisor (needs a control domain for its devices)."""
        return self.control is not None

    @property
    def needs_vtx(self) -> bool:
        return "vtx" in self.needs

    @property
    def needs_hap(self) -> bool:
        return "hap" in self.needs

    @property
    def pv_guest(self) -> bool:
        """A Xen PV guest (32- or 64-bit): page tables normalised and PV records in a migration stream."""
        return self.guest_type in ("pv32", "pv64")

    @property
    def vmm(self) -> str | None:
        """The kind of VMM that runs the mode, for conversions between VMMs (``pvsim.convert``):
        ``kvm`` (a host-kernel VMM), ``vmware`` (a binary-translating hosted VMM), ``xen``, or None
        on bare metal."""
        if self.control is None:
            return None
        if self.control == "host":
            return "kvm" if self.cpu == "vtx" else None  # UML: host processes, no VMM to convert from
        return "vmware" if self.cpu == "translated" else "xen"

    @property
    def hypercall_type(self) -> str:
        """The guest type the hypervisor's domain record carries (``none``: no Xen hypercalls)."""
        return self.guest_type or "none"


MODES: dict[str, ModeSpec] = {
    m.name: m
    for m in (
        ModeSpec("native", NativeKernel, None, None, "bare", "hardware", "host", sole=True,
                 summary="bare metal: the kernel in ring 0, no hypervisor"),
        ModeSpec("container", ContainerKernel, None, None, "bare", "hardware", "host", shares_host_kernel=True,
                 summary="OS container: processes of one shared host kernel"),
        ModeSpec("pv", PVKernel, "pv64", "dom0", "paravirt", "direct", "split", bits=64,
                 summary="Xen x86-64 PV: kernel in ring 3, syscalls bounce through Xen, validated page tables"),
        ModeSpec("pv32", PV32Kernel, "pv32", "dom0", "paravirt", "direct", "split", bits=32,
                 summary="Xen 32-bit PV (SOSP'03): kernel in ring 1, direct syscall trap gate"),
        ModeSpec("bt", BTKernel, None, "dom0", "translated", "shadow", "emulated",
                 summary="binary translation + shadow paging + emulated devices (VMware-style)"),
        ModeSpec("hvm-shadow", HVMShadowKernel, "hvm64", "dom0", "vtx", "shadow", "emulated", frozenset({"vtx"}),
                 summary="VT-x/AMD-V first generation: exits on sensitive events, shadow paging"),
        ModeSpec("hvm", HVMKernel, "hvm64", "dom0", "vtx", "hap", "emulated", frozenset({"vtx", "hap"}),
                 summary="VT-x with EPT/NPT, devices emulated by a device model in dom0"),
        ModeSpec("pvhvm", PVHVMKernel, "hvm64", "dom0", "vtx", "hap", "split", frozenset({"vtx", "hap"}),
                 summary="hvm plus PV disk and network drivers"),
        ModeSpec("pvh", PVHKernel, "hvm64", "dom0", "vtx", "hap", "split", frozenset({"vtx", "hap"}),
                 summary="HAP, PV drivers and event channels, no device model"),
        ModeSpec("kvm-virtio", KVMKernel, None, "host", "vtx", "hap", "virtio", frozenset({"vtx", "hap"}),
                 summary="KVM-style: VT-x with EPT, virtio rings, vhost in the host kernel"),
        ModeSpec("uml", UMLKernel, None, "host", "process", "hardware", "host", os_kinds=frozenset({"linux"}),
                 summary="User-Mode Linux (skas3): the kernel a host process, syscalls and faults via ptrace"),
    )
}

# The mode every comparison is relative to (``relative_to_native``): bare metal.
BASELINE = "native"

# The control domain of each kind: its name and the mode of its own kernel.
CONTROL_DOMAIN = {"dom0": ("Domain-0", "pv"), "host": ("host", "native")}


def mode(name: str) -> ModeSpec:
    """The mode called ``name`` (``KeyError`` if there is none)."""
    return MODES[name]


def mode_names() -> list[str]:
    return list(MODES)


def missing_hardware(spec: ModeSpec, has_vtx: bool, has_hap: bool) -> str | None:
    """What the mode needs that the machine lacks (``None`` if nothing)."""
    if spec.needs_vtx and not has_vtx:
        return "VT-x/AMD-V"
    if spec.needs_hap and not has_hap:
        return "EPT/NPT"
    return None
