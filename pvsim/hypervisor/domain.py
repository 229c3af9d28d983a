"""Domains and vCPUs as the hypervisor sees them (after ``xen/include/xen/sched.h``).

Design note
-----------
:class:`Domain` holds what Xen's ``struct domain`` holds that the model needs: identity, guest
type, memory reservation (``tot_pages``/``max_pages``), scheduling parameters, the PV trap table
and callbacks, and slots for the per-domain state of the subsystems (``mm``: page tables and
frame ownership, ``evtchn``: event channels, ``grant_table``), which the builder fills from
:mod:`pvsim.mm` and :mod:`pvsim.io`, and the scheduler's per-domain data (``priv``, ``params``).
:class:`VCPU` holds ``struct vcpu``'s runstate, kernel stack (``stack_switch``), virtual CR0.TS
(``fpu_taskswitch``), one-shot timer (``set_timer_op``) and the ``vcpu_info`` event flags -- and it
*is* the scheduler's unit (``struct sched_unit`` with ``sched-gran=cpu``): the pCPU dispatcher
(:class:`pvsim.sched.HostRunner`) and every scheduler work on these very objects, so what a
hypercall handler does to a vCPU (``SCHEDOP_block``, ``VCPUOP_down``, a timer) is what the
scheduler sees. Runstates follow ``vcpu_runstate_change()`` (``xen/common/sched/core.c``).

Simplifications: no cpupools; a domain's vCPU count is fixed at build (``VCPUOP_up``/``down``
toggle them online/offline but never create new ones).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypercalls.ops import RUNSTATE_runnable

# Guest types as hypercall-defs.c names its columns
GUEST_TYPES = ("pv32", "pv64", "hvm32", "hvm64")


@dataclass(eq=False, slots=True)
class VCPU:
    vcpu_id: int
    domain: "Domain"
    online: bool = True
    runstate: int = RUNSTATE_runnable
    # PV state
    kernel_ss: int = 0
    kernel_sp: int = 0
    fpu_ts: bool = False  # virtual CR0.TS
    timer_deadline_ns: int | None = None  # set_timer_op / singleshot timer
    periodic_period_ns: int | None = 10_000_000  # VIRQ_TIMER default 10 ms (pv/domain.c)
    evtchn_upcall_pending: int = 0
    evtchn_upcall_mask: int = 0
    evtchn_pending_sel: int = 0
    in_event_callback: bool = False
    blocked: bool = False  # _VPF_blocked: set by SCHEDOP_block / poll and by the dispatcher
    polling: frozenset = frozenset()
    runstate_area_registered: bool = False
    vcpu_info_registered: bool = False
    initialised: bool = True
    nmi_pending: bool = False
    runstate_guest: Any = None  # guest area registered with VCPUOP_register_runstate_memory_area
    poll_deadline_ns: int | None = None  # SCHEDOP_poll timeout
    pin_override: int = -1  # SCHEDOP_pin_override
    fs_base: int = 0
    gs_base_user: int = 0
    gs_base_kernel: int = 0
    # runstate accounting (vcpu_runstate_change): ns in running, runnable, blocked, offline
    runstate_time_ns: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    # ---- the scheduler's unit (struct sched_unit), filled when the dispatcher adopts the vCPU
    uid: int = -1
    behaviour: Any = None  # what the vCPU runs (an object with next(now_ns) -> demand)
    name: str = ""
    params: dict = field(default_factory=dict)  # per-vCPU scheduler parameters (rtds)
    hard: frozenset | None = None  # hard affinity (None: every pCPU)
    soft: frozenset | None = None  # soft affinity (None: none)
    cpu: int = 0  # the pCPU it is on or was last placed on (``res``)
    is_running: bool = False
    pause_count: int = 0
    done: bool = False
    state_entry: int = 0
    remaining: int = 0  # ns left of the current Run demand
    created_ns: int = 0
    wake_ns: int | None = None
    runnable_since: int = 0
    last_run_start: int = 0
    priv: Any = None  # the scheduler's per-unit data (unit->priv)
    ctx_in: int = 0
    migrations: int = 0
    wake_lat: list = field(default_factory=list)
    ever_ran: bool = False
    block_gen: int = 0
    migrating: bool = False  # waking from a migration, not from a block (no boost)
    migrate_pending: bool = False
    ran_on: int = -1  # pCPU it last ran on (for migration counts)
    block_requested: bool = False  # SCHEDOP_block / poll asked to block at the end of this decision
    block_after: bool = False  # block when the current Run ends (it made the blocking hypercall)
    irq_pending: bool = False  # an interrupt will cut the current Run short (HostRunner.interrupt)

    @property
    def domid(self) -> int:
        return self.domain.domid

    @property
    def dom(self) -> "Domain":
        """The domain (the name the schedulers use, as Xen's ``unit->domain``)."""
        return self.domain

    @property
    def runnable(self) -> bool:
        """``unit_runnable()``: not blocked, not paused, not offline for good."""
        return not self.blocked and self.pause_count == 0 and not self.done

    def allowed(self, cpu: int) -> bool:
        return self.hard is None or cpu in self.hard

    def __repr__(self) -> str:  # d1v0
        return f"d{self.domain.domid}v{self.vcpu_id}"


@dataclass(eq=False)
class Domain:
    domid: int
    name: str
    mode: str  # pvsim mode name: native, container, pv, pv32, bt, hvm-shadow, hvm, pvhvm, pvh
    guest_type: str  # pv32 | pv64 | hvm32 | hvm64 (which hypercalls it may make)
    nr_vcpus: int = 1
    tot_pages: int = 0
    max_pages: int = 0
    weight: int = 256
    cap: int = 0
    privileged: bool = False  # dom0 / control domain
    vcpus: list[VCPU] = field(default_factory=list)
    trap_table: dict[int, dict] = field(default_factory=dict)  # vector -> trap_info
    callbacks: dict[int, int] = field(default_factory=dict)  # CALLBACKTYPE_* -> address
    vm_assist: int = 0
    is_shutdown: bool = False
    shutdown_reason: int | None = None
    shutdown_code: int | None = None  # SCHEDOP_shutdown_code
    watchdog_deadline_ns: int | None = None
    is_console: bool = False  # may use console_io under the default policy
    target: "Domain | None" = None  # device-model target (privilege over one domain)
    is_dying: bool = False
    console: list[bytes] = field(default_factory=list)
    # per-subsystem state, filled by the builder
    mm: Any = None  # pvsim.mm domain state
    evtchn: Any = None  # pvsim.io.evtchn per-domain state
    grant_table: Any = None  # pvsim.io.gnttab per-domain state
    # the scheduler's per-domain data (dom->sched_priv) and parameters
    priv: Any = None
    params: dict = field(default_factory=dict)
    sched_units: list = field(default_factory=list)  # its vCPUs the dispatcher has adopted
    # statistics
    hypercall_counts: Counter = field(default_factory=Counter)  # hypercall name -> calls
    hypercall_errors: Counter = field(default_factory=Counter)  # (name, -errno) -> calls

    def __post_init__(self):
        if not self.vcpus:
            self.vcpus = [VCPU(i, self) for i in range(self.nr_vcpus)]
        if not self.max_pages:
            self.max_pages = self.tot_pages

    @property
    def units(self) -> list[VCPU]:
        """The domain's vCPUs as the scheduler sees them (``for_each_sched_unit``)."""
        return self.sched_units

    @property
    def is_pv(self) -> bool:
        return self.guest_type.startswith("pv")
