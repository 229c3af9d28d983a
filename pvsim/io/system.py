"""Builds one simulated host for an I/O run: hypervisor, dom0 (or the KVM host kernel), the guest,
CPU-bound neighbours, devices, and per-mode cost helpers.

Design note
-----------
:class:`IOSystem` wires the pieces the way Xen's toolstack would: domains in the
:class:`~pvsim.hypervisor.hypervisor.Hypervisor`, each vCPU a :class:`~pvsim.io.cpu.VcpuOS`
behaviour on the :class:`~pvsim.sched.HostRunner` (so dom0's backends and device model compete
for pCPUs under the chosen scheduler and dom0's weight), the physical disk and NIC owned by dom0
(or by the native kernel), and event-channel ``on_kick`` hooks that raise the upcall interrupt in
the target vCPU. Per-mode prices of the guest's primitive transitions (system call, interrupt
delivery, idle entry, trapped register access) live here so the device paths stay mode-agnostic.

Modes: ``native``/``container`` (host kernel drives the devices), ``pv``/``pv32`` (PV guest,
split drivers), ``pvhvm``/``pvh`` (HVM container with PV drivers and the vector callback),
``bt``/``hvm``/``hvm-shadow`` (emulated e1000/IDE in a dom0 device model), ``kvm-virtio``
(virtio rings, vhost in the host kernel).

Simplifications: one guest vCPU and one dom0 vCPU by default; the guest's MMU-mode differences
(shadow vs HAP) do not change the I/O path's price (they matter to the memory engineer's work).
"""

from __future__ import annotations

from pvsim.engine import Engine
from pvsim.errors import ScenarioError
from pvsim.hypervisor.domain import Domain
from pvsim.hypervisor.hypervisor import Hypervisor
from pvsim.io import evtchn as ev
from pvsim.io.cpu import Pricer, VcpuOS
from pvsim.io.xenstore import XenStore
from pvsim.sched import HostRunner, Run, make_scheduler

MODES = ("native", "container", "pv", "pv32", "bt", "hvm-shadow", "hvm", "pvhvm", "pvh", "kvm-virtio")
GUEST_TYPE = {"pv": "pv64", "pv32": "pv32", "bt": "hvm64", "hvm-shadow": "hvm64", "hvm": "hvm64",
              "pvhvm": "hvm64", "pvh": "hvm64", "kvm-virtio": "hvm64", "native": "pv64", "container": "pv64"}
HVM_MODES = ("hvm-shadow", "hvm", "pvhvm", "pvh", "kvm-virtio")
PV_DRIVER_MODES = ("pv", "pv32", "pvhvm", "pvh")
EMULATED_MODES = ("bt", "hvm-shadow", "hvm")


class Spinner:
    """A CPU-bound neighbour vCPU (runs forever in 1 ms bursts)."""

    def __init__(self):
        self.ns = 0

    def next(self, now_ns):
        self.ns += 1_000_000
        return Run(1_000_000)


