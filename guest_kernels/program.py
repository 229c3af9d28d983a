"""A guest OS reduced to a program: one thread per vCPU looping over CPU work and sleeps.

Design note
-----------
Most of what a scheduler study runs is no more than this: each vCPU's one thread computes for a
while (a fixed or exponential amount, or a priced op mix), then sleeps (a think time, or until the
next period), and the guest kernel idles the vCPU the way its mode does while the thread sleeps
(``SCHEDOP_block`` for PV, a ``HLT`` exit under VT-x, nothing on bare metal). A :class:`Program`
is that loop as integers -- its ops, their prices in 1/1024 ns, the price of the kernel's idle path
-- so that a compiled dispatcher (:mod:`pvsim.sched.hk`) can run it without a Python call per
decision; :class:`ProgramVcpu` is the same loop in plain Python, the behaviour the Python dispatcher
runs and the reference the compiled one is tested against. Both draw their exponential amounts
from the thread's seeded stream in the same order, so the two give identical demands.

The builder (:mod:`pvsim.system`) makes a program of a workload when the workload is nothing but
this (one thread per vCPU; ``actions`` without devices, ``cpu``, ``sleep`` and ``period`` steps,
whole ``times``, no ``p``, no ``setup``, a timed run); anything else runs on the full guest OS
(:mod:`guest_kernels.os`). The loop's semantics are the full OS's:

* CPU work accumulates and is handed to the dispatcher as one ``Run`` when the thread sleeps or its
  unit ends (sub-nanosecond remainders carry over: the clock is integer ns);
* a CPU-only workload runs in bursts of about :data:`BURST_NS` (several short units in one ``Run``,
  or a long unit split over several), its units completing when their burst has run;
* a ``period`` step sleeps until the next multiple of the period (after the phase) and the unit's
  latency counts from that arrival; other units count from the start of their loop; a unit ends
  when its last CPU work has run;
* the idle path's price is the guest kernel's (``kernel.idle()`` priced once): a PV block hypercall
  costs its entry and handler when the vCPU wakes, a VT-x ``HLT`` exit before it blocks.

Simplifications: no interrupts are delivered to a program (its workload uses no devices); a
thread's timer wakes its vCPU without a timer interrupt being priced (as in the full OS).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pvsim.core.engine import Block, Run

FRAC_BITS = 10  # prices in 1/1024 ns
ONE_NS = 1 << FRAC_BITS
BURST_NS = 10_000_000  # as pvsim.workloads.threads.BURST_NS

OP_CPU = 1  # a = price (1/1024 ns), b = 0 fixed | 1 exponential with mean a
OP_SLEEP = 2  # a = ns, b = 0 fixed | 1 exponential with mean a
OP_PERIOD = 3  # a = period ns, b = phase ns
SHAPE_LOOP = 0
SHAPE_BURST = 1
IDLE_ON_WAKE = 0  # the idle path's cost runs when the vCPU wakes (PV: the block hypercall)
IDLE_BEFORE = 1  # it runs before the vCPU blocks (VT-x: the HLT exit)


@dataclass(frozen=True)
class Program:
    shape: int
    ops: tuple[tuple[int, int, int], ...]  # (op, a, b)
    burst_cost: int = 0  # SHAPE_BURST: price of one burst (1/1024 ns)
    burst_parts: int = 1  # parts of a unit completed by one burst
    parts_per_unit: int = 1
    idle_cost: int = 0  # price of the kernel's idle path (1/1024 ns)
    idle_mode: int = IDLE_ON_WAKE
    upl: float = 1.0  # units per loop
    # accounting (read in Python): per op, ns per cause of one execution (fixed price) or the cause
    # of an exponential amount; counts per execution; the idle path's ns per cause and counts
    op_ns: tuple = ()
    op_counts: tuple = ()
    idle_ns: dict = field(default_factory=dict)
    idle_counts: dict = field(default_factory=dict)
    records_latency: bool = True


class ProgramMeter:
    """What a program's vCPU has done, in a meter's shape (``ns`` and ``counts`` per cause), built on
    demand from its counters: op executions, exponential amounts drawn, idle periods."""

    def __init__(self, prog: Program, counters):
        self.prog = prog
        self.c = counters  # .op_exec(i), .op_drawn(i), .idles(), .bursts()

    @property
    def ns(self) -> dict:
        p = self.prog
        out: dict[str, float] = {}
        for i, (op, _a, b) in enumerate(p.ops):
            if op != OP_CPU:
                continue
            if b == 1:
                cause = p.op_ns[i]
                out[cause] = out.get(cause, 0.0) + self.c.op_drawn(i) / ONE_NS
            else:
                n = self.c.op_exec(i)
                for cause, v in p.op_ns[i].items():
                    out[cause] = out.get(cause, 0.0) + v * n
        k = self.c.idles()
        for cause, v in p.idle_ns.items():
            out[cause] = out.get(cause, 0.0) + v * k
        for cause, v in self.c.extra_ns.items():  # work charged from outside the program
            out[cause] = out.get(cause, 0.0) + v
        return {c: v for c, v in out.items() if v}

    @property
    def counts(self) -> dict:
        p = self.prog
        out: dict[str, float] = {}
        for i, (op, _a, _b) in enumerate(p.ops):
            if op == OP_CPU:
                n = self.c.op_exec(i)
                for name, v in p.op_counts[i].items():
                    out[name] = out.get(name, 0) + v * n
        k = self.c.idles()
        for name, v in p.idle_counts.items():
            out[name] = out.get(name, 0) + v * k
        for name, v in self.c.extra_counts.items():
            out[name] = out.get(name, 0) + v
        return {c: v for c, v in out.items() if v}


class ProgramVcpu:
    """One vCPU running its program: the behaviour (``next(now) -> Run | Block``) of the Python
    dispatcher, and the reference of the compiled interpreter (:mod:`pvsim.sched.hk.core`)."""

    def __init__(self, dom_os: "ProgramOS", vcpu_id: int, rng):
        self.dom_os = dom_os
        self.vcpu_id = vcpu_id
        self.prog = dom_os.prog
        self.rng = rng
        self.pc = 0
        self.pending = 0
        self.t0 = -1  # start (or arrival) of the unit in progress; -1: none yet
        self.loop_end = False  # the Run in flight ends a unit
        self.idled = False  # IDLE_BEFORE: the idle path has run for this sleep
        self.wake_at = 0
        self.burst_parts = 0  # parts completed when the Run in flight ends
        self.burst_ns = 0
        self.parts = 0
        self.exec = [0] * len(self.prog.ops)
        self.drawn = [0] * len(self.prog.ops)
        self.n_idles = 0
        self.busy_ns = 0
        # work charged to this vCPU from outside its program (a migration's log-dirty faults): ns per
        # cause and counts for the meter; pending_hook adds to the compiled dispatcher's pending instead
        self.extra_ns: dict[str, float] = {}
        self.extra_counts: dict[str, float] = {}
        self.pending_hook = None
        self.meter = ProgramMeter(self.prog, self)

    def charge(self, ns_by_cause: dict, counts: dict) -> None:
        """Work done on this vCPU outside its program (the hypervisor's, on its behalf): it runs with
        the program's next Run, and the breakdown shows its causes."""
        total = 0.0
        for cause, v in ns_by_cause.items():
            self.extra_ns[cause] = self.extra_ns.get(cause, 0.0) + v
            total += v
        for name, n in counts.items():
            self.extra_counts[name] = self.extra_counts.get(name, 0) + n
        frac = int(round(total * ONE_NS))
        if self.pending_hook is not None:
            self.pending_hook(frac)
        else:
            self.pending += frac

    # counters for ProgramMeter
    def op_exec(self, i):
        return self.exec[i]

    def op_drawn(self, i):
        return self.drawn[i]

    def idles(self):
        return self.n_idles

    def _run(self, ns: int):
        self.busy_ns += ns
        return Run(ns)

    def _flush(self):
        run = self.pending >> FRAC_BITS
        self.pending -= run << FRAC_BITS
        return run

    def next(self, now: int):
        p = self.prog
        if self.burst_parts:
            self.parts += self.burst_parts
            self.burst_parts = 0
        if self.loop_end:
            self.loop_end = False
            self._unit_done(now)
        if p.shape == SHAPE_BURST:
            self.pending += p.burst_cost
            self.exec[0] += p.burst_parts  # op 0 carries the price of one part
            run = self._flush()
            self.burst_parts = p.burst_parts
            self.burst_ns = run
            return self._run(run)
        ops = p.ops
        n = len(ops)
        for _ in range(4 * n + 4):
            if self.pc == 0 and self.t0 < 0:
                self.t0 = now
            if self.pc == n:  # the unit's steps are done
                self.pc = 0
                if self.pending >= ONE_NS:
                    self.loop_end = True
                    return self._run(self._flush())
                self._unit_done(now)
                continue
            op, a, b = ops[self.pc]
            if op == OP_CPU:
                if b == 1:
                    v = max(ONE_NS, int(self.rng.standard_exponential() * a))
                    self.drawn[self.pc] += v
                    self.pending += v
                else:
                    self.pending += a
                self.exec[self.pc] += 1
                self.pc += 1
                continue
            if self.idled:  # the idle path ran (VT-x): now block until the wake-up chosen before it
                wake = self.wake_at
            else:
                if self.pending >= ONE_NS:  # a sleep or a period: the work so far runs first
                    return self._run(self._flush())
                if op == OP_SLEEP:
                    wake = now + (max(1, int(self.rng.standard_exponential() * a)) if b == 1 else a)
                else:
                    wake = b + max(0, -(-(now - b) // a)) * a if now > b else b
                if wake <= now:  # no sleep at all (a period already begun)
                    self.pc += 1
                    if op == OP_PERIOD:
                        self.t0 = wake
                    continue
                if p.idle_mode == IDLE_BEFORE and p.idle_cost:
                    self.pending += p.idle_cost
                    self.n_idles += 1
                    if self.pending >= ONE_NS:
                        self.idled = True
                        self.wake_at = wake
                        return self._run(self._flush())
            self.idled = False
            self.pc += 1
            if op == OP_PERIOD:
                self.t0 = wake
            if p.idle_mode == IDLE_ON_WAKE and p.idle_cost:
                self.pending += p.idle_cost
                self.n_idles += 1
            if wake <= now:  # the idle path ran past the wake-up: the thread is runnable again
                continue
            return Block(wake - now)
        raise RuntimeError(f"{self.dom_os.name}.{self.vcpu_id}: a program loop that never runs nor sleeps")

    def _unit_done(self, now: int) -> None:
        p = self.prog
        self.parts += p.parts_per_unit
        if p.records_latency and self.t0 >= 0:
            self.dom_os.latencies_us.append((now - self.t0) / 1000.0)
        self.t0 = -1

    # ------------------------------------------------------------------ the snapshot's interface
    def units_in_flight(self, left_ns: int) -> float:
        """Parts of units in the Run in flight, by the fraction of it done."""
        if self.burst_parts and self.burst_ns > 0:
            return self.burst_parts * max(0.0, 1.0 - left_ns / self.burst_ns) * self.prog.upl / self.prog.parts_per_unit
        return 0.0

    def iowait_until(self, now: int) -> int:
        return 0


class ProgramOS:
    """A domain whose vCPUs each run the program (the counterpart of :class:`guest_kernels.os.DomainOS`
    for the snapshot: ``vcpus``, ``units``, ``latencies_us``)."""

    def __init__(self, name: str, prog: Program, rngs, kernels=()):
        self.name = name
        self.prog = prog
        self.kernels = list(kernels)
        self.latencies_us: list[float] = []
        self.vcpus = [ProgramVcpu(self, v, r) for v, r in enumerate(rngs)]
        self.accounts: dict = {}
        self.mmu = None
        self.upcalls = 0

    @property
    def kernel(self):
        return self.kernels[0] if self.kernels else None

    @property
    def units(self) -> float:
        p = self.prog
        return sum(v.parts for v in self.vcpus) * p.upl / p.parts_per_unit

    def on_kick(self, vcpu_id: int = 0) -> None:
        """An event for a program domain (nothing of its workload waits for one): counted."""
        self.upcalls += 1
