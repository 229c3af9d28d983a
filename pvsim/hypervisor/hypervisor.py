"""Hypercall dispatch (after ``xen/include/hypercall-defs.c`` and ``xen/arch/x86/pv/hypercall.c``).

Design note
-----------
:meth:`Hypervisor.hypercall` is the single entry point every guest kernel uses. It

1. looks the number up in :mod:`hypercalls.table` and refuses a call the caller's guest type may
   not make with ``-ENOSYS`` (as Xen's dispatch table does, by having no entry);
2. charges the guest-type-specific entry/exit path to the current meter (PV64 ``syscall``,
   PV32 ``int $0x82``, HVM ``vmcall`` exit and entry);
3. runs the handler ``do_<name>`` that the table names, registered in
   :mod:`pvsim.hypervisor.handlers` (the dispatch table is built from :mod:`hypercalls.table`
   on first use and refuses a named handler nobody registered, or a registered one the table does
   not name), which changes simulated state and reports its per-element work to ``hv.meter``;
4. counts the call per domain and per number, and any negative result per errno.

A handler never raises into the guest: a Python exception inside a handler is a simulator bug,
which is re-raised; a guest error is a negative Xen errno return.

Simplifications: continuations (``-ERESTART``/``MMU_UPDATE_PREEMPTED``) are modelled by the
handlers that support them by returning after a bounded number of elements with the remaining
work re-issued by the caller loop in :meth:`Hypervisor.hypercall_until_done`.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager

from hypercalls import errno as xen_errno
from hypercalls import table as hc_table
from hypercalls.ops import DOMID_SELF, RUNSTATE_offline, RUNSTATE_runnable
from hypercalls.trace import TRC_PV_HYPERCALL_V2, TRC_PV_HYPERCALL_V2_ARG_32
from pvsim.core.meter import Meter
from pvsim.hypervisor import handlers as _handlers  # noqa: F401  (registers every handler)
from pvsim.hypervisor.dispatch import ENTRY_PRICE, HVM_GUEST_TYPES, REGISTERED, HandlerFn, dispatch_table
from pvsim.hypervisor.domain import VCPU, Domain


def handlers() -> dict[int, HandlerFn]:
    """The dispatch table, built from :mod:`hypercalls.table` on first use."""
    if not _HANDLERS:
        _HANDLERS.update(dispatch_table(REGISTERED))
    return dict(_HANDLERS)


_HANDLERS: dict[int, HandlerFn] = {}  # hypercall number -> handler: the dispatch table


class SchedPort:
    """What hypercall handlers ask of the host's scheduling core (``xen/common/sched/core.c``):
    ``vcpu_block``, ``vcpu_yield``, ``do_poll``, the one-shot timer, ``vcpu_wake``/``vcpu_sleep``.
    The pCPU dispatcher (:class:`pvsim.sched.HostRunner`) implements it for a running host (the
    vCPU *is* its unit, so a block deschedules it and an event wakes it). This default serves a
    hypervisor with no dispatcher (a scratch host pricing an op mix, a handler's unit test): it
    records the state change on the vCPU and nothing runs it."""

    def block(self, vcpu) -> None:
        """The vCPU blocks until an event is delivered to it."""
        vcpu.blocked = True

    def yield_(self, vcpu) -> None:
        """The vCPU gives up the rest of its slice."""

    def poll(self, vcpu, ports, deadline_ns) -> None:
        """The vCPU blocks until one of ``ports`` is pending or ``deadline_ns`` passes."""
        vcpu.blocked = True

    def set_timer(self, vcpu, deadline_ns, fire) -> None:
        """Arm (``deadline_ns``; ``None`` stops) the vCPU's one-shot timer; ``fire()`` at expiry."""

    def vcpu_down(self, vcpu) -> None:
        """``VCPUOP_down``: the vCPU goes offline."""
        vcpu.runstate = RUNSTATE_offline

    def vcpu_up(self, vcpu) -> None:
        """``VCPUOP_up``: the vCPU comes back online."""
        vcpu.runstate = RUNSTATE_runnable

    def wake_vcpu(self, vcpu) -> None:
        """``vcpu_unblock``: an event was delivered to a blocked vCPU."""
        vcpu.blocked = False

    def interrupt(self, vcpu) -> None:
        """An interrupt for a vCPU that is running (or runnable) guest work: the work is cut short so
        the handler runs now (nothing runs here, so nothing to cut)."""


class Hypervisor:
    """Holds every domain and dispatches hypercalls. Subsystems attach machine-wide state."""

    #: added to the pCPU of its trace records (a traced run of several hosts: see ``HostRunner``)
    trace_base: int = 0

    def __init__(self, profile=None, engine=None):
        self.profile = profile
        self.engine = engine
        self.sched: SchedPort = SchedPort()  # the builder plugs in the host's dispatcher
        self.domains: dict[int, Domain] = {}
        self.meter: Meter = Meter()
        self.machine_mm = None  # pvsim.mm machine frame table, set by the builder
        self.nr_pcpus: int | None = None  # the host's pCPUs (set by the builder)
        self.honour_sshottmr_future = False  # Xen < 4.18: VCPU_SSHOTTMR_future gives -ETIME
        self.serial_rx: bytes | None = None  # console input waiting for CONSOLEIO_read
        self.memory_ledger = None  # memory_op's host frame ledger (made on first use)
        self.host_pages: int | None = None
        self.max_page: int | None = None
        self.calls: Counter = Counter()  # (domid, nr) -> calls
        self._disp: dict = {}  # (nr, guest_type) -> its resolved dispatch entry
        handlers()

    # ------------------------------------------------------------------ domains
    def add_domain(self, dom: Domain) -> Domain:
        if dom.domid in self.domains:
            raise ValueError(f"domain id {dom.domid} already exists")
        self.domains[dom.domid] = dom
        return dom

    def lookup_domain(self, caller: Domain, domid: int) -> Domain | None:
        if domid == DOMID_SELF:
            return caller
        return self.domains.get(domid)

    # ------------------------------------------------------------------ metering
    @contextmanager
    def metering(self, meter: Meter):
        old, self.meter = self.meter, meter
        try:
            yield meter
        finally:
            self.meter = old

    # ------------------------------------------------------------------ dispatch
    def charge_hypercall_entry(self, who: Domain | str, name: str, n: int = 1) -> None:
        """Charge ``n`` guest->Xen->guest transitions of hypercall ``name`` at the entry price of
        the caller's guest type (a :class:`Domain` or its ``guest_type``) under cause
        ``hypercall.<name>``, and count them. :meth:`hypercall` charges every call it dispatches
        this way; a guest kernel's counted paths (no handler run) charge through
        :meth:`pvsim.hypervisor.platform.HvPlatform.charge_hypercall`."""
        guest_type = who if isinstance(who, str) else who.guest_type
        cause = f"hypercall.{name}"
        for price in ENTRY_PRICE.get(guest_type, ()):
            self.meter.add(cause, price, n)
        self.meter.count(cause, n)
        if guest_type in HVM_GUEST_TYPES:
            self.meter.count("exit.vmcall", n)  # an HVM guest's hypercall is a VMCALL exit

    def _dispatch_entry(self, nr, guest_type: str) -> tuple:
        """What a call of ``nr`` by ``guest_type`` resolves to (cached: the table never changes)."""
        name = hc_table.name(nr) if type(nr) is int else None
        label = name or f"#{nr}"
        cause = f"hypercall.{name or nr}"
        fn = handlers().get(nr) if name is not None and hc_table.allowed(nr, guest_type) else None
        # Xen hands a handler only as many argument registers as its prototype takes
        # (hypercall-defs.c); HYPERVISOR_iret's one "argument" stands for its stack frame.
        nargs = max(1, hc_table.hypercall_nargs(name, guest_type)) if fn is not None else 0
        return (name, label, cause, ENTRY_PRICE.get(guest_type, ()), fn, nargs, guest_type in HVM_GUEST_TYPES)

    def _pcpu_of(self, match) -> int:
        """The pCPU whose current vCPU satisfies ``match`` (asked of the dispatcher, which alone knows
        it under the compiled dispatcher), else pCPU 0."""
        curr = getattr(self.sched, "curr", None)
        if curr is not None:
            for c in range(self.nr_pcpus or getattr(self.sched, "n_pcpus", 0) or 0):
                u = curr(c)
                if u is not None and match(u):
                    return self.trace_base + c
        return self.trace_base

    def trace(self, vcpu, event: int, *words: int) -> None:
        """A record on the trace bus from the pCPU ``vcpu`` runs on (nothing is built unless someone
        listens)."""
        eng = self.engine
        if getattr(eng, "_subscribers", None):
            eng.trace(self._pcpu_of(lambda u: u is vcpu), event, *words)

    def trace_dom(self, dom, event: int, *words: int) -> None:
        """A record about ``dom`` on the pCPU running one of its vCPUs (else pCPU 0)."""
        eng = self.engine
        if getattr(eng, "_subscribers", None):
            eng.trace(self._pcpu_of(lambda u: getattr(u, "domain", None) is dom), event, *words)

    def hypercall(self, vcpu: VCPU, nr: int, *args) -> int:
        dom = vcpu.domain
        if type(nr) is not int:  # a register holds some number; anything else is no hypercall
            nr = nr if isinstance(nr, int) and not isinstance(nr, bool) else -1
        eng = self.engine
        if getattr(eng, "_subscribers", None):
            ints = [a & 0xFFFFFFFF for a in args[:6] if type(a) is int]
            eng.trace(self._pcpu_of(lambda u: u is vcpu), TRC_PV_HYPERCALL_V2,
                      (nr & 0xFFFFF) | sum(TRC_PV_HYPERCALL_V2_ARG_32(i) for i in range(len(ints))), *ints)
        key = (nr, dom.guest_type)
        d = self._disp.get(key)
        if d is None:
            d = self._disp[key] = self._dispatch_entry(nr, dom.guest_type)
        name, label, cause, prices, fn, nargs, hvm = d
        self.calls[(dom.domid, nr)] += 1
        dom.hypercall_counts[label] += 1
        m = self.meter
        for price in prices:
            m.add(cause, price)
        m.count(cause)
        if hvm:
            m.count("exit.vmcall")  # an HVM guest's hypercall is a VMCALL exit
        if fn is None:
            rc = -xen_errno.ENOSYS
        else:
            rc = fn(self, vcpu, *args[:nargs])
            if type(rc) is not int:
                if not isinstance(rc, int):
                    raise TypeError(f"do_{name} returned {rc!r}, not an int")
                rc = int(rc)
        if rc < 0:
            dom.hypercall_errors[(label, rc)] += 1
            m.count(f"hypercall_error.{name or nr}")
        return rc

    def hypercall_by_name(self, vcpu: VCPU, name: str, *args) -> int:
        return self.hypercall(vcpu, hc_table.number(name), *args)
