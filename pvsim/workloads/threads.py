"""A workload thread: the one interpreter of workload steps, for every kind of workload.

Design note
-----------
:func:`thread` is a generator run by a domain's OS (:class:`guest_kernels.os.VcpuOS`): it repeats
the workload's unit of work, executing each step through ``env`` -- the domain's runtime, built
by :mod:`pvsim.system`, which reports work to the thread's vCPU and drives the domain's devices and
page tables -- and yields the commands the OS understands (``("run", ns[, units])``, ``("iowait",
event)``, ``("sleep", ns)``). This module imports no subsystem: everything a step touches is behind
``env``. A unit ends with ``env.record(t0, units)``; ``t0`` is the unit's start, or for a server the
moment its client sent the request.

Work is reported as it happens and handed to the dispatcher only where the outside can see it: when
the thread notifies a device, waits, sleeps or ends its unit, or has at least ``CHUNK_NS`` pending (an
interrupt cuts a long Run short, so nothing waits behind it). Batching: a workload whose unit is nothing but priced CPU (an op mix without device actions, or
fixed CPU) is run in bursts of about ``BURST_NS`` of CPU -- several short units in one ``Run``, or a
long unit split over several -- so the dispatcher sees one decision per burst, never one per guest
operation. Fractional ``times`` accumulate per thread (0.2 means one unit in five); ``p`` draws per
unit from the thread's seeded stream.
"""

from __future__ import annotations

import math

BURST_NS = 10_000_000  # about 10 ms of CPU per burst of a CPU-only unit (interrupts cut it short)
CHUNK_NS = 100_000  # pending CPU work that is handed to the dispatcher without waiting for the next action


def _count(step, carry: dict) -> int:
    """How many times ``step`` runs in this unit (deterministic accumulation of fractions)."""
    t = step.times
    if t == 1.0:
        return 1
    acc = carry.get(step.key, 0.0) + t
    n = int(acc + 1e-12)
    carry[step.key] = acc - n
    return n


def _cpu_only(steps) -> bool:
    for s in steps:
        if s.p != 1.0:
            return False
        if s.kind == "actions":
            if any(a.kind_device for a in s.body):
                return False
        elif s.kind == "cpu":
            if s.body.dist != "fixed":
                return False
        else:
            return False
    return True


def thread(env, workload, tid: int):
    """The thread ``tid`` of ``workload`` on ``env``."""
    yield from env.setup(workload.setup)
    if workload.arrival_rate is not None:
        yield from _arrivals(env, workload)
        return
    if _cpu_only(workload.steps):
        yield from _bursts(env, workload)
        return
    if len(workload.steps) == 1 and workload.steps[0].kind in ("memory", "churn") \
            and workload.steps[0].p == 1.0 and workload.steps[0].times == 1.0:
        yield from _memory_loop(env, workload)
        return
    carry: dict = {}
    upl = workload.units_per_loop
    while env.budget(1.0) > 0:
        t0 = env.now
        t0 = yield from _steps(env, workload.steps, carry, t0, tid)
        env.record(t0, upl)  # its last work, if any is still pending, ends it: counted in the latency


def _arrivals(env, workload):
    """An open-loop source: each arrival starts one unit (a thread of its own) and records it."""
    mean_ns = 1e9 / workload.arrival_rate
    seq = 0
    while env.budget(1.0) > 0:
        gap = mean_ns if workload.arrival_dist == "fixed" else env.rng.exponential(mean_ns)
        yield ("sleep", max(1, int(gap)))
        seq += 1
        env.spawn(_one_unit(env, workload, seq))


def _one_unit(env, workload, seq: int):
    t0 = env.now
    t0 = yield from _steps(env, workload.steps, {}, t0, seq)
    env.record(t0, workload.units_per_loop)


def _steps(env, steps, carry: dict, t0: int, tid: int):
    for s in steps:
        if s.p < 1.0 and env.rng.random() >= s.p:
            continue
        for _ in range(_count(s, carry)):
            t0 = yield from _step(env, s, carry, t0, tid)
    return t0


