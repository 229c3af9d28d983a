"""Pricing the dispatcher's own work from a platform profile: vCPU context switches and their footprints.

Design note
-----------
Xen's ``context_switch()`` (``xen/arch/x86/domain.c``) saves the outgoing vCPU's state and loads
the incoming one's (page-table base, segments, debug registers; FPU lazily); switching to the idle
vCPU is lazy (``__context_switch`` is skipped and the state stays loaded until another vCPU needs
the pCPU), so the switch back to the same vCPU after idle costs only the schedule pass. The costs
are the profile keys ``sched.vcpu_switch_cycles`` and ``sched.schedule_cycles`` (fragments
``pvsim/profiles/*.d/sched.toml``); no constant lives here. :func:`switch_cost_from_profile`
returns a ``switch_cost_ns(prev, next)`` callable for :class:`~pvsim.sched.HostRunner` that also
reports the work to a :class:`~pvsim.core.meter.Meter` (causes ``sched.context_switch`` and
``sched.schedule``). Given a :class:`~pvsim.sched.footprint.FootprintTracker`, a non-lazy switch
also charges the incoming context's cache and TLB refill (:mod:`pvsim.sched.footprint`; causes
``cache.refill`` and ``tlb.refill_after_switch``), keeping the last charge's parts in
``last_parts`` for the builder's per-domain breakdown.
"""

from __future__ import annotations


class SwitchCost:
    """``switch_cost_ns(prev, next)`` priced from ``profile``'s ``[sched]`` constants (and footprints).

    ``native=True``: the dispatcher is a bare-metal kernel's scheduler switching processes (a
    multi-process native OS): a switch is ``native.context_switch_cycles`` (lmbench lat_ctx 2p/0K: the
    whole Linux ``schedule()`` + ``switch_to`` + CR3 load + the refill of the 4 pages it touches), and
    the switch back to the task an idle CPU left (Linux's idle task borrows the mm: no address-space
    switch) that less ``native.cr3_load_cycles`` and the 4 pages' walks
    (``4 x native.context_switch_ws_pages_count`` references of ``native.walk_ref_cycles``)."""

    def __init__(self, profile, meter=None, tracker=None, native: bool = False):
        if native:
            full = profile.ns("native.context_switch_cycles")
            lazy = full - profile.ns("native.cr3_load_cycles") - \
                4 * profile.value("native.context_switch_ws_pages_count") * profile.ns("native.walk_ref_cycles")
        else:
            lazy = profile.ns("sched.schedule_cycles")
            full = lazy + profile.ns("sched.vcpu_switch_cycles")
        self.native = native
        self.lazy_ns = int(round(lazy))
        self.full_ns = int(round(full))
        self.ghz = profile.clock_ghz
        self.meter = meter
        self.tracker = tracker
        self.last_on_cpu: dict[int, object] = {}
        self.last_parts = (0, 0)

    def __call__(self, prev, nxt) -> int:
        cpu = nxt.cpu
        lazy = prev is None and self.last_on_cpu.get(cpu) is nxt  # idle kept nxt's state loaded
        self.last_on_cpu[cpu] = nxt
        meter = self.meter
        fc = ft = 0
        if self.tracker is not None:
            if lazy:
                self.tracker.clear(cpu)
            else:
                fc, ft = self.tracker.charge(nxt, cpu)
        self.last_parts = (fc, ft)
        if meter is not None:
            if self.native:
                meter.add("kernel.process_switch", "cycles", (self.lazy_ns if lazy else self.full_ns) * self.ghz)
            else:
                meter.add("sched.schedule", "sched.schedule_cycles", 1)
                if not lazy:
                    meter.add("sched.context_switch", "sched.vcpu_switch_cycles", 1)
            meter.add("cache.refill", "cycles", fc * self.ghz)
            meter.add("tlb.refill_after_switch", "cycles", ft * self.ghz)
        return (self.lazy_ns if lazy else self.full_ns) + fc + ft


def switch_cost_from_profile(profile, meter=None, tracker=None, native: bool = False) -> SwitchCost:
    """``switch_cost_ns(prev, next)`` priced from ``profile``'s ``[sched]`` constants (``native``: a
    bare-metal kernel's process switch)."""
    return SwitchCost(profile, meter, tracker, native)
