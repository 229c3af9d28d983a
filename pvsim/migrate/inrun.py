"""Live migration inside a scenario run: the guest runs on the source host while pre-copy goes on,
stops at suspend, and continues on the target host's dispatcher after the restore.

Design note
-----------
Models what ``xl migrate`` does to a running domain (``tools/xl/xl_migrate.c``: ``migrate_domain``
on the sender, ``migrate_receive`` on the receiver; ``tools/libs/light/libxl_dom_suspend.c``,
``libxl_create.c``'s restore path): the receiver creates a new domain (a new domid) on the target,
the sender's save engine (:mod:`pvsim.migrate.save`) streams its memory over the link between the
hosts (the scenario's own :class:`~pvsim.io.devices.Link`, so the stream shares it with any other
traffic on it) while the guest keeps running on the source's dispatcher; at ``SHUTDOWN_suspend`` the
guest's vCPUs are paused; once the last records are in, the source's vCPUs are destroyed
(``sched_destroy_vcpu``), the target's are added to its dispatcher, the frontends are connected to
the target Domain-0's backends, and the workload continues there. The guest's throughput is measured
before the migration, during pre-copy and after the resume, each with the run's own metric. While
log-dirty mode is on, the guest pays its own log-dirty work (:mod:`pvsim.hypervisor.logdirty`: a
shadow write fault or an EPT violation per first write per round, or PML-full exits and flushes) on
its own vCPUs (:func:`_logdirty`), so its throughput during pre-copy drops as a real guest's does;
after a post-copy switch-over each remote fault's stall is taken from the target's vCPUs
(:func:`_stall`), so its throughput after the resume drops by the stalls. The
save helper's and the restore helper's CPU (``xl``'s ``libxl-save-helper`` on each side: mapping,
normalising, copying, the log-dirty ``CLEAN``) runs as a kernel thread of each host's Domain-0
(:class:`Dom0Thread`, spawned on first use the way the backends' threads are), so a capped Domain-0,
or one busy with other domains' backends or a workload of its own, slows the stream.

Simplifications: the target's domain is built with the system (its structures exist from time 0, its
vCPUs join the dispatcher only at resume); a unit of work in flight at suspend is lost (the workload
restarts its loop on the target, with what is left of its budget); guest writes follow the
workload's declared writable working set (:mod:`pvsim.migrate.dirty`), not the instructions it runs;
a domain whose memory steps run on the structural MMU is not migrated in-run; a post-copy stall keeps
the faulting vCPU busy on its pCPU (charged work) instead of blocking it and freeing the pCPU, and the
faulting vCPU is taken round-robin.

Tracing: Xen's trace has no migration records (the save loop is the toolstack's; its log-dirty
``XEN_DOMCTL_SHADOW_OP_CLEAN``/``PEEK`` calls are domctls, which Xen does not trace), so each round,
the suspend, the resume and an abort are written as pvsim's own guest-class records
(``PVSIM_TRC_MIG_*`` in ``hypercalls.trace``) on the source host's bus.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from hypercalls.trace import (
    PVSIM_TRC_MIG_ABORT,
    PVSIM_TRC_MIG_RESUME,
    PVSIM_TRC_MIG_ROUND,
    PVSIM_TRC_MIG_SUSPEND,
)
from pvsim.core.errors import ScenarioError
from pvsim.migrate import live
from pvsim.migrate.save import Migration


class Dom0Thread:
    """The save (or restore) helper's CPU on one host: a kernel thread of that host's Domain-0, on one
    of its vCPUs, spawned as the split-driver backends are (:meth:`guest_kernels.os.DomainOS.spawn`,
    tagged with the domain it serves), so its work competes with the backends and with any workload
    of Domain-0's own under Domain-0's OS and the host scheduler's weight and cap. The same CPU
    interface as the analytic :class:`pvsim.migrate.save._Server`: ``post(ready_ns, parts)`` queues
    work (``{cause: ns}``, from :func:`pvsim.migrate.save.batch_cost` / ``clean_cost``) that becomes
    runnable at ``ready_ns``, FIFO, and returns ``ready_ns`` (its completion is not known in advance);
    ``settle()`` waits until everything posted has run; ``busy`` is the ns posted so far."""

    def __init__(self, engine, control, serves: int, share: float = 1.0):
        self.engine = engine
        self.control = control  # DomainRuntime of the host's control domain
        self.serves = serves  # domid the work is done for (the guest's row shows it, as a backend's)
        self.share = share  # the analytic share, only an estimate here (post-copy's batch lead)
        self.busy = 0.0  # ns posted
        self.done_ns = 0.0  # ns run
        self.queue: deque = deque()
        self.v = None  # the VcpuOS the thread runs on, once spawned
        self._wake = None
        self._last = None
        self.closed = False

    def post(self, ready_ns: int, parts: dict) -> int:
        now = self.engine.now_ns
        ev = self.engine.event()
        self._last = ev
        self.busy += sum(parts.values())
        if ready_ns > now:
            self.engine.timeout_ns(int(ready_ns - now)).callbacks.append(lambda _e: self._enqueue(parts, ev))
        else:
            self._enqueue(parts, ev)
        return int(ready_ns)

    def settle(self):
        ev = self._last
        if ev is not None and not ev.processed:
            yield ev

    def close(self) -> None:
        self.closed = True
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _enqueue(self, parts: dict, ev) -> None:
        self.queue.append((parts, ev))
        if self.v is None:
            os_ = self.control.os
            n = len(os_.vcpus)
            self.v = os_.spawn(self._thread(), vcpu=len(self.control.served) % n, serves=self.serves)
        elif self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _thread(self):
        while True:
            if not self.queue:
                if self.closed:
                    self.v = None
                    return
                self._wake = self.engine.event()
                yield ("wait", self._wake)
                continue
            parts, ev = self.queue.popleft()
            v = self.v
            for cause, ns in parts.items():
                v.meter.add_ns(cause, ns)
            yield v.flush()
            self.done_ns += sum(parts.values())
            ev.succeed()


@dataclass
class InRun:
    """One migration of a running system: the request, both incarnations of the domain, the save
    engine, and the snapshots that measure the guest's throughput before, during and after."""
    req: live.Request
    index: int
    src: object  # DomainRuntime on the source host
    dst: object  # DomainRuntime on the target host (vCPUs on its dispatcher from resume)
    mig: Migration
    snaps: dict = field(default_factory=dict)  # "start", "suspend", "resume" -> snapshot
    state: str = "pending"  # pending | precopy | downtime | done | aborted
    frames: int = 0  # frames populated on the target so far
    free: dict = field(default_factory=dict)  # host -> free frames, shared by every migration of the run


