"""Engine: SimPy with an integer-nanosecond clock, seeded per-component RNG streams, a trace bus.

Design note
-----------
Simulated time is an ``int`` number of nanoseconds everywhere (SimPy's clock is fed ints only;
:meth:`Engine.timeout_ns` refuses anything else). A SimPy event stands for a *decision*
(scheduling, wake-up, an I/O request or response, a timer, a migration round), never for a guest
instruction or a single memory access: bulk work inside a CPU burst is priced in one step by the
cost model and the compiled kernels.

Randomness comes from :class:`numpy.random.SeedSequence`: every component asks for its own stream
by a stable name (``engine.rng("workload/dom1")``), so adding a component never perturbs another
component's draws and the same scenario and seed give identical results in any process.

Demands: what a vCPU's behaviour (any object with ``next(now_ns)``) asks of the pCPU dispatcher
next -- ``Run(ns)`` (CPU work, preemptible: the dispatcher keeps the remainder), ``Block(ns)``
(blocked for ``ns``, then woken: ``SCHEDOP_block`` plus a timer), ``Wait(event)`` (blocked until a
SimPy event fires; it may already have fired, as ``vcpu_block`` returns at once when an event is
pending) and ``Done()`` (offline for good). They are the engine's vocabulary, shared by the
dispatcher (:mod:`pvsim.sched`) and the guest OS runtime (:mod:`guest_kernels.os`).

The trace bus carries xentrace-like records ``(time_ns, pcpu, event_id, words)``; subscribers are
plain callables. Nothing is recorded unless someone subscribes.

Co-simulated steppers: a compiled host dispatcher (:mod:`pvsim.sched.hk`) keeps its own event queue
outside SimPy's. It draws its event ids from SimPy's own counter (:class:`EventIds`, shared through
``engine.eids``), so that its events and SimPy's form one order, ``(time, priority, id)``, exactly as
if they had all been SimPy events; :meth:`Engine.run` then steps whichever queue holds the earliest
event, letting a stepper run all its events up to the next one of anyone else's in one call.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np
import simpy
from simpy.events import Timeout


def stream_seed(seed: int, name: str) -> np.random.SeedSequence:
    """The seed sequence of the stream called ``name`` under the run seed ``seed`` (stable)."""
    return np.random.SeedSequence(entropy=int(seed), spawn_key=(zlib.crc32(name.encode()),))


def rng_for(seed: int, name: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(stream_seed(seed, name)))


@dataclass(frozen=True)
class TraceRecord:
    time_ns: int
    pcpu: int
    event: int
    words: tuple[int, ...] = ()


class EventIds:
    """SimPy's event-id counter (``env._eid``), readable and settable so that a compiled stepper can
    continue the same sequence: ``n`` is the next id."""

    __slots__ = ("n",)

    def __init__(self, n: int = 0):
        self.n = n

    def __iter__(self):
        return self

    def __next__(self) -> int:
        n = self.n
        self.n = n + 1
        return n


NORMAL = 1  # simpy.events.NORMAL: the priority of timeouts and succeeded events


class Stepper(Protocol):
    """An event queue of its own, run by :meth:`Engine.run` beside SimPy's."""

    def peek(self) -> tuple | None:
        """``(time, priority, id)`` of its earliest event, or None."""

    def advance(self, limit: tuple) -> None:
        """Process its events with keys below ``limit`` (it may stop earlier)."""


