"""``bvt``: Borrowed Virtual Time, Xen's scheduler in the SOSP'03 paper (``xen/common/sched_bvt.c``
@ ``db51cd09d3^``, after Duda & Cheriton, SOSP'99).

Design note
-----------
Each unit has an actual virtual time ``avt`` and an effective virtual time ``evt`` = ``avt -
warp`` while warped, else ``avt``. Running for ``ran`` ns advances ``avt`` by ``ceil(ran / MCU) x
mcu_advance`` (``MCU`` = 100 us; ``mcu_advance`` is the inverse weight, default ``MCU_ADVANCE`` =
10; a domain given only ``weight`` gets ``round(10 x 256 / weight)``). Each pCPU has a runqueue
and a system virtual time ``svt`` = the minimum ``avt`` of its runnable units. ``do_schedule``
(``bvt_do_schedule``) runs the lowest ``evt`` for ``(evt2 - evt1) x MCU / mcu_advance +
ctx_allow`` (the context-switch allowance, default 5 ms), or ``10 x ctx_allow`` when alone. On
wake (``bvt_unit_wake``) ``avt = max(avt, svt)`` (no hoarding while asleep) and the woken unit
preempts the current one if its ``evt`` is not greater. A domain with ``warp_us > 0`` warps on wake
(low-latency dispatch) for at most ``warpl_ms`` of running, and may warp again only ``warpu_ms``
after unwarping. The warp value is given in us of virtual time at the default advance
(``warp = warp_us x MCU_ADVANCE / 100``).

Simplifications: no virtual-time wraparound (Python ints); a unit stays on its pCPU (placement
at insert to the least loaded allowed pCPU, moves only by ``vcpu-pin``); warp ends when the unit
blocks; ``warpback`` is accepted but warping is re-enabled only by a wake.
"""

from __future__ import annotations

from pvsim.sched.ops import Scheduler, register_scheduler

US = 1_000
MS = 1_000_000
MCU = 100 * US
MCU_ADVANCE = 10


class _Bu:
    __slots__ = ("avt", "warping", "warp_start", "unwarp_until", "warped_ns", "queued")

    def __init__(self):
        self.avt = 0
        self.warping = False
        self.warp_start = 0
        self.unwarp_until = 0
        self.warped_ns = 0
        self.queued = False


@register_scheduler("bvt")
class Bvt(Scheduler):
    def attach(self, runner):
        super().attach(runner)
        self.runq: list[list] = [[] for _ in range(self.n_pcpus)]
        self.ctx_allow = self.params["ctx_allow_us"] * US

    def _adv(self, unit):
        p = unit.dom.params
        if "mcu_advance" in p:
            return p["mcu_advance"]
        return max(1, round(MCU_ADVANCE * 256 / unit.dom.weight))

    def _warp(self, unit):
        return unit.dom.params.get("warp_us", 0) * MCU_ADVANCE // 100

    def _evt(self, unit):
        b = unit.priv
        return b.avt - (self._warp(unit) if b.warping else 0)

    def _svt(self, cpu):
        avts = [u.priv.avt for u in self.runq[cpu]]
        cur = self.runner.curr(cpu)
        if cur is not None:
            avts.append(cur.priv.avt)
        return min(avts) if avts else None

    def insert_unit(self, unit):
        unit.priv = _Bu()
        unit.cpu = self.pick_cpu(unit)
        svt = self._svt(unit.cpu)
        unit.priv.avt = svt or 0

    def pick_cpu(self, unit):
        cpus = range(self.n_pcpus) if unit.hard is None else sorted(unit.hard)
        r = self.runner
        return min(cpus, key=lambda c: (len(self.runq[c]) + (r.curr(c) is not None), c != unit.cpu, c))

    def remove_unit(self, unit):
        self.sleep(unit)

    def sleep(self, unit):
        b = unit.priv
        if self.runner.curr(unit.cpu) is unit:
            self.runner.raise_softirq(unit.cpu)
        elif b.queued:
            self.runq[unit.cpu].remove(unit)
            b.queued = False

    def _account(self, unit, now):
        """Advance ``avt`` for the time run since dispatch (``ceil(ran / MCU) x mcu_advance``)."""
        b = unit.priv
        ran = now - unit.last_run_start
        if ran > 0:
            b.avt += -(-ran // MCU) * self._adv(unit)
            if b.warping:
                b.warped_ns += ran
                if b.warped_ns >= unit.dom.params.get("warpl_ms", 2000) * MS:
                    b.warping = False
                    b.unwarp_until = now + unit.dom.params.get("warpu_ms", 1000) * MS
        unit.last_run_start = now

    def wake(self, unit):
        b = unit.priv
        r = self.runner
        if r.curr(unit.cpu) is unit or b.queued:
            return
        now = r.now
        cpu = unit.cpu
        svt = self._svt(cpu)
        if svt is not None and b.avt < svt:
            b.avt = svt
        if self._warp(unit) > 0 and now >= b.unwarp_until and not unit.migrating:
            b.warping = True
            b.warped_ns = 0
        self.runq[cpu].append(unit)
        b.queued = True
        cur = r.curr(cpu)
        if cur is None:
            r.raise_softirq(cpu)
        else:
            ran = now - cur.last_run_start
            cur_evt = self._evt(cur) + (-(-ran // MCU) * self._adv(cur) if ran > 0 else 0)
            if self._evt(unit) <= cur_evt:
                r.raise_softirq(cpu)

    def do_schedule(self, cpu, now, prev):
        rq = self.runq[cpu]
        if prev is not None:
            self._account(prev, now)
            if not prev.runnable:
                prev.priv.warping = False
            elif not prev.priv.queued:
                rq.append(prev)
                prev.priv.queued = True
        if not rq:
            return None, None
        rq.sort(key=lambda u: (self._evt(u), u.uid))
        snext = rq.pop(0)
        snext.priv.queued = False
        snext.cpu = cpu
        snext.last_run_start = now
        if rq:
            r = (self._evt(rq[0]) - self._evt(snext)) * MCU // self._adv(snext) + self.ctx_allow
        else:
            r = 10 * self.ctx_allow
        return snext, max(MCU, r)

    def adjust(self, dom, params):
        super().adjust(dom, params)
        dom.params.update({k: v for k, v in params.items() if k not in ("weight", "cap")})

    def adjust_global(self, params):
        super().adjust_global(params)
        self.ctx_allow = self.params["ctx_allow_us"] * US

    def unit_info(self, unit):
        b = unit.priv
        return {"avt": b.avt, "evt": self._evt(unit), "warping": b.warping, "mcu_advance": self._adv(unit)}

    def dom_info(self, dom):
        p = dom.params
        return {"weight": dom.weight, "mcu_advance": p.get("mcu_advance", round(MCU_ADVANCE * 256 / dom.weight)),
                "warp_us": p.get("warp_us", 0), "warpl_ms": p.get("warpl_ms", 2000), "warpu_ms": p.get("warpu_ms", 1000)}