def _step(env, s, carry: dict, t0: int, tid: int):
    k = s.kind
    if k == "actions":
        env.charge_actions(s, 1.0)
        for a in s.body:
            if a.kind_device:
                for _ in range(_count_action(a, s, carry)):
                    if a.name == "disk_io":
                        yield from env.disk_io(int(a.args[0]), bool(a.args[1]))
                    elif bool(a.args[1]):
                        yield from env.respond(env.packets_bytes(a.args[0]), tid)
                    else:
                        t0 = yield from env.await_request(tid)
        yield from _spill(env)
    elif k == "cpu":
        env.cpu(s.body)
        yield from _spill(env)
    elif k == "syscalls":
        env.syscalls(s.body)
    elif k == "disk":
        yield from env.disk(s)
    elif k == "send":
        yield from env.send(s.body.bytes)
    elif k == "request":
        yield from env.request(s.body.bytes, s.body.response_bytes)
    elif k == "await":
        t0 = yield from env.await_request(tid)
    elif k == "respond":
        yield from env.respond(s.body.bytes, tid)
    elif k == "sleep":
        ns = s.body.ns if s.body.dist == "fixed" else env.rng.exponential(s.body.ns)
        yield from env.flush_run()
        yield ("sleep", max(1, int(ns)))
    elif k == "period":
        yield from env.flush_run()
        now = env.now
        period = int(s.body.ns)
        phase = int(s.body.phase_ns)
        nxt = phase + max(0, -(-(now - phase) // period)) * period if now > phase else phase
        if nxt > now:
            yield ("sleep", nxt - now)
        t0 = nxt
    elif k == "memory":
        env.memory(s)
        yield from _cpu_chunks(env, BURST_NS)
    elif k == "churn":
        env.churn(s)
        yield from _cpu_chunks(env, BURST_NS)
    elif k == "choice":
        u = env.rng.random()
        acc = 0.0
        for p, sub in s.body:
            acc += p
            if u < acc:
                t0 = yield from _steps(env, sub, carry, t0, tid)
                break
    else:  # pragma: no cover - the spec parser admits no other kind
        raise ValueError(f"unknown step kind {k!r}")
    return t0


def _count_action(a, s, carry: dict) -> int:
    if a.times == 1.0:
        return 1
    key = (s.key, a.name, a.args)
    acc = carry.get(key, 0.0) + a.times
    n = int(acc + 1e-12)
    carry[key] = acc - n
    return n


def _spill(env):
    """Run the reported work in one ``Run`` once at least ``CHUNK_NS`` is pending (an interrupt cuts
    it short if it must); less stays pending and runs with the thread's next work (one dispatcher
    decision, not one per step)."""
    if env.pending() >= CHUNK_NS:
        yield ("run", env.take())


def _cpu_chunks(env, chunk: int = CHUNK_NS):
    """Hand the reported work to the dispatcher in Runs of at most ``chunk`` ns."""
    ns = env.take()
    if ns <= 0:
        return
    k = max(1, math.ceil(ns / chunk))
    base, rem = divmod(ns, k)
    for i in range(k):
        yield ("run", base + (1 if i < rem else 0))


def _memory_loop(env, workload):
    """A unit that is one memory or churn step: its units complete as its Runs do (so a timed
    window counts the fraction of the unit in progress)."""
    s = workload.steps[0]
    upl = workload.units_per_loop
    while env.budget(1.0) > 0:
        env.memory(s) if s.kind == "memory" else env.churn(s)
        ns = env.take()
        k = max(1, math.ceil(ns / BURST_NS))
        base, rem = divmod(ns, k)
        for i in range(k):
            yield ("run", base + (1 if i < rem else 0), upl / k)


def _bursts(env, workload):
    """A CPU-only unit, run in bursts of about ``BURST_NS``."""
    unit_ns = env.unit_ns(workload.steps)
    upl = workload.units_per_loop
    if unit_ns <= 0:
        raise ValueError(f"{workload.name}: a unit of work takes no time")
    if unit_ns <= BURST_NS:
        per = float(max(1, int(BURST_NS // unit_ns)))
        while True:
            n = env.budget(per)
            if n <= 0:
                return
            ns = env.charge_units(workload.steps, n)
            yield ("run", ns, n * upl)
    else:
        parts = math.ceil(unit_ns / BURST_NS)
        while env.budget(1.0) > 0:
            for _ in range(parts):
                ns = env.charge_units(workload.steps, 1.0 / parts)
                yield ("run", ns, upl / parts)