@dataclass
class Engine:
    seed: int = 0
    env: simpy.Environment = field(default_factory=lambda: simpy.Environment(initial_time=0))
    _subscribers: list[Callable[[TraceRecord], None]] = field(default_factory=list)
    events_scheduled: int = 0
    steppers: list = field(default_factory=list)

    def __post_init__(self):
        self.eids = EventIds()
        self.env._eid = self.eids

    @property
    def now_ns(self) -> int:
        return int(self.env.now)

    def rng(self, name: str) -> np.random.Generator:
        return rng_for(self.seed, name)

    def timeout_ns(self, delay_ns: int, value=None):
        if not isinstance(delay_ns, (int, np.integer)) or delay_ns < 0:
            raise TypeError(f"simulated delays are non-negative integer ns, got {delay_ns!r}")
        self.events_scheduled += 1
        return self.env.timeout(int(delay_ns), value)

    def after(self, delay_ns: int):
        """A timeout of ``delay_ns`` (a non-negative int, unchecked): the hot path's
        :meth:`timeout_ns`."""
        self.events_scheduled += 1
        return Timeout(self.env, delay_ns)

    def process(self, generator):
        self.events_scheduled += 1
        return self.env.process(generator)

    def event(self):
        self.events_scheduled += 1
        return self.env.event()

    def run_until(self, event) -> None:
        """Run until the SimPy ``event`` has been processed (or nothing is left)."""
        if not self.steppers:
            self.env.run(until=event)
            return
        done = []
        event.callbacks.append(lambda _e: done.append(True))
        env = self.env
        q = env._queue
        while not done:
            head = q[0] if q else None
            lim = (head[0], head[1], head[2]) if head is not None else (float("inf"), 0, 0)
            best, bk = None, lim
            for st in self.steppers:
                k = st.peek()
                if k is not None and k < bk:
                    best, bk = st, k
            if best is not None:
                for st in self.steppers:
                    if st is not best:
                        k = st.peek()
                        if k is not None and k < lim:
                            lim = k
                best.advance(lim)
                continue
            if head is None:
                break
            env.step()

    def add_stepper(self, stepper) -> None:
        self.steppers.append(stepper)

    def run(self, until_ns: int | None = None):
        if not self.steppers:
            return self.env.run(until=None if until_ns is None else int(until_ns))
        env = self.env
        q = env._queue
        steppers = self.steppers
        until = (int(until_ns), -1, -1) if until_ns is not None else (float("inf"), 0, 0)
        if until_ns is not None and until[0] < env._now:
            raise ValueError(f"until ({until_ns}) must be >= now ({env._now})")
        while True:
            head = q[0] if q else None
            lim = (head[0], head[1], head[2]) if head is not None else until
            if until < lim:
                lim = until
            best = None
            bk = lim
            for st in steppers:
                k = st.peek()
                if k is not None and k < bk:
                    best, bk = st, k
            if best is not None:
                for st in steppers:  # the stepper may run up to anyone else's next event
                    if st is not best:
                        k = st.peek()
                        if k is not None and k < lim:
                            lim = k
                best.advance(lim)
                continue
            if head is None or until < (head[0], head[1], head[2]):
                break
            env.step()
        if until_ns is not None:
            env._now = int(until_ns)

    # trace bus
    def subscribe(self, fn: Callable[[TraceRecord], None]) -> None:
        self._subscribers.append(fn)

    @property
    def tracing(self) -> bool:
        return bool(self._subscribers)

    def trace(self, pcpu: int, event: int, *words: int) -> None:
        if self._subscribers:
            rec = TraceRecord(self.now_ns, pcpu, event, tuple(int(w) for w in words))
            for fn in self._subscribers:
                fn(rec)


# --------------------------------------------------------------------------- demands
@dataclass(frozen=True, slots=True)
class Run:
    """``ns`` of CPU work (integer ns, >= 0); preemptible."""

    ns: int


@dataclass(frozen=True, slots=True)
class Block:
    """Blocked for ``ns`` (integer ns, >= 0), then woken."""

    ns: int


@dataclass(frozen=True, slots=True)
class Wait:
    """Blocked until the SimPy ``event`` fires (it may already have fired)."""

    event: Any


@dataclass(frozen=True, slots=True)
class Done:
    """The vCPU goes offline for good."""


Demand = Run | Block | Wait | Done


class Behaviour(Protocol):
    def next(self, now_ns: int) -> Demand: ...
