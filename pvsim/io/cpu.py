"""A vCPU's kernel as a dispatcher behaviour: interrupt handlers, threads, idling.

Design note
-----------
:class:`VcpuOS` turns the guest (or dom0) kernel's activity into the dispatcher's demands
(:mod:`pvsim.sched.demand`): pending *interrupt handlers* (event-channel upcalls, device
interrupts) run first, then *threads* (the workload's tasks, backend kthreads, the device model)
round-robin. Every handler and thread is a generator yielding

* ``("run", ns)``: CPU work (priced from the work it reported, see :class:`Pricer`);
* ``("wait", event)``: the *thread* sleeps on a SimPy event; the vCPU switches to another thread
  (``native.context_switch_cycles``) or idles;
* ``("bwait", event)``: the whole *vCPU* blocks on the event (a trapped MMIO access waiting for
  the device model: the vCPU cannot run anything else meanwhile).

When nothing is runnable the vCPU idles: it reports the idle-entry work of its mode once
(``SCHEDOP_block`` for PV, a ``HLT`` exit for HVM) and returns ``Wait`` on a wake event that
:meth:`VcpuOS.kick` fires (``vcpu_kick``).

Simplifications: an interrupt does not preempt a ``Run`` already handed to the dispatcher; it runs
when that demand ends (threads keep demands short). Thread switches cost one context switch.
"""

from __future__ import annotations

from collections import deque

from pvsim.meter import Meter
from pvsim.sched.demand import Run, Wait


class Pricer:
    """Turns reported work into nanoseconds under a profile (cached per key)."""

    def __init__(self, profile):
        self.profile = profile
        self.ghz = profile.clock_ghz
        self._c: dict[str, float] = {}

    def cycles(self, price: str) -> float:
        c = self._c.get(price)
        if c is None:
            c = 1.0 if price == "cycles" else self.profile.cycles(price)
            self._c[price] = c
        return c

    def value(self, key: str) -> float:
        return self.profile.value(key)

    def ns(self, key: str) -> float:
        return self.cycles(key) / self.ghz

    def ns_of(self, meter: Meter) -> float:
        return sum(n * self.cycles(p) for (_, p), n in meter.work.items()) / self.ghz


class VcpuOS:
    """One vCPU's kernel (the behaviour handed to ``HostRunner.add_vcpu``)."""

    def __init__(self, name: str, engine, pricer: Pricer, *, idle_work=(), switch_work=(), idle_counts=()):
        self.name = name
        self.engine = engine
        self.pricer = pricer
        self.meter = Meter()
        self.irqs: deque = deque()
        self.ready: deque = deque()
        self.cur = None
        self.cur_irq = False
        self.last_thread = None
        self.idle_work = tuple(idle_work)
        self.idle_counts = tuple(idle_counts)
        self.switch_work = tuple(switch_work)
        self._wake_ev = None
        self._idle_charged = False
        self._pending = 0.0  # ns of reported work not yet handed out as Run
        self._carry = 0.0
        self.busy_ns = 0
        self.vcpu = None  # the hypervisor VCPU (for hypercalls), set by the builder
        self.hv = None

    # ------------------------------------------------------------------ work reporting
    def work(self, cause: str, price: str, n: float = 1) -> None:
        if n:
            self.meter.add(cause, price, n)
            self._pending += n * self.pricer.cycles(price) / self.pricer.ghz

    def count(self, name: str, n: int = 1) -> None:
        self.meter.count(name, n)

    def hypercall(self, nr: int, *args) -> int:
        tmp = Meter()
        with self.hv.metering(tmp):
            rc = self.hv.hypercall(self.vcpu, nr, *args)
        self.meter.merge(tmp)
        self._pending += self.pricer.ns_of(tmp)
        return rc

    def flush(self):
        """``("run", ns)`` for the work reported since the last flush (0 if none)."""
        x = self._pending + self._carry
        ns = int(x)
        self._carry = x - ns
        self._pending = 0.0
        return ("run", ns)

    # ------------------------------------------------------------------ scheduling
    def spawn(self, gen) -> None:
        self.ready.append(gen)
        self.kick()

    def raise_irq(self, handler_factory) -> None:
        self.irqs.append(handler_factory)
        self.kick()

    def kick(self) -> None:
        ev = self._wake_ev
        if ev is not None and not ev.triggered:
            ev.succeed()

    def _make_ready(self, gen):
        def cb(_ev):
            self.ready.append(gen)
            self.kick()
        return cb

    def next(self, now_ns: int):
        while True:
            if self.irqs and (self.cur is None or not self.cur_irq):
                if self.cur is not None:
                    self.ready.appendleft(self.cur)
                self.cur, self.cur_irq = self.irqs.popleft()(), True
            if self.cur is None:
                if self.ready:
                    self.cur, self.cur_irq = self.ready.popleft(), False
                    if self.last_thread is not None and self.cur is not self.last_thread:
                        for cause, price, n in self.switch_work:
                            self.work(cause, price, n)
                    self.last_thread = self.cur
                    self._idle_charged = False
                else:
                    if not self._idle_charged:
                        self._idle_charged = True
                        for cause, price, n in self.idle_work:
                            self.work(cause, price, n)
                        for name, n in self.idle_counts:
                            self.count(name, n)
                    _, ns = self.flush()
                    if ns > 0:
                        self.busy_ns += ns
                        return Run(ns)
                    self._wake_ev = ev = self.engine.event()
                    return Wait(ev)
            try:
                kind, val = next(self.cur)
            except StopIteration:
                self.cur = None
                _, ns = self.flush()
                if ns > 0:
                    self.busy_ns += ns
                    return Run(ns)
                continue
            if kind == "run":
                if val > 0:
                    self.busy_ns += val
                    return Run(int(val))
                continue
            if kind == "bwait":
                if val.callbacks is None:  # already processed
                    continue
                return Wait(val)
            if kind == "wait":
                if val.callbacks is None:  # already processed (a Timeout is "triggered" at birth)
                    continue
                if self.cur_irq:
                    raise RuntimeError(f"{self.name}: an interrupt handler may not sleep")
                val.callbacks.append(self._make_ready(self.cur))
                self.cur = None
                continue
            raise ValueError(f"{self.name}: unknown command {kind!r}")
