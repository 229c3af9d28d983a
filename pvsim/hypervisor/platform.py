"""The ``platform`` a guest kernel is handed: its only door into the hypervisor.

Design note
-----------
Binds one domain and vCPU to the hypervisor and the current meter, and offers the entries a guest
kernel may use: ``hypercall(name, *args)`` (through :meth:`Hypervisor.hypercall`, so it is counted,
checked against the guest type, and runs the real handler), ``charge_hypercall(name, n)`` (the
entry price and count of ``n`` calls on a counted path, through
:meth:`Hypervisor.charge_hypercall_entry`), ``trap(kind)`` (a PV trap bounced by Xen),
``vmexit(reason, handling)``, ``bt(kind, n)`` and ``sw_mmu(cause, n)``
(:mod:`pvsim.hypervisor.traps`), ``value(key)`` for count-type profile constants, and ``mmu``, the
guest-side MMU over the page-table structures (:mod:`guest_kernels.mmu` / :mod:`pvsim.mm`) when the
builder attached one.
"""

from __future__ import annotations

from typing import Any

from hypercalls import table as hc_table
from hypercalls.trace import TRC_HVM_VMEXIT, TRC_PV_TRAP
from pvsim.core.meter import Meter
from pvsim.hypervisor import traps
from pvsim.hypervisor.domain import VCPU
from pvsim.hypervisor.hypervisor import Hypervisor


class HvPlatform:
    def __init__(self, hv: Hypervisor, vcpu: VCPU):
        self.hv = hv
        self.vcpu = vcpu
        self.guest_type = vcpu.domain.guest_type
        self.mmu: Any = None

    @property
    def meter(self) -> Meter:
        return self.hv.meter

    @property
    def profile(self):
        return self.hv.profile

    def value(self, key: str) -> float:
        return self.hv.profile.value(key)

    def hypercall(self, name: str, *args) -> int:
        return self.hv.hypercall(self.vcpu, hc_table.number(name), *args)

    def charge_hypercall(self, name: str, n: int = 1) -> None:
        """``n`` entries of hypercall ``name`` on a counted path (no handler runs): priced and
        counted by :meth:`Hypervisor.charge_hypercall_entry` for this domain's guest type."""
        self.hv.charge_hypercall_entry(self.vcpu.domain, name, n)

    def trap(self, kind: str) -> None:
        traps.pv_bounce(self.meter, self.hv.profile, kind, guest_type=self.guest_type)
        self.hv.trace(self.vcpu, TRC_PV_TRAP, traps.TRAP_VECTORS.get(kind, 0xFF))

    def vmexit(self, reason: str, handling: str = "simple", n: float = 1) -> None:
        hv = self.hv
        traps.vmexit(self.meter, hv.profile, reason, handling=handling, n=n)
        eng = hv.engine
        if getattr(eng, "_subscribers", None):  # TRC_HVM_VMEXIT {reason, rip lo, rip hi, + handling cycles}
            one = Meter()
            traps.vmexit(one, hv.profile, reason, handling=handling, n=1)
            cyc = int(round(sum(one.price(hv.profile).values())))
            for _ in range(max(1, int(round(n)))):
                hv.trace(self.vcpu, TRC_HVM_VMEXIT, traps.EXIT_REASONS[reason], 0, 0, cyc)

    def bt(self, kind: str, n: float = 1) -> None:
        traps.bt_transfer(self.meter, self.hv.profile, kind, n)

    def sw_mmu(self, cause: str, n: float = 1) -> None:
        traps.sw_mmu(self.meter, self.hv.profile, cause, n)

    def cancel_block(self) -> None:
        """Work arrived while the kernel was entering its idle block: the vCPU stays runnable (as
        ``vcpu_block`` unblocks at once when an event is pending)."""
        self.vcpu.block_requested = False

    def blocking(self) -> bool:
        """The vCPU asked to block in its last hypercall (``SCHEDOP_block``/``poll``)."""
        return self.vcpu.block_requested

    def kick(self) -> None:
        """``vcpu_kick``: an event was delivered; a vCPU blocked in the hypervisor wakes."""
        self.hv.sched.wake_vcpu(self.vcpu)

    def interrupt(self) -> None:
        """An interrupt (an upcall, a device interrupt, a thread's wake-up) for this vCPU while it
        runs guest work: the work in flight is cut short so the handler runs at once, as on
        hardware (the rest of the work resumes after it)."""
        self.hv.sched.interrupt(self.vcpu)