class IOSystem:
    def __init__(self, mode: str, profile, *, seed: int, scheduler: str = "credit", n_pcpus: int = 2,
                 dom0_weight: int = 256, neighbours: int = 0, guest_weight: int = 256):
        if mode not in MODES:
            raise ScenarioError("mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
        if mode in HVM_MODES and not profile.has("hvm.vmexit_cycles"):
            raise ScenarioError("mode", f"{mode} needs VT-x/AMD-V: profile {profile.name} has no [hvm] section")
        if not isinstance(neighbours, int) or neighbours < 0 or neighbours > 64:
            raise ScenarioError("neighbours", f"must be 0..64, got {neighbours!r}")
        self.mode = mode
        self.profile = profile
        self.engine = Engine(seed=seed)
        self.pricer = Pricer(profile)
        self.hv = Hypervisor(profile, self.engine)
        self.xs = XenStore()
        self.runner = HostRunner(self.engine, make_scheduler(scheduler), n_pcpus)
        self.native = mode in ("native", "container")
        self.port_handlers: dict[tuple[int, int], object] = {}
        # dom0 / host kernel
        self.dom0 = self.hv.add_domain(Domain(0, "dom0" if mode != "kvm-virtio" else "host", "pv", "pv64",
                                              privileged=True, weight=dom0_weight))
        self.guest = self.hv.add_domain(Domain(1, "guest", mode, GUEST_TYPE[mode], weight=guest_weight))
        self.d0os = self._os("dom0", self.dom0, self._dom0_idle_work())
        self.gos = self.d0os if self.native else self._os("guest", self.guest, self.guest_idle_work())
        self.runner.add_vcpu(0, 0, self.d0os, weight=dom0_weight, name="dom0.0")
        if not self.native:
            self.runner.add_vcpu(1, 0, self.gos, weight=guest_weight, name="guest.0")
        self.spinners = []
        for i in range(neighbours):
            s = Spinner()
            self.spinners.append(s)
            self.runner.add_vcpu(10 + i, 0, s, name=f"nb{i}.0")
        for dom, os_ in ((self.dom0, self.d0os), (self.guest, self.gos)):
            ev.evtchn_for(dom).on_kick = self._kicker(dom, os_)

    # ------------------------------------------------------------------ construction helpers
    def _os(self, name, dom, idle_work):
        os_ = VcpuOS(name, self.engine, self.pricer, idle_work=idle_work,
                     idle_counts=tuple((c, 1) for c in {w[0] for w in idle_work}),
                     switch_work=(("kernel.context_switch", "native.context_switch_cycles", 1),))
        os_.hv, os_.vcpu = self.hv, dom.vcpus[0]
        return os_

    def _kicker(self, dom, os_):
        def kick(vcpu_id):
            os_.raise_irq(lambda: self._upcall(dom, os_))
        return kick

    def _upcall(self, dom, os_):
        """The event-channel upcall: delivery cost, 2-level scan, per-port driver handlers."""
        if os_ is self.d0os and dom is self.dom0:
            self.dom0_irq_entry(os_, physical=False)
        else:
            self.guest_irq_entry(os_, evtchn=True)
        os_.count("evtchn.upcall")
        ports = ev.guest_upcall(dom, 0)
        for p in ports:
            h = self.port_handlers.get((dom.domid, p))
            if h is not None:
                h()
        yield os_.flush()

    def add_guest(self, domid: int, name: str, weight: int = 256):
        """Another guest of the same mode (its own vCPU on the runner); returns (domain, os)."""
        dom = self.hv.add_domain(Domain(domid, name, self.mode, GUEST_TYPE[self.mode], weight=weight))
        os_ = self._os(name, dom, self.guest_idle_work())
        self.runner.add_vcpu(domid, 0, os_, weight=weight, name=f"{name}.0")
        ev.evtchn_for(dom).on_kick = self._kicker(dom, os_)
        return dom, os_

    def bind_port(self, dom, port: int, fn) -> None:
        self.port_handlers[(dom.domid, port)] = fn

    # ------------------------------------------------------------------ per-mode prices
    def _dom0_idle_work(self):
        if self.native or self.mode == "kvm-virtio":
            return ()
        return (("hypercall.sched_op", "xen.hypercall_entry_pv64_cycles", 1),)

    def guest_idle_work(self):
        m = self.mode
        if m == "pv":
            return (("hypercall.sched_op", "xen.hypercall_entry_pv64_cycles", 1),)
        if m == "pv32":
            return (("hypercall.sched_op", "xen.hypercall_entry_pv32_cycles", 1),)
        if m in HVM_MODES:
            return (("exit.hlt", "hvm.vmexit_cycles", 1), ("exit.hlt", "hvm.vmentry_cycles", 1),
                    ("exit.hlt", "hvm.exit_handling_cycles", 1))
        return ()

    def syscall(self, os_, n: int = 1) -> None:
        """System calls made by the guest application (the I/O system calls of a workload)."""
        m = self.mode
        if m == "pv":
            os_.work("trap.syscall", "xen.syscall_bounce_pv64_cycles", n)
            os_.work("trap.syscall", "xen.guest_cr3_switch_pv64_cycles", 2 * n)
            os_.count("trap.syscall", n)
        else:
            os_.work("kernel.syscall", "native.syscall_cycles", n)
            if m == "container":
                os_.work("kernel.syscall", "container.syscall_extra_cycles", n)

    def dom0_irq_entry(self, os_, physical: bool = True) -> None:
        """A physical interrupt (Xen's ``do_IRQ`` then the pirq event) or an interdomain event
        upcall taken by dom0; a plain interrupt for the native / KVM host kernel."""
        if self.native or self.mode == "kvm-virtio":
            os_.work("kernel.interrupt", "native.interrupt_cycles")
            return
        if physical:
            os_.work("dom0.irq", "native.interrupt_cycles")
        os_.work("io.evtchn", "xen.event_upcall_cycles")
        os_.work("io.evtchn", "io.evtchn_scan_cycles")
        os_.work("dom0.irq", "xen.iret_cycles")

    def guest_irq_entry(self, os_, evtchn: bool = False) -> None:
        m = self.mode
        if self.native:
            os_.work("kernel.interrupt", "native.interrupt_cycles")
        elif m in ("pv", "pv32"):
            os_.work("io.evtchn", "xen.event_upcall_cycles")
            os_.work("io.evtchn", "io.evtchn_scan_cycles")
            os_.work("hypercall.iret", "xen.iret_cycles")
        elif m in ("pvhvm", "pvh"):
            os_.work("io.evtchn", "io.virq_inject_cycles")
            os_.work("kernel.interrupt", "native.interrupt_cycles")
            os_.work("io.evtchn", "io.evtchn_scan_cycles")
        elif m == "bt":
            os_.work("device.emulation", "io.virq_inject_cycles")
            os_.work("kernel.interrupt", "native.interrupt_cycles")
            n = self.pricer.value("io.eoi_exit_count")
            os_.work("device.emulation", "bt.tc_lookup_cycles", n * self.pricer.value("bt.callout_count"))
            os_.work("device.emulation", "native.mem_ref_cycles", n * self.pricer.value("bt.chipset_refs_count"))
        else:  # hvm, hvm-shadow, kvm-virtio: injected vector + EOI exits
            os_.work("exit.external_interrupt", "io.virq_inject_cycles")
            os_.work("kernel.interrupt", "native.interrupt_cycles")
            n = self.pricer.value("io.eoi_exit_count")
            for p in ("hvm.vmexit_cycles", "hvm.vmentry_cycles", "hvm.exit_handling_cycles"):
                os_.work("exit.apic_access", p, n)
            os_.count("exit.apic_access", int(n))

    def trapped_access(self, os_, n: int, reason: str) -> None:
        """Guest side of ``n`` trapped device-register accesses (``exit.<reason>`` under VT-x,
        a translator callout into the virtual chipset under BT)."""
        if not n:
            return
        if self.mode == "bt":
            os_.work("device.emulation", "bt.tc_lookup_cycles", n * self.pricer.value("bt.callout_count"))
            os_.work("device.emulation", "native.mem_ref_cycles", n * self.pricer.value("bt.chipset_refs_count"))
            os_.count("trap.io_callout", n)
        else:
            for p in ("hvm.vmexit_cycles", "hvm.vmentry_cycles", "hvm.exit_handling_cycles"):
                os_.work(f"exit.{reason}", p, n)
            os_.count(f"exit.{reason}", n)

    def dm_access(self, os_, n: int) -> None:
        """Device-model side (dom0) of ``n`` forwarded register accesses."""
        if n:
            key = "io.bt_device_model_switch_cycles" if self.mode == "bt" else "hvm.device_model_roundtrip_cycles"
            os_.work("device.emulation", key, n)
            os_.count("device_model.access", n)

    def start(self) -> None:
        self.runner.start()

    def run(self, until_ns: int) -> None:
        self.engine.run(until_ns)