def plan(system) -> list[InRun]:
    """Check the scenario's ``[[migrations]]`` and prepare each on ``system`` (nothing runs yet)."""
    sc = system.scenario
    if not sc.migrations:
        return []
    reqs = live.parse_requests(list(sc.migrations))
    live.check(sc, reqs, cumulative=False)  # each alone; together they allocate as pages arrive
    free = {h.name: h.spec.memory_mib * 256 - sum(d.spec.memory_mib * 256 for d in h.domains) for h in system.hosts}
    seen = set()
    out = []
    for i, r in enumerate(reqs):
        if r.domain in seen:
            raise ScenarioError(f"{r.where}.domain", f"domain {r.domain!r} is migrated twice; one migration each")
        seen.add(r.domain)
        src = system.domain(r.domain)
        w = src.workload
        if w.uses_memory and src.spec.options.mmu == "structural":
            raise ScenarioError(f"{r.where}.domain", f"{r.domain!r} runs memory steps on the structural MMU, "
                                                     "which does not migrate in a run; use options.mmu = \"counted\"")
        target = next(h for h in system.hosts if h.name == r.to)
        dst = target.receive(src.spec.model_copy(update={"host": r.to}), incarnation=f"@{r.to}")
        pipe = system.links[frozenset((src.host.name, r.to))].pipe_from(src.host.name)
        cpus = None
        if src.host.control is not None and target.control is not None:  # Domain-0's vCPUs run the stream
            cpus = (Dom0Thread(system.engine, src.host.control, src.domid, live.dom0_share(sc, src.host.name)),
                    Dom0Thread(system.engine, target.control, dst.domid, live.dom0_share(sc, r.to)))
        mig = live.build_migration(system.engine, pipe, sc, r, i, cpus=cpus)
        m = InRun(r, i, src, dst, mig, free=free)
        mig.on_populate = lambda n, m=m: _populate(m, n)
        mig.on_abort = lambda _mig, m=m: _abort(system, m)
        mig.on_round = lambda r, m=m: _traced_round(m, r)
        mig.on_logdirty = lambda items, m=m: _logdirty(m, items)
        mig.on_stall = lambda k, ns, m=m: _stall(m, k, ns)
        out.append(m)
    return out


