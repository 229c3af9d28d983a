"""Making a :class:`guest_kernels.program.Program` of a domain's workload, when it is one.

Design note
-----------
A workload is a program when each vCPU runs one thread of CPU work and sleeps and nothing else:
``actions`` steps without device actions, ``cpu``, ``sleep`` and ``period`` steps, every ``p`` 1,
whole ``times`` (fractions only in a CPU-only unit, which runs in bursts), no ``setup``, no open-loop
arrivals, one thread per vCPU, an unbounded (timed) run, and a guest domain (a control domain runs
backends as threads, so it keeps the full OS). The ops are priced here, once, as a run would price
them: op mixes by :func:`pvsim.pricing.price_step` on the domain's mode, CPU keys from the profile,
and the guest kernel's idle path by running ``kernel.idle()`` on a scratch meter with a scheduling
port that records instead of acting (its hypercall, exit or nothing, by mode). Prices are integers
in 1/1024 ns (:data:`guest_kernels.program.FRAC_BITS`).
"""

from __future__ import annotations

import math

from guest_kernels.program import (
    BURST_NS,
    IDLE_BEFORE,
    IDLE_ON_WAKE,
    ONE_NS,
    OP_CPU,
    OP_PERIOD,
    OP_SLEEP,
    SHAPE_BURST,
    SHAPE_LOOP,
    Program,
)
from pvsim.core.meter import LiveMeter
from pvsim.hypervisor.hypervisor import SchedPort

_LOOP_KINDS = ("actions", "cpu", "sleep", "period")


def eligible(dr) -> bool:
    """Whether domain runtime ``dr``'s workload is a program (see the module note)."""
    w = dr.workload
    if dr.control or w.setup or w.arrival_rate is not None or math.isfinite(dr.budget):
        return False
    if w.threads is not None and w.threads != dr.spec.vcpus:
        return False
    steps = w.steps
    if not steps or any(s.kind not in _LOOP_KINDS or s.p != 1.0 for s in steps):
        return False
    if any(s.kind == "actions" and any(a.kind_device for a in s.body) for s in steps):
        return False
    if _burst(steps):
        return True
    return all(float(s.times).is_integer() and s.times >= 1 for s in steps)


def _burst(steps) -> bool:
    return all(s.kind == "actions" or (s.kind == "cpu" and s.body.dist == "fixed") for s in steps)


def _cpu_ns(dr, body) -> float:
    p = dr.host.pricer
    if body.key is not None:
        return p.ns(body.key)
    if body.cycles is not None:
        return float(body.cycles) / p.ghz
    return float(body.ns)


def _step_price(dr, s) -> tuple[float, dict, dict]:
    """(ns, ns per cause, counts) of one execution of a CPU-priced step."""
    if s.kind == "actions":
        c = dr.price(s)
        g = dr.host.pricer.ghz
        ns = {k: v / g for k, v in c.cycles.items() if v}
        return sum(ns.values()), ns, {k: v for k, v in c.counts.items() if v}
    ns = _cpu_ns(dr, s.body)
    return ns, {s.body.cause: ns}, {}


def price_idle(dr, kernel) -> tuple[float, dict, dict, bool]:
    """(ns, ns per cause, counts, blocks) of ``kernel``'s idle path: ``blocks`` when it blocks the
    vCPU in the hypervisor (its cost then runs on wake-up)."""
    hv = dr.host.hv
    vcpu = kernel.p.vcpu
    meter = LiveMeter(dr.host.pricer)
    saved = (hv.sched, hv.meter, vcpu.blocked, vcpu.block_requested, vcpu.runstate)
    hv.sched, hv.meter = SchedPort(), meter
    try:
        kernel.idle()
        blocks = vcpu.blocked
    finally:
        hv.sched, hv.meter, vcpu.blocked, vcpu.block_requested, vcpu.runstate = saved
    ns = {k: v for k, v in meter.ns.items() if v}
    return sum(ns.values()), ns, {k: v for k, v in meter.counts.items() if v}, bool(blocks)


def make_program(dr, kernel) -> Program:
    """The program of ``dr``'s workload (``eligible(dr)`` must hold); ``kernel`` prices the idle path."""
    w = dr.workload
    steps = w.steps
    idle_ns, idle_by, idle_counts, blocks = price_idle(dr, kernel)
    common = dict(idle_cost=int(round(idle_ns * ONE_NS)), idle_mode=IDLE_ON_WAKE if blocks else IDLE_BEFORE,
                  upl=float(w.units_per_loop), idle_ns=idle_by, idle_counts=idle_counts)
    if _burst(steps):
        unit_ns = 0.0
        by: dict[str, float] = {}
        counts: dict[str, float] = {}
        for s in steps:
            ns, b, c = _step_price(dr, s)
            unit_ns += ns * s.times
            for k, v in b.items():
                by[k] = by.get(k, 0.0) + v * s.times
            for k, v in c.items():
                counts[k] = counts.get(k, 0.0) + v * s.times
        if unit_ns <= 0:
            raise ValueError(f"{w.name}: a unit of work takes no time")
        if unit_ns <= BURST_NS:
            ppu, parts = 1, max(1, int(BURST_NS // unit_ns))
        else:
            ppu, parts = math.ceil(unit_ns / BURST_NS), 1
        part = {k: v / ppu for k, v in by.items()}
        return Program(SHAPE_BURST, ((OP_CPU, int(round(unit_ns / ppu * ONE_NS)), 0),),
                       burst_cost=int(round(unit_ns * parts / ppu * ONE_NS)), burst_parts=parts, parts_per_unit=ppu,
                       op_ns=(part,), op_counts=({k: v / ppu for k, v in counts.items()},),
                       records_latency=False, **common)
    ops, op_ns, op_counts = [], [], []
    for s in steps:
        for _ in range(int(s.times)):
            if s.kind == "sleep":
                ops.append((OP_SLEEP, int(s.body.ns), 1 if s.body.dist == "exp" else 0))
                op_ns.append({})
                op_counts.append({})
            elif s.kind == "period":
                ops.append((OP_PERIOD, int(s.body.ns), int(s.body.phase_ns)))
                op_ns.append({})
                op_counts.append({})
            elif s.kind == "cpu" and s.body.dist == "exp":
                ops.append((OP_CPU, int(round(_cpu_ns(dr, s.body) * ONE_NS)), 1))
                op_ns.append(s.body.cause)
                op_counts.append({})
            else:
                ns, b, c = _step_price(dr, s)
                ops.append((OP_CPU, int(round(ns * ONE_NS)), 0))
                op_ns.append(b)
                op_counts.append(c)
    if not any(op in (OP_SLEEP, OP_PERIOD) for op, _a, _b in ops) and sum(a for op, a, _b in ops) <= 0:
        raise ValueError(f"{w.name}: a unit of work takes no time")
    return Program(SHAPE_LOOP, tuple(ops), op_ns=tuple(op_ns), op_counts=tuple(op_counts), **common)
