"""The compiled dispatcher's Python side: :class:`CompiledRunner`, a :class:`HostRunner` whose core is
the Numba kernel of :mod:`pvsim.sched.hk.core`.

Design note
-----------
Same interface as :class:`pvsim.sched.runner.HostRunner` (and built on its validation: ``add_vcpu``,
``adjust``, ``pin``, the hypervisor's scheduling port), so the builder, the hypercall handlers and
the xl views use either. At :meth:`start` the host's state moves into an arena; from then on the
kernel owns it and the vCPU objects are brought up to date by :meth:`sync` (before a snapshot, the
stats, an xl view).

The runner is a *stepper* of the engine (:meth:`pvsim.core.engine.Engine.run`): :meth:`peek` gives
the key of the kernel's earliest event, :meth:`advance` runs the kernel up to the next event of
anyone else. When the kernel needs Python -- a full guest OS to ask for its next demand
(``ST_NEED_DEMAND``), an interrupted one to give back the rest of its Run (``ST_NEED_PREEMPT``), a
buffer to drain or refill (``ST_DRAIN``) -- it returns; this side does it exactly as
``HostRunner._next_demand`` / ``_take_back`` would (the same SimPy events, drawing the same event
ids), moves the limit down to any event that appeared meanwhile, and resumes the kernel. Before
every kernel call the shared event-id counter and the clock go into the arena, and come back after
it, so SimPy events and kernel events stay in one order. Trace records the kernel wrote are handed
to the engine's subscribers at every return, in order.

A vCPU added at run time regrows the arena (its new columns are zero); a scheduler module whose
per-vCPU or per-domain fields come from Python parameters defines ``load_unit(runner, unit)``,
called then (``init`` is called once, at :meth:`start`).
"""

from __future__ import annotations

import numpy as np

from guest_kernels.program import ProgramVcpu
from hypercalls.trace import TRC_SCHED_ADJDOM, TRC_SCHED_BLOCK
from pvsim.core.engine import Block, Done, Run, TraceRecord, Wait
from pvsim.sched.hk import bvt, credit, credit2, null, rr, rtds
from pvsim.sched.hk import core as K
from pvsim.sched.hk import layout as L
from pvsim.sched.params import validate_sched_params
from pvsim.sched.runner import _ZERO_LIMIT, INTERRUPT_MIN_NS, HostRunner

KERNEL_SCHEDULERS = {m.__name__.rsplit(".", 1)[1]: m for m in (rr, credit, credit2, rtds, null, bvt)}
BIG = 1 << 62


def has_kernel(name: str) -> bool:
    """Whether scheduler ``name`` has a finished compiled kernel."""
    m = KERNEL_SCHEDULERS.get(name)
    return m is not None and m.READY