def start(system, runs: list[InRun]) -> None:
    """Arm each migration at its ``at_ms`` on the system's engine."""
    eng = system.engine
    for m in runs:
        def proc(m=m):
            yield eng.timeout_ns(int(round(m.req.at_ms * 1e6)))
            m.snaps["start"] = system.snap(m.src)
            m.state = "precopy"
            yield from m.mig.process()

        m.mig.on_suspend = lambda _mig, m=m: _suspend(system, m)
        m.mig.on_resume = lambda _mig, m=m: _resume(system, m)
        eng.process(proc())


def _trace(m: InRun, event: int, *words: int) -> None:
    """A migration record on the source host's trace bus (nothing is built unless someone listens)."""
    hv = m.src.host.hv
    if m.src.host.engine._subscribers:
        hv.trace_dom(m.src.domain, event, *words)


def _traced_round(m: InRun, r) -> None:
    """``PVSIM_TRC_MIG_ROUND`` as a round ends: what it sent, the pages dirty after it, its length."""
    ns = max(0, int(r.end_ns - r.start_ns))
    _trace(m, PVSIM_TRC_MIG_ROUND, m.src.domid, (r.index & 0x7FFFFFFF) | (int(bool(r.live)) << 31), r.pages,
           r.skipped, r.dirty_after, ns & 0xFFFFFFFF, ns >> 32)


def _logdirty(m: InRun, items) -> None:
    """The guest pays its log-dirty faults (or PML exits and flushes) on its own vCPUs: the work joins
    what each vCPU has pending, so its next Run is longer by it and its breakdown shows the causes."""
    vcpus = m.src.os.vcpus
    p = m.src.host.pricer
    for v, work, times in items:
        ns: dict = {}
        for (cause, price), n in work.work.items():
            ns[cause] = ns.get(cause, 0.0) + n * times * p.ns(price)
        vcpus[v % len(vcpus)].charge(ns, {k: c * times for k, c in work.counts.items()})


def _stall(m: InRun, k: int, ns: int) -> None:
    """Post-copy: remote fault ``k`` stalls the vCPU that took it for ``ns`` (the userfaultfd wait for
    the page). The save engine's touch stream is the whole guest's, so the faulting vCPU is taken
    round-robin (fault ``k`` on vCPU ``k mod n``); the wait is charged to it as ``postcopy.stall``
    work pending with its next Run, so it does no useful work for that time (modelled as busy, not
    blocked: the vCPU keeps its pCPU rather than yielding it to another domain)."""
    vcpus = m.dst.os.vcpus
    vcpus[k % len(vcpus)].charge({"postcopy.stall": float(ns)}, {"postcopy.remote_fault": 1})


def _populate(m: InRun, n: int) -> bool:
    """The receiver allocates ``n`` more frames on the target (``xc_domain_populate_physmap_exact``)."""
    if m.free[m.req.to] < n:
        return False
    m.free[m.req.to] -= n
    m.frames += n
    return True


