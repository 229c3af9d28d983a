"""``rr``: a simple round-robin scheduler (one global FIFO runqueue, fixed time slice).

Design note
-----------
Not a Xen scheduler of today: it stands for the round-robin ``sched_rrobin.c`` of Xen 1.x/2.0
(removed since) and serves as the simplest correct client of the ops interface. One FIFO queue
shared by all pCPUs; ``do_schedule`` requeues a still-runnable ``prev`` at the tail and runs the
first queued unit whose hard affinity allows this pCPU, for ``tslice_ms`` (default 10 ms). A
waking unit is appended and tickles an idle pCPU it may run on (its last pCPU first).

Simplifications: no weights (weight and cap are accepted and ignored), no soft affinity.
"""

from __future__ import annotations

from collections import deque

from pvsim.sched.ops import Scheduler, register_scheduler


@register_scheduler("rr")
class RoundRobin(Scheduler):
    def attach(self, runner) -> None:
        super().attach(runner)
        self.runq: deque = deque()
        self.queued: set[int] = set()
        self.slice_ns = self.params["tslice_ms"] * 1_000_000

    def adjust_global(self, params):
        super().adjust_global(params)
        self.slice_ns = self.params["tslice_ms"] * 1_000_000

    def insert_unit(self, unit) -> None:
        unit.cpu = self.pick_cpu(unit)

    def remove_unit(self, unit) -> None:
        self.sleep(unit)

    def _enqueue(self, unit):
        if unit.uid not in self.queued:
            self.queued.add(unit.uid)
            self.runq.append(unit)

    def wake(self, unit) -> None:
        if unit.is_running or unit.uid in self.queued:
            return
        self._enqueue(unit)
        r = self.runner
        cands = [unit.cpu] + [c for c in self._cpus_of(unit, self.n_pcpus) if c != unit.cpu]
        for c in cands:
            if unit.allowed(c) and r.curr(c) is None:
                r.raise_softirq(c)
                return

    def sleep(self, unit) -> None:
        if unit.is_running:
            self.runner.raise_softirq(unit.cpu)
        elif unit.uid in self.queued:
            self.queued.discard(unit.uid)
            self.runq.remove(unit)

    def yield_(self, unit) -> None:
        if unit.is_running:
            self.runner.raise_softirq(unit.cpu)

    def do_schedule(self, cpu, now, prev):
        if prev is not None and prev.runnable:
            self._enqueue(prev)
        for i, u in enumerate(self.runq):
            if u.hard is None or cpu in u.hard:
                del self.runq[i]
                self.queued.discard(u.uid)
                return u, self.slice_ns
        return None, None
