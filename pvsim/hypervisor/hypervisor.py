"""Hypercall dispatch (after ``xen/include/hypercall-defs.c`` and ``xen/arch/x86/pv/hypercall.c``).

Design note
-----------
:meth:`Hypervisor.hypercall` is the single entry point every guest kernel uses. It

1. looks the number up in :mod:`hypercalls.table` and refuses a call the caller's guest type may
   not make with ``-ENOSYS`` (as Xen's dispatch table does, by having no entry);
2. charges the guest-type-specific entry/exit path to the current meter (PV64 ``syscall``,
   PV32 ``int $0x82``, HVM ``vmcall`` exit and entry);
3. runs the handler ``do_<name>`` registered in :mod:`pvsim.hypervisor.handlers`, which changes
   simulated state and reports its per-element work to ``hv.meter``;
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
from typing import Callable

from hypercalls import errno as xen_errno
from hypercalls import table as hc_table
from pvsim.hypervisor.domain import DOMID_SELF, VCPU, Domain
from pvsim.meter import Meter

HandlerFn = Callable[..., int]
_HANDLERS: dict[int, HandlerFn] = {}


def handler(name: str):
    """Register ``do_<name>`` as the handler of hypercall ``name``."""
    nr = hc_table.number(name)

    def deco(fn: HandlerFn) -> HandlerFn:
        if fn.__name__ != f"do_{name}":
            raise ValueError(f"handler for {name} must be called do_{name}, got {fn.__name__}")
        _HANDLERS[nr] = fn
        return fn

    return deco


def handlers() -> dict[int, HandlerFn]:
    from pvsim.hypervisor import handlers as _h  # noqa: F401  (registers every handler)

    return dict(_HANDLERS)


# Entry/exit price per guest type (profile keys). HVM hypercalls are a vmcall exit + entry.
ENTRY_PRICE = {
    "pv64": ("xen.hypercall_entry_pv64_cycles",),
    "pv32": ("xen.hypercall_entry_pv32_cycles",),
    "hvm64": ("hvm.vmexit_cycles", "hvm.vmentry_cycles"),
    "hvm32": ("hvm.vmexit_cycles", "hvm.vmentry_cycles"),
}


class Hypervisor:
    """Holds every domain and dispatches hypercalls. Subsystems attach machine-wide state."""

    def __init__(self, profile=None, engine=None):
        self.profile = profile
        self.engine = engine
        self.domains: dict[int, Domain] = {}
        self.meter: Meter = Meter()
        self.machine_mm = None  # pvsim.mm machine frame table, set by the builder
        self.calls: Counter = Counter()  # (domid, nr) -> calls
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
    def hypercall(self, vcpu: VCPU, nr: int, *args) -> int:
        dom = vcpu.domain
        name = hc_table.name(nr)
        self.calls[(dom.domid, nr)] += 1
        dom.hypercall_counts[name or f"#{nr}"] += 1
        cause = f"hypercall.{name or nr}"
        for price in ENTRY_PRICE.get(dom.guest_type, ()):
            self.meter.add(cause, price)
        self.meter.count(cause)
        fn = _HANDLERS.get(nr)
        if name is None or fn is None or not hc_table.allowed(nr, dom.guest_type):
            rc = -xen_errno.ENOSYS
        else:
            # Xen hands a handler only as many argument registers as its prototype takes
            # (hypercall-defs.c); HYPERVISOR_iret's one "argument" stands for its stack frame.
            nargs = max(1, hc_table.hypercall_nargs(name, dom.guest_type))
            rc = fn(self, vcpu, *args[:nargs])
            if not isinstance(rc, int):
                raise TypeError(f"do_{name} returned {rc!r}, not an int")
        if rc < 0:
            dom.hypercall_errors[(name or f"#{nr}", rc)] += 1
            self.meter.count(f"hypercall_error.{name or nr}")
        return rc

    def hypercall_by_name(self, vcpu: VCPU, name: str, *args) -> int:
        return self.hypercall(vcpu, hc_table.number(name), *args)