def _abort(system, m: InRun) -> None:
    """The receiver failed: its domain is destroyed (frames freed), the guest runs on at the source."""
    m.free[m.req.to] += m.frames
    m.frames = 0
    _trace(m, PVSIM_TRC_MIG_ABORT, m.src.domid)
    if m.state == "downtime":  # already suspended: resumed in place (libxl's suspend-cancel)
        for u in m.src.domain.units:
            m.src.host.runner.unpause(u)
    m.state = "aborted"


def _suspend(system, m: InRun) -> None:
    """``SHUTDOWN_suspend``: the guest stops running on the source."""
    h = m.src.host
    m.snaps["suspend"] = system.snap(m.src)
    _trace(m, PVSIM_TRC_MIG_SUSPEND, m.src.domid)
    for u in m.src.domain.units:
        h.runner.pause(u)
    m.state = "downtime"


def _resume(system, m: InRun) -> None:
    """Restored on the target: the source's vCPUs leave its dispatcher, the target's join."""
    src, dst = m.src, m.dst
    for u in src.domain.units:
        src.host.runner.destroy_vcpu(u)
    m.snaps["destroyed"] = system.snap(src)
    if math.isfinite(src.budget):
        dst.budget = max(0.0, src.budget - src.os.units)
    finished = src.finished_ns is not None
    dst.host.admit(dst, start_threads=not finished)
    system.domains.append(dst)
    if math.isfinite(dst.budget) and not finished:
        system.migrated_in(src, dst)
    m.snaps["resume"] = system.snap(dst)
    _trace(m, PVSIM_TRC_MIG_RESUME, src.domid, dst.domid)
    m.state = "done"
    m.frames = 0
    m.free[src.host.name] += src.spec.memory_mib * 256  # the source's frames are released


def window(measure, dr, a, b):
    """The guest's throughput between snapshots ``a`` and ``b`` in the run's metric (None if empty)."""
    if a is None or b is None or b["t"] <= a["t"]:
        return None
    return float(measure(dr, a, b)["value"])


def rows(runs: list[InRun], measure, start_snaps: dict, end_snaps: dict) -> tuple[list[dict], list[dict]]:
    """The ``kind = "migration"`` and ``kind = "round"`` rows, with the guest's throughput before,
    during and after (``measure(dr, a, b)`` is the run's row of ``dr`` between two snapshots)."""
    out, rounds = [], []
    for m in runs:
        d = m.src.spec
        if m.state != "done":
            o = m.mig.out
            row = {"kind": "migration", "domain": d.name, "from": d.host, "to": m.req.to,
                   "policy": m.req.policy, "memory_mib": d.memory_mib, "state": m.state,
                   "start_ms": m.req.at_ms, "rounds": len(o.rounds), "bytes": o.bytes,
                   "stop_reason": o.stop_reason} | live.logdirty_fields(o.rounds, m.mig)
            if m.state == "aborted":
                row["total_ms"] = o.total_ns / 1e6
            out.append(row)
            rounds.extend({"kind": "round", **x} for x in live.round_rows(m.req, d, m.mig))
            continue
        row = {"kind": "migration", **live.summary_row(m.req, d, m.mig), "state": m.state}
        s0 = start_snaps.get(m.src)
        row["metric"] = m.src.workload.metric
        row["throughput"] = {
            "before": window(measure, m.src, s0, m.snaps.get("start")),
            "during": window(measure, m.src, m.snaps.get("start") if s0 is None or m.snaps["start"]["t"] >= s0["t"]
                             else s0, m.snaps.get("suspend")),
            "after": window(measure, m.dst, m.snaps.get("resume"), end_snaps.get(m.dst)),
        }
        out.append(row)
        rounds.extend({"kind": "round", **x} for x in live.round_rows(m.req, d, m.mig))
    return out, rounds
