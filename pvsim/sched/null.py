"""``null``: Xen's static 1:1 scheduler (``xen/common/sched/null.c``).

Design note
-----------
Each unit is assigned to one pCPU (``unit_assign`` / ``pick_res``: its current pCPU if free,
else any free pCPU in its hard affinity, soft first) and either runs there or the pCPU idles.
Units beyond the free pCPUs wait in the ``waitq`` and get a pCPU only when a unit is removed
(``unit_deassign`` then ``_null_unit_remove`` pulls the first waiter that fits). ``do_schedule``
(``null_schedule``) never sets a slice timer. No per-schedule overhead, meant for vCPUs <= pCPUs.

Simplifications: a unit that goes offline for good (``Done``) is treated as removed, so its
pCPU goes to the first waiter.
"""

from __future__ import annotations

from pvsim.sched.ops import XEN_SCHEDULER_NULL, Scheduler, register_scheduler


@register_scheduler("null")
class Null(Scheduler):
    sched_id = XEN_SCHEDULER_NULL

    def attach(self, runner):
        super().attach(runner)
        self.assigned: list = [None] * self.n_pcpus
        self.waitq: list = []

    def _free_cpu(self, unit):
        for aff in (unit.soft if unit.soft is not None and unit.hard is None else None, unit.hard):
            cpus = range(self.n_pcpus) if aff is None else sorted(aff)
            if unit.allowed(unit.cpu) and self.assigned[unit.cpu] is None and (aff is None or unit.cpu in aff):
                return unit.cpu
            for c in cpus:
                if self.assigned[c] is None and unit.allowed(c):
                    return c
        return None

    def insert_unit(self, unit):
        c = self._free_cpu(unit)
        if c is None:
            unit.priv = None
            self.waitq.append(unit)
        else:
            self.assigned[c] = unit
            unit.priv = c
            unit.cpu = c

    def remove_unit(self, unit):
        if unit in self.waitq:
            self.waitq.remove(unit)
            return
        c = unit.priv
        if c is None or self.assigned[c] is not unit:
            return
        self.assigned[c] = None
        unit.priv = None
        for w in list(self.waitq):
            if w.allowed(c):
                self.waitq.remove(w)
                self.assigned[c] = w
                w.priv = c
                w.cpu = c
                if w.runnable:
                    self.runner.raise_softirq(c)
                break
        self.runner.raise_softirq(c)

    def pick_cpu(self, unit):
        return unit.priv if unit.priv is not None else unit.cpu

    def sleep(self, unit):
        if unit.is_running:
            self.runner.raise_softirq(unit.cpu)

    def wake(self, unit):
        c = unit.priv
        if c is not None and self.runner.curr(c) is None:
            self.runner.raise_softirq(c)

    def affinity_changed(self, unit):
        c = unit.priv
        if c is not None and not unit.allowed(c):
            self.remove_unit(unit)
            self.insert_unit(unit)
            if unit.priv is not None and unit.runnable:
                self.runner.raise_softirq(unit.priv)

    def do_schedule(self, cpu, now, prev):
        u = self.assigned[cpu]
        if u is not None and u.runnable:
            u.cpu = cpu
            return u, None
        return None, None
