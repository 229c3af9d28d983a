"""Pricing the dispatcher's own work from a platform profile: vCPU context switches.

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
``sched.schedule``).
"""

from __future__ import annotations


def switch_cost_from_profile(profile, meter=None):
    """``switch_cost_ns(prev, next)`` priced from ``profile``'s ``[sched]`` constants."""
    switch_ns = profile.ns("sched.vcpu_switch_cycles")
    sched_ns = profile.ns("sched.schedule_cycles")
    last_on_cpu: dict[int, object] = {}

    def cost(prev, nxt) -> int:
        cpu = nxt.cpu
        lazy = prev is None and last_on_cpu.get(cpu) is nxt  # idle kept nxt's state loaded
        last_on_cpu[cpu] = nxt
        if meter is not None:
            meter.add("sched.schedule", "sched.schedule_cycles", 1)
            if not lazy:
                meter.add("sched.context_switch", "sched.vcpu_switch_cycles", 1)
        return int(round(sched_ns + (0 if lazy else switch_ns)))

    return cost
