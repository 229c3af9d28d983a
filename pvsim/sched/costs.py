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
    """``switch_cost_ns(prev, next)`` priced from ``profile``'s ``[sched]`` constants (and footprints)."""

    def __init__(self, profile, meter=None, tracker=None):
        self.switch_ns = profile.ns("sched.vcpu_switch_cycles")
        self.sched_ns = profile.ns("sched.schedule_cycles")
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
            meter.add("sched.schedule", "sched.schedule_cycles", 1)
            if not lazy:
                meter.add("sched.context_switch", "sched.vcpu_switch_cycles", 1)
            meter.add("cache.refill", "cycles", fc * self.ghz)
            meter.add("tlb.refill_after_switch", "cycles", ft * self.ghz)
        return int(round(self.sched_ns + (0 if lazy else self.switch_ns))) + fc + ft


def switch_cost_from_profile(profile, meter=None, tracker=None) -> SwitchCost:
    """``switch_cost_ns(prev, next)`` priced from ``profile``'s ``[sched]`` constants."""
    return SwitchCost(profile, meter, tracker)