class CompiledRunner(HostRunner):
    """``HostRunner`` with the compiled core. ``switch_costs = (lazy_ns, full_ns)``: the cost of a
    switch back to the vCPU an idle pCPU kept loaded, and of any other (``sched.schedule_cycles``,
    plus ``sched.vcpu_switch_cycles``). ``footprint``: a :class:`~pvsim.sched.footprint.FootprintTracker`
    whose model, cache domains and per-domain working sets the kernel's footprint charge uses (its
    state then lives in the arena)."""

    def __init__(self, engine, scheduler, n_pcpus: int, switch_costs: tuple[int, int] = (0, 0),
                 footprint=None):
        super().__init__(engine, scheduler, n_pcpus)
        self.footprint = footprint
        if not has_kernel(scheduler.name):
            raise ValueError(f"no compiled kernel for scheduler {scheduler.name!r}")
        self.kmod = KERNEL_SCHEDULERS[scheduler.name]
        self.switch_costs = (int(switch_costs[0]), int(switch_costs[1]))
        self.arena: L.Arena | None = None
        self.M = None
        self._g = self._V = self._Q = None  # the arena's globals, vCPU and heap views (the hot paths')
        self._programs: list = []
        self._prog_units: list = []  # (unit, ProgramVcpu)
        self._dom_index: dict[int, int] = {}
        self._lat_sink: dict[int, list] = {}
        self._limit = (BIG, 0, 0)

    # ------------------------------------------------------------------ the arena
    def _build_arena(self) -> None:
        self._programs = []
        self._new_arena()
        self.kmod.init(self.arena, self.sched)
        V = self.arena.region(L.V)
        for u in self.units:
            self._load_unit(u, V)

    def _new_arena(self) -> None:
        """An arena for the units and domains the runner has now (copying the old one's regions when
        it grows: a vCPU or a domain added at run time)."""
        for u in self.units:
            b = u.behaviour
            if isinstance(b, ProgramVcpu) and b.prog not in self._programs:
                self._programs.append(b.prog)
        progs = self._programs
        nv = len(self.units)
        doms = list(self.domains.values())
        maxops = max([len(p.ops) for p in progs] or [1])
        old = self.arena
        sizes = self.kmod.SIZES
        if old is not None and old.dims[L.TM][1] > sizes.get("timers", 16):  # timers the scheduler grew
            sizes = dict(sizes, timers=old.dims[L.TM][1])
        # trace room: a csched_acct pass writes a record per vCPU in one event, beyond MARGIN_T
        a = L.Arena(max(nv, 1), self.n_pcpus, max(len(doms), 1), sizes, nprogs=len(progs),
                    maxops=maxops, q_cap=old.dims[L.Q][1] if old is not None else None,
                    trace_cap=max(1 << 16, nv + 2 * L.MARGIN_T))
        if old is not None:
            for r in range(L.N_REGIONS):
                if r == L.PC:  # rows: op executions [0, maxops), then amounts drawn [maxops, 2 maxops)
                    om, nm = old.dims[L.PC][0] // 2, a.dims[L.PC][0] // 2
                    c = min(old.dims[r][1], a.dims[r][1])
                    a.region(r)[:om, :c] = old.region(r)[:om, :c]
                    a.region(r)[nm:nm + om, :c] = old.region(r)[om:2 * om, :c]
                    continue
                ro, co = old.dims[r]
                rn, cn = a.dims[r]
                a.region(r)[:min(ro, rn), :min(co, cn)] = old.region(r)[:min(ro, rn), :min(co, cn)]
            a.g[L.G_MAXOPS] = maxops
        self._set_arena(a)
        g = a.g
        g[L.G_SCHED] = K.KINDS[self.sched.name]
        g[L.G_NV], g[L.G_ND] = nv, len(doms)
        g[L.G_SCHED_NS], g[L.G_SWITCH_NS] = self.switch_costs
        fpt = self.footprint
        if fpt is not None:
            m = fpt.model
            g[L.G_FP_ON] = 1
            for lv in range(3):
                g[L.G_FP_CAP0 + lv], g[L.G_FP_PS0 + lv] = m.caps[lv], m.refill_ps[lv]
            g[L.G_FP_TLB_ENTRIES], g[L.G_FP_TAGGED], g[L.G_FP_SWITCH_PAGES] = m.tlb_entries, int(m.tlb_tagged), \
                m.switch_pages
        if old is None:
            g[L.G_TRACE] = 1 if self.engine._subscribers else 0
        D = a.region(L.D)
        for i, d in enumerate(doms):
            self._dom_index[d.domid] = i
            D[L.D_DOMID, i], D[L.D_WEIGHT, i], D[L.D_CAP, i] = d.domid, d.weight, d.cap
            D[L.D_NUNITS, i] = len(d.units)
        PR = a.region(L.PR)
        for i, p in enumerate(progs):
            PR[i, L.PR_SHAPE], PR[i, L.PR_NOPS] = p.shape, len(p.ops)
            PR[i, L.PR_BURST_COST], PR[i, L.PR_BURST_PARTS], PR[i, L.PR_PPU] = p.burst_cost, p.burst_parts, \
                p.parts_per_unit
            PR[i, L.PR_IDLE_COST], PR[i, L.PR_IDLE_MODE], PR[i, L.PR_LAT] = p.idle_cost, p.idle_mode, \
                int(p.records_latency)
            for k, (op, x, y) in enumerate(p.ops):
                PR[i, L.PR_OPS + 3 * k: L.PR_OPS + 3 * k + 3] = (op, x, y)

    def _load_unit(self, u, V) -> None:
        v = u.uid
        V[L.F_RUNSTATE, v] = u.runstate
        V[L.F_STATE_ENTRY, v] = u.state_entry
        V[L.F_RS0:L.F_RS3 + 1, v] = u.runstate_time_ns
        V[L.F_REMAINING, v] = u.remaining
        V[L.F_CPU, v] = u.cpu
        V[L.F_RAN_ON, v] = u.ran_on
        V[L.F_WAKE_NS, v] = -1 if u.wake_ns is None else u.wake_ns
        V[L.F_RUNNABLE_SINCE, v], V[L.F_LAST_RUN_START, v], V[L.F_CREATED, v] = \
            u.runnable_since, u.last_run_start, u.created_ns
        V[L.F_DOM, v] = self._dom_index[u.domid]
        V[L.F_DOMID, v], V[L.F_VCPU_ID, v] = u.domid, u.vcpu_id
        V[L.F_PAUSE, v], V[L.F_BLOCKED, v], V[L.F_DONE, v] = u.pause_count, int(u.blocked), int(u.done)
        V[L.F_T0, v] = -1
        fp = self.footprint.footprint(u.domid) if self.footprint is not None else None
        if fp is not None:
            V[L.F_FP_LINES, v], V[L.F_FP_PAGES, v], V[L.F_FP_PAGE_PS, v] = fp.lines, fp.pages, fp.page_ps
        V[L.F_FP_SEQ, v] = V[L.F_FP_CD, v] = -1
        self._set_affinity(u)
        b = u.behaviour
        if isinstance(b, ProgramVcpu):
            V[L.F_EXTERNAL, v] = 0
            V[L.F_PROG, v] = self._programs.index(b.prog)
            self._prog_units.append((u, b))
            b.pending_hook = lambda frac, v=v: self._add_pending(v, frac)
            self._lat_sink[V[L.F_DOM, v]] = b.dom_os.latencies_us
            self._refill(v, b, full=True)
        else:
            V[L.F_EXTERNAL, v] = 1
            V[L.F_PROG, v] = -1
        # the scheduler's per-unit data from Python (rtds: the vCPU's period, budget, extratime), for
        # the units of the start and those added at run time alike
        hook = getattr(self.kmod, "load_unit", None)
        if hook is not None:
            hook(self, u)

    def _add_pending(self, v: int, frac: int) -> None:
        """Work charged to program vCPU ``v`` from outside (1/1024 ns): it runs with its next Run."""
        self.arena.region(L.V)[L.F_PENDING, v] += frac

    def _set_affinity(self, u) -> None:
        a = self.arena
        V = a.region(L.V)
        v = u.uid
        for row, mask, flag, none_val in ((a.region(L.HARD), u.hard, L.F_HARD_ALL, 1),
                                          (a.region(L.SOFT), u.soft, L.F_SOFT_NONE, 1)):
            row[v, :] = 0
            V[flag, v] = none_val if mask is None else 0
            for c in (mask or ()):
                row[v, c >> 6] |= np.int64(1) << np.int64(c & 63)

    def _refill(self, v: int, b, full: bool = False) -> None:
        V = self.arena.region(L.V)
        rb = self.arena.region(L.RB)[v].view(np.float64)
        n = rb.shape[0]
        pos = 0 if full else int(V[L.F_RBPOS, v])
        keep = n - pos if not full else 0
        if keep:
            rb[:keep] = rb[pos:].copy()
        rb[keep:] = b.rng.standard_exponential(n - keep)
        V[L.F_RBPOS, v] = 0

    # ------------------------------------------------------------------ kernel calls
    def _enter(self) -> None:
        g = self._g
        g[L.G_SEQ] = self.engine.eids.n
        g[L.G_NOW] = int(self.env._now)

    def _leave(self) -> None:
        g = self._g
        self.engine.eids.n = int(g[L.G_SEQ])
        ev = int(g[L.G_EVENTS])
        if ev:
            self.engine.events_scheduled += ev
            g[L.G_EVENTS] = 0
        if g[L.G_TN]:  # trace records go out at once, in order with Python's own
            self._drain_trace()

    def _call(self, fn, *args):
        self._enter()
        r = fn(self.M, *args)
        self._leave()
        return r

    def _drain(self) -> None:
        """Hand out what the kernel's buffers hold: trace records, unit latencies, wake latencies."""
        self._drain_trace()
        self._drain_latencies()

    def _drain_trace(self) -> None:
        a = self.arena
        g = a.g
        n = int(g[L.G_TN])
        if n:
            T = a.region(L.T)
            subs = self.engine._subscribers
            for k in range(n):
                nw = int(T[L.T_N, k])
                rec = TraceRecord(int(T[L.T_TIME, k]), self.trace_base + int(T[L.T_CPU, k]), int(T[L.T_EV, k]),
                                  tuple(int(w) for w in T[L.T_N + 1:L.T_N + 1 + nw, k]))
                for fn in subs:
                    fn(rec)
            g[L.G_TN] = 0

    def _drain_latencies(self) -> None:
        a = self.arena
        g = a.g
        n = int(g[L.G_LN])
        if n:
            LB = a.region(L.LB)
            doms, ns = LB[L.LB_DOM, :n], LB[L.LB_NS, :n]
            if len(self._lat_sink) == 1:
                next(iter(self._lat_sink.values())).extend((ns / 1000.0).tolist())
            else:
                for d in np.unique(doms).tolist():
                    self._lat_sink[d].extend((ns[doms == d] / 1000.0).tolist())
            g[L.G_LN] = 0
        n = int(g[L.G_WN])
        if n:
            WB = a.region(L.WB)
            vs, ns = WB[L.WB_V, :n], WB[L.WB_NS, :n]
            order = np.argsort(vs, kind="stable")  # per unit, in time order
            vs, ns = vs[order], ns[order]
            cuts = np.flatnonzero(np.diff(vs)) + 1
            units = self.units
            for v, part in zip(vs[np.r_[0, cuts]].tolist(), np.split(ns, cuts)):
                units[v].wake_lat.extend(part.tolist())
            g[L.G_WN] = 0

    def _run_kernel(self, st: int) -> None:
        """Serve the kernel until it is done with the current limit."""
        g = self._g
        while True:
            if st == L.ST_DONE:
                return
            if st == L.ST_NEED_DEMAND:
                v = int(g[L.G_CONT_V])
                self.env._now = int(g[L.G_NOW])
                r = self._py_demand(self.units[v], int(g[L.G_NOW]))
            elif st == L.ST_NEED_PREEMPT:
                v = int(g[L.G_CONT_V])
                self.env._now = int(g[L.G_NOW])
                u = self.units[v]
                pre = getattr(u.behaviour, "preempt", None)
                r = 1 if (pre is not None and pre(int(self._V[L.F_REMAINING, v]))) else 0
            elif st == L.ST_DRAIN:
                self._service()
                r = -1
            elif st == L.ST_ERROR:
                raise RuntimeError(self._error_text())
            else:  # pragma: no cover
                raise RuntimeError(f"compiled dispatcher: unknown status {st}")
            self._lower_limit()
            g = self._g  # _service may have grown the arena
            self._enter()
            st = K.k_resume(self.M, r)
            self._leave()

    def _error_text(self) -> str:
        g = self.arena.g
        code, v = int(g[L.G_NEED_V]), int(g[L.G_CONT_V])
        unit = self.units[v] if 0 <= v < len(self.units) else v
        return {K.E_KEPT_NOT_RUNNABLE: f"{self.sched.name}: do_schedule kept non-runnable {unit!r}",
                K.E_PICKED_BAD: f"{self.sched.name}: picked {unit!r} but it is running elsewhere or not runnable",
                K.E_LIVELOCK_SCHED: f"cpu {v}: scheduling livelock",
                K.E_LIVELOCK_DEMAND: f"{unit!r}: a program that never runs nor sleeps"}.get(
            code, f"compiled dispatcher error {code}")

    def _service(self) -> None:
        a = self.arena
        g = a.g
        if g[L.G_REFILL]:
            g[L.G_REFILL] = 0
            V = a.region(L.V)
            lim = int(g[L.G_RBN]) - L.MARGIN_RB - 1
            for u, b in self._prog_units:
                if V[L.F_RBPOS, u.uid] >= lim // 2:
                    self._refill(u.uid, b)
        if g[L.G_QN] > a.dims[L.Q][1] - L.MARGIN_Q:
            self._grow(L.Q, 2 * a.dims[L.Q][1])
        self._drain()

    def _grow(self, region: int, cols: int) -> None:
        old = self.arena
        new = L.Arena.__new__(L.Arena)
        new.dims = dict(old.dims)
        new.dims[region] = (old.dims[region][0], cols)
        off = L.HEADER
        new.offsets = {}
        for r in range(L.N_REGIONS):
            rows, c = new.dims[r]
            new.offsets[r] = off
            off += rows * c
        new.M = np.zeros(off, np.int64)
        new.M[:4] = old.M[:4]
        for r in range(L.N_REGIONS):
            rows, c = new.dims[r]
            new.M[4 + 3 * r: 7 + 3 * r] = (new.offsets[r], rows, c)
            oc = old.dims[r][1]
            new.region(r)[:, :min(c, oc)] = old.region(r)[:, :min(c, oc)]
        self._set_arena(new)

    def _set_arena(self, a) -> None:
        self.arena, self.M = a, a.M
        self._g, self._V, self._Q = a.g, a.region(L.V), a.region(L.Q)

    def _lower_limit(self) -> None:
        """A SimPy event (or another host's) that appeared while Python worked may come first now."""
        g = self._g
        lim = (int(g[L.G_LIM_T]), int(g[L.G_LIM_P]), int(g[L.G_LIM_E]))
        q = self.env._queue
        if q:
            h = q[0]
            k = (int(h[0]), int(h[1]), int(h[2]))
            if k < lim:
                lim = k
        for st in self.engine.steppers:
            if st is not self:
                k = st.peek()
                if k is not None and k < lim:
                    lim = k
        g[L.G_LIM_T], g[L.G_LIM_P], g[L.G_LIM_E] = lim

    # ------------------------------------------------------------------ the engine's stepper
    def peek(self):
        a = self.arena
        if a is None or not self.started:
            return None
        if self._g[L.G_QN] == 0:
            return None
        Q = self._Q
        return (int(Q[L.Q_T, 0]), 1, int(Q[L.Q_SEQ, 0]))

    def advance(self, limit) -> None:
        t, p, e = limit
        self._enter()
        st = K.k_advance(self.M, int(min(t, BIG)), int(p), int(e))
        self._leave()
        self._run_kernel(st)

    # ------------------------------------------------------------------ demands of external vCPUs
    def _py_demand(self, unit, now: int) -> int:
        """``HostRunner._next_demand`` for a full guest OS, writing the arena."""
        V = self._V
        v = unit.uid
        for _ in range(_ZERO_LIMIT):
            if V[L.F_BLOCK_AFTER, v]:
                V[L.F_BLOCK_AFTER, v] = 0
                V[L.F_BLOCKED, v] = 1
                V[L.F_BLOCK_GEN, v] += 1
                self._trace(int(V[L.F_CPU, v]), TRC_SCHED_BLOCK, unit.dom.domid, unit.vcpu_id)
                return K.NOT_RUNNABLE
            d = unit.behaviour.next(now)
            self.n_demands += 1
            t = type(d)
            if t is Run and not unit.block_requested and d.ns > 0:
                V[L.F_REMAINING, v] = d.ns
                return K.WANTS
            if unit.block_requested:
                unit.block_requested = False
                if t is Run and d.ns > 0:
                    V[L.F_BLOCK_AFTER, v] = 1
            if t is Run:
                if d.ns > 0:
                    V[L.F_REMAINING, v] = int(d.ns)
                    return K.WANTS
                if d.ns < 0:
                    raise ValueError(f"{unit!r}: Run({d.ns}) is negative")
                continue
            if t is Block:
                if d.ns < 0:
                    raise ValueError(f"{unit!r}: Block({d.ns}) is negative")
                if d.ns == 0:
                    continue
                g = self._block(V, v)
                ev = self.engine.timeout_ns(int(d.ns))
                ev.callbacks.append(lambda _e, v=v, g=g: self._call(K.k_wake_from_block, v, g))
                self._trace(int(V[L.F_CPU, v]), TRC_SCHED_BLOCK, unit.dom.domid, unit.vcpu_id)
                return K.NOT_RUNNABLE
            if t is Wait:
                ev = d.event
                if ev.callbacks is None:
                    continue
                g = self._block(V, v)
                ev.callbacks.append(lambda _e, v=v, g=g: self._call(K.k_wake_from_block, v, g))
                self._trace(int(V[L.F_CPU, v]), TRC_SCHED_BLOCK, unit.dom.domid, unit.vcpu_id)
                return K.NOT_RUNNABLE
            if t is Done:
                V[L.F_DONE, v] = 1
                return K.NOT_RUNNABLE
            raise TypeError(f"{unit!r}: behaviour returned {d!r}, not Run/Block/Wait/Done")
        raise RuntimeError(f"{unit!r}: {_ZERO_LIMIT} zero-time demands in a row (livelock)")

    @staticmethod
    def _block(V, v) -> int:
        V[L.F_BLOCKED, v] = 1
        V[L.F_BLOCK_GEN, v] += 1
        return int(V[L.F_BLOCK_GEN, v])

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        if self.started:
            raise RuntimeError("HostRunner.start() called twice")
        self._build_arena()
        self.started = True
        now = self.now
        self.t0 = now
        P = self.arena.region(L.P)
        P[L.P_CURR, :] = -1
        P[L.P_SLICE_END, :] = -1
        P[L.P_LAST_ON, :] = -1
        P[L.P_IDLE_SINCE, :] = now
        P[L.P_FP_UNDO_CD, :] = -2
        if self.footprint is not None:
            P[L.P_FP_CD, :] = self.footprint.cd
        self._call(K.k_start, )
        self._call(K.k_start_sched, now)
        for u in list(self.units):
            self._bring_online(u, now)
        for c in range(self.n_pcpus):
            self._call(K.k_raise_softirq, c)
        self.engine.add_stepper(self)

    def _bring_online(self, unit, now: int) -> None:
        if self.arena is None:
            return
        if unit.uid >= self.arena.dims[L.V][1] or unit.domid not in self._dom_index:  # added at run time
            self._new_arena()
            self._load_unit(unit, self.arena.region(L.V))  # with the scheduler's own load_unit hook
        V = self.arena.region(L.V)
        if V[L.F_EXTERNAL, unit.uid]:
            self.env._now = now
            wants = self._py_demand(unit, now)
        else:
            wants = -1
        st = self._call(K.k_bring_online, unit.uid, wants)
        if st == L.ST_ERROR:
            raise RuntimeError(self._error_text())

    def destroy_vcpu(self, unit) -> None:
        if self.arena is None:
            return super().destroy_vcpu(unit)
        self._call(K.k_destroy, unit.uid)

    # ------------------------------------------------------------------ services (Python callers)
    def curr(self, cpu: int):
        if self.arena is None:
            return None
        v = int(self.arena.region(L.P)[L.P_CURR, cpu])
        return None if v < 0 else self.units[v]

    def raise_softirq(self, cpu: int) -> None:
        if self.arena is not None:
            self._call(K.k_raise_softirq, cpu)

    def pause(self, unit) -> None:
        if self.arena is None:
            return super().pause(unit)
        self._call(K.k_pause, unit.uid)

    def unpause(self, unit) -> None:
        if self.arena is None:
            return super().unpause(unit)
        self._call(K.k_unpause, unit.uid)

    def request_migrate(self, unit) -> None:
        if self.arena is None:
            return super().request_migrate(unit)
        self._call(K.k_request_migrate, unit.uid)

    def yield_(self, vcpu) -> None:
        if self.arena is None:
            return super().yield_(vcpu)
        self._call(K.k_yield, vcpu.uid)

    def wake_vcpu(self, vcpu) -> None:
        if self.arena is None:
            return super().wake_vcpu(vcpu)
        V = self.arena.region(L.V)
        v = vcpu.uid
        if V[L.F_BLOCKED, v]:
            self._call(K.k_wake_from_block, v, int(V[L.F_BLOCK_GEN, v]))

    def poll(self, vcpu, ports, deadline_ns) -> None:
        if self.arena is None:
            return super().poll(vcpu, ports, deadline_ns)
        vcpu.block_requested = True
        if deadline_ns:
            gen = int(self.arena.region(L.V)[L.F_BLOCK_GEN, vcpu.uid]) + 1
            self.timer(max(0, int(deadline_ns) - self.now),
                       lambda _now, v=vcpu.uid, g=gen: self._call(K.k_wake_from_block, v, g))

    def interrupt(self, vcpu) -> None:
        if self.arena is None:
            return
        V = self.arena.region(L.V)
        v = vcpu.uid
        if V[L.F_IRQ_PENDING, v] or V[L.F_BLOCK_AFTER, v] or V[L.F_BLOCKED, v] or V[L.F_DONE, v]:
            return
        polling = getattr(vcpu.behaviour, "polling", False)  # a halt poll ends at any wake-up
        if V[L.F_IS_RUNNING, v]:
            if self.remaining_now(vcpu) <= INTERRUPT_MIN_NS and not polling:
                return
            self._call(K.k_push_interrupt, v)
        elif (V[L.F_REMAINING, v] > INTERRUPT_MIN_NS or polling) and not V[L.F_PAUSE, v] and not V[L.F_DONE, v]:
            pre = getattr(vcpu.behaviour, "preempt", None)
            if pre is not None and pre(int(V[L.F_REMAINING, v])):
                V[L.F_REMAINING, v] = 0

    def adjust(self, domid: int, vcpu: int | None = None, **params) -> None:
        """``xl sched-<name> -d DOM ...`` now: validated as by the Python dispatcher, applied by the
        scheduler module's ``adjust`` (per domain) or ``adjust_units`` (per vCPU, rtds)."""
        if self.arena is None:
            return super().adjust(domid, vcpu, **params)
        dom = self._dom(domid)
        scope = "vcpu" if self.sched.name == "rtds" else "domain"
        p = validate_sched_params(self.sched.name, params, f"sched-{self.sched.name}.d{domid}", scope=scope,
                                  n_pcpus=self.n_pcpus, defaults=False)
        if scope == "vcpu":
            units = dom.units if vcpu is None else [self._unit(domid, vcpu)]
            self.kmod.adjust_units(self, units, p)
        else:
            self.kmod.adjust(self, dom, p)
        D = self.arena.region(L.D)
        i = self._dom_index[domid]
        D[L.D_WEIGHT, i], D[L.D_CAP, i] = dom.weight, dom.cap
        self._trace(0, TRC_SCHED_ADJDOM, domid)

    def adjust_global(self, **params) -> None:
        """``xl sched-<name> -s ...``: pool-wide parameters, applied by the scheduler module."""
        if self.arena is None:
            return super().adjust_global(**params)
        self.kmod.adjust_global(self, params)

    def pin(self, domid, vcpu, hard=None, soft=None) -> None:
        if self.arena is None:
            return super().pin(domid, vcpu, hard, soft)
        units = self._dom(domid).units if vcpu is None else [self._unit(domid, vcpu)]
        for u in units:
            u.hard = self._cpuset(hard, f"vcpu-pin.d{domid}.hard")
            u.soft = self._cpuset(soft, f"vcpu-pin.d{domid}.soft")
            self._set_affinity(u)
            self._call(K.k_affinity_changed, u.uid)
            V = self.arena.region(L.V)
            c = int(V[L.F_CPU, u.uid])
            if not (u.hard is None or c in u.hard):
                self.request_migrate(u)

    # ------------------------------------------------------------------ results
    def sync(self) -> None:
        """Bring the vCPU objects, the programs' counters and latencies up to date from the arena."""
        if self.arena is None:
            return
        self._drain()
        a = self.arena
        V = a.region(L.V)
        PC = a.region(L.PC)
        maxops = int(a.g[L.G_MAXOPS])
        for u in self.units:
            v = u.uid
            u.runstate = int(V[L.F_RUNSTATE, v])
            u.state_entry = int(V[L.F_STATE_ENTRY, v])
            u.runstate_time_ns = [int(x) for x in V[L.F_RS0:L.F_RS3 + 1, v]]
            u.remaining = int(V[L.F_REMAINING, v])
            u.is_running = bool(V[L.F_IS_RUNNING, v])
            u.blocked = bool(V[L.F_BLOCKED, v])
            u.pause_count = int(V[L.F_PAUSE, v])
            u.done = bool(V[L.F_DONE, v])
            u.cpu = int(V[L.F_CPU, v])
            u.ran_on = int(V[L.F_RAN_ON, v])
            u.ctx_in = int(V[L.F_CTX_IN, v])
            u.migrations = int(V[L.F_MIGRATIONS, v])
            u.ever_ran = bool(V[L.F_EVER_RAN, v])
            u.last_run_start = int(V[L.F_LAST_RUN_START, v])
            w = int(V[L.F_WAKE_NS, v])
            u.wake_ns = None if w < 0 else w
        for u, b in self._prog_units:
            v = u.uid
            n = len(b.prog.ops)
            b.exec = [int(x) for x in PC[:n, v]]
            b.drawn = [int(x) for x in PC[maxops:maxops + n, v]]
            b.n_idles = int(V[L.F_IDLES, v])
            b.parts = int(V[L.F_PARTS, v])
            b.burst_parts = int(V[L.F_BURST_PARTS, v])
            b.burst_ns = int(V[L.F_BURST_NS, v])
            b.busy_ns = int(V[L.F_BUSY, v])
        P = a.region(L.P)
        for c, pc in enumerate(self._pcpus):
            v = int(P[L.P_CURR, c])
            pc.curr = None if v < 0 else self.units[v]
            pc.idle_ns = int(P[L.P_IDLE_NS, c])
            pc.idle_since = int(P[L.P_IDLE_SINCE, c])
            pc.switches = int(P[L.P_SWITCHES, c])
            pc.work_start = int(P[L.P_WORK_START, c])
        self.n_schedule = int(a.g[L.G_NSCHED])

    @property
    def decisions(self) -> int:
        g = self.arena.g if self.arena is not None else None
        return self.n_demands + (int(g[L.G_NDEMAND]) + int(g[L.G_NSCHED]) if g is not None else 0)

    def switch_ns_of(self, domid: int) -> int:
        if self.arena is None:
            return 0
        return int(self.arena.region(L.D)[L.D_SWITCH_NS, self._dom_index[domid]])

    def footprint_ns_of(self, domid: int) -> tuple[int, int]:
        """(cache refill ns, TLB refill ns) charged to domain ``domid``'s switch-ins so far."""
        if self.arena is None:
            return 0, 0
        D = self.arena.region(L.D)
        i = self._dom_index[domid]
        return int(D[L.D_FP_CACHE_NS, i]), int(D[L.D_FP_TLB_NS, i])

    def runstate_ns(self, unit, now: int | None = None) -> list[int]:
        now = self.now if now is None else now
        if self.arena is None:
            return super().runstate_ns(unit, now)
        V = self.arena.region(L.V)
        v = unit.uid
        rs = [int(x) for x in V[L.F_RS0:L.F_RS3 + 1, v]]
        rs[int(V[L.F_RUNSTATE, v])] += now - int(V[L.F_STATE_ENTRY, v])
        return rs

    def remaining_now(self, unit) -> int:
        if self.arena is None:
            return unit.remaining
        V = self.arena.region(L.V)
        v = unit.uid
        rem = int(V[L.F_REMAINING, v])
        if V[L.F_IS_RUNNING, v]:
            ws = int(self.arena.region(L.P)[L.P_WORK_START, int(V[L.F_CPU, v])])
            return max(0, rem - max(0, self.now - ws))
        return rem

    def runstate(self, vcpu) -> int:
        if self.arena is None:
            return vcpu.runstate
        return int(self.arena.region(L.V)[L.F_RUNSTATE, vcpu.uid])

    def stats(self):
        """:meth:`HostRunner.stats` over the arena, brought up to date first."""
        self.sync()
        return super().stats()


__all__ = ["CompiledRunner", "has_kernel"]
