"""Host crashes and link cuts inside a scenario run: the failed host's vCPUs stop, the heartbeat
detects it, and each admitted domain boots again on a survivor's dispatcher and carries on there.

Design note
-----------
Models what an HA-enabled Xen pool does to running guests (XAPI's ``xhad``, or Pacemaker with
corosync for ``xl`` hosts) on the system :func:`pvsim.system.build` wired. Detection, fencing,
admission and placement are :func:`pvsim.ha.failover.run`'s, the one mechanism that ``pvsim
failover`` reports analytically (same heartbeat model, same ``[ha]`` settings, same policy: the
run and the command agree on detection time, placement and restart instant). This module makes the
timeline of the run follow that plan:

- :func:`prepare` (before the hosts are built): parses ``[[failures]]`` and ``[ha]``, checks that
  each failure falls inside the run, computes the plan, and names the incarnations each survivor
  will receive (so that its control domain is built even if it ran nothing of that kind before);
- :func:`plan` (after the hosts are built): one new incarnation per restart, built on the survivor
  with :meth:`~pvsim.system.HostRuntime.receive` (a new domid; its frontends on the survivor's
  Domain-0 backends; its vCPUs not yet on the dispatcher), exactly as an in-run migration's target
  (:mod:`pvsim.migrate.inrun`);
- :func:`start` arms, on the engine: the snapshot of each doomed domain's completed units at its
  last durable point (``durable_ms``) before the failure; the crash (:func:`_crash`: every vCPU of
  every domain of the host, its Domain-0 included, leaves the dispatcher at once with
  ``sched_destroy_vcpu``; the host's NIC and the ends of its links go dead, so traffic over them is
  dropped, its storage requests included); a link cut (both directions of the link dropped from the
  cut on, a cut to the outside kills the host's NIC; hosts the cut isolates from the quorum side are fenced, i.e. crashed, at detection); and
  each restart (:func:`_restart`: at detection + the guest's boot time, the new incarnation's vCPUs
  join the survivor's dispatcher and its workload starts again, with the budget left at its last
  durable point: the units done since then are lost and redone).

Rows: each incarnation has its own domain row (the failed one measured until its host stopped it,
the restarted one from its restart); ``Results.failure_rows`` holds the ``kind = "failure"`` rows of
:func:`pvsim.ha.failover.run` (detection) and one ``kind = "restart"`` row per domain of a failed
host: where it went or why it stays down, the planned and the measured stop and restart instants,
the service downtime, the lost work (ms since the durable point, and the units the run lost).

Simplifications: fencing is instantaneous; a host isolated by a cut runs on until it is fenced at
detection and its work is lost from the cut's last durable point like a crashed host's (the model of
:mod:`pvsim.ha.failover`); the boot is a wait (no boot I/O on the storage link, no CPU on the
survivor); a unit in flight at the crash is lost; a restart planned on a host that itself fails
before the boot is over does not happen (the row says so); ``[[failures]]`` and ``[[migrations]]``
are not combined in one run; no trace records are written for failures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pvsim.core.errors import ScenarioError
from pvsim.ha import failover as fo
from pvsim.scenario import OUTSIDE

RESTARTING = ("restarted", "restart-failed")  # the rows whose target incarnation is built (the run finds a doomed one dead)


@dataclass
class Prepared:
    """The analytic plan of a scenario's failures (what :func:`pvsim.ha.failover.run` decides)."""
    settings: fo.HaSettings
    failures: list
    events: list[dict]
    rows: list[dict]

    def coming(self, host: str) -> set[str]:
        """The domains that will be restarted on ``host``."""
        return {r["domain"] for r in self.rows if r["status"] in RESTARTING and r["to"] == host}


@dataclass
class Restart:
    """One domain of a failed host: the incarnation that failed, the one that restarts (``None``: it
    stays down), the analytic row, and what the run measured."""
    row: dict
    src: object  # DomainRuntime that fails
    dst: object | None  # DomainRuntime restarted on the survivor
    durable_units: float = 0.0
    stopped_ns: int | None = None
    restarted_ns: int | None = None
    units_at_stop: float | None = None
    snaps: dict = field(default_factory=dict)  # "stop", "restart" -> snapshot
    note: str = ""
    awaited: bool = False  # the run waits for the restarted incarnation's finite workload


@dataclass
class InRunFailures:
    prep: Prepared
    restarts: list[Restart]
    host_stops: dict = field(default_factory=dict)  # host -> ns its vCPUs stopped
    stop_snaps: dict = field(default_factory=dict)  # DomainRuntime -> snapshot when its host stopped


def prepare(sc) -> Prepared | None:
    """Check ``[[failures]]`` and ``[ha]`` against the scenario and plan them; ``None`` without failures."""
    if not sc.failures:
        return None
    if sc.migrations:
        raise ScenarioError("failures", "a run holds [[migrations]] or [[failures]], not both "
                                        "(not modelled together)")
    s = fo.parse_settings(sc.ha)
    fails = fo.parse_failures(list(sc.failures), sc)
    dur = sc.run.duration_ms
    for f in fails:
        if dur is not None and f.at_ms >= dur:
            raise ScenarioError(f"{f.where}.at_ms", f"{f.at_ms:g} ms is not inside the run "
                                                    f"(run.duration_ms = {dur:g}); must be < {dur:g}")
    events, rows = fo.run(sc, fails, s)
    return Prepared(s, fails, events, rows)


def plan(system, prep: Prepared | None) -> InRunFailures | None:
    """Build each restart's incarnation on its survivor (nothing runs yet)."""
    if prep is None:
        return None
    current = {d.spec.name: d for d in system.domains}
    hosts = {h.name: h for h in system.hosts}
    restarts = []
    for k, r in enumerate(prep.rows):
        src = current[r["domain"]]
        dst = None
        if r["status"] in RESTARTING:  # a restart-failed one too: the run finds its target dead
            dst = hosts[r["to"]].receive(src.spec.model_copy(update={"host": r["to"]}),
                                         incarnation=f"@{r['to']}/restart{k}")
            current[r["domain"]] = dst
        restarts.append(Restart(r, src, dst))
    return InRunFailures(prep, restarts)


def _ns(ms: float) -> int:
    return int(round(ms * 1e6))


def start(system, f: InRunFailures | None) -> None:
    """Arm the durable points, crashes, cuts, fences and restarts on the system's engine."""
    if f is None:
        return
    eng = system.engine
    s = f.prep.settings

    def at(ms, fn):
        eng.timeout_ns(max(0, _ns(ms) - eng.now_ns)).callbacks.append(lambda _e: fn())

    for r in f.restarts:
        fail_ms = r.row["failed_at_ms"]
        if s.durable_ms > 0 and fail_ms - r.row["lost_work_ms"] > 0:
            at(fail_ms - r.row["lost_work_ms"], lambda r=r: _durable(system, r))
    for e, fail in zip([e for e in f.prep.events], f.prep.failures):
        if fail.link is not None:
            at(fail.at_ms, lambda ends=fail.link: _cut(system, ends))
        if e.get("fenced"):
            when = fail.at_ms if fail.host is not None else e["detect_at_ms"]
            at(when, lambda hs=tuple(e["fenced"]): [_crash(system, f, h) for h in hs])
    for r in f.restarts:
        if r.dst is not None:
            at(r.row["restart_at_ms"], lambda r=r: _restart(system, f, r))


def _durable(system, r: Restart) -> None:
    """The domain's last durable point before its failure: what it has completed is safe."""
    if r.src in system.domains and r.stopped_ns is None:
        system.snap(r.src)  # the dispatcher brought up to now
        r.durable_units = float(r.src.os.units)  # completed units (one in flight is not durable)


def _dead_link(system, ends) -> None:
    ln = system.links.get(frozenset(ends))
    if ln is not None:
        for p in ln.pipes.values():
            p.dead = True


def _cut(system, ends) -> None:
    """A link cut: nothing more crosses it, in either direction (what was on the wire is lost); a cut
    of a host's link to the outside kills that host's NIC (its clients and sinks are beyond it)."""
    _dead_link(system, ends)
    if OUTSIDE in ends:
        for h in system.hosts:
            if h.name in ends:
                h.nic.dead = True


def _crash(system, f: InRunFailures, name: str) -> None:
    """Host ``name`` stops: every vCPU of every domain on it leaves its dispatcher at once, its NIC and
    the ends of its links go dead."""
    if name in f.host_stops:
        return
    h = next(x for x in system.hosts if x.name == name)
    now = system.engine.now_ns
    f.host_stops[name] = now
    for dr in list(h.domains):
        f.stop_snaps[dr] = system.snap(dr)
    for dr in list(h.domains):
        for u in dr.domain.units:
            h.runner.destroy_vcpu(u)
    h.nic.dead = True
    for ends in list(system.links):
        if name in ends:
            _dead_link(system, tuple(ends))
    for r in f.restarts:
        if r.src.host is h and r.stopped_ns is None and r.src in f.stop_snaps:
            r.stopped_ns = now
            r.units_at_stop = float(r.src.os.units)  # completed units (the stop snapshot synced it)
            r.snaps["stop"] = f.stop_snaps[r.src]
            # the run waits for the restarted incarnation instead, or no more if it stays down
            r.awaited = r.dst is not None and r.src.finished_ns is None and math.isfinite(r.src.budget)
            system.stop_waiting(r.src, r.snaps["stop"], successor=r.dst if r.awaited else None)
        if r.dst is not None and r.dst.host is h and r.restarted_ns is None:
            r.note = f"its restart target {name} failed before the boot was over"
            if r.awaited:
                system.stop_waiting(r.dst, None)


def _restart(system, f: InRunFailures, r: Restart) -> None:
    """The new incarnation boots on the survivor: its vCPUs join the dispatcher, its workload starts
    again with the budget left at the last durable point."""
    dst = r.dst
    if dst.spec.host in f.host_stops or r.stopped_ns is None:
        if not r.note:
            r.note = "its restart target failed before the boot was over"
        return
    src = r.src
    if math.isfinite(src.budget):
        dst.budget = max(0.0, src.budget - r.durable_units)
    finished = src.finished_ns is not None
    dst.host.admit(dst, start_threads=not finished)
    system.domains.append(dst)
    r.restarted_ns = system.engine.now_ns
    r.snaps["restart"] = system.snap(dst)


def rows(f: InRunFailures) -> list[dict]:
    """The ``kind = "failure"`` rows (detection, as :func:`pvsim.ha.failover.run`) and one
    ``kind = "restart"`` row per domain of a failed host (planned and measured)."""
    out = [{"kind": "failure", **e, "stopped_at_ms": (f.host_stops[e["fenced"][0]] / 1e6
                                                      if e.get("fenced") and e["fenced"][0] in f.host_stops
                                                      else None)} for e in f.prep.events]
    for r in f.restarts:
        row = {"kind": "restart", **r.row, "domid": r.src.domid,
               "new_domid": r.dst.domid if r.dst is not None else None,
               "stopped_at_ms": r.stopped_ns / 1e6 if r.stopped_ns is not None else None,
               "resumed_at_ms": r.restarted_ns / 1e6 if r.restarted_ns is not None else None,
               "service_downtime_ms": ((r.restarted_ns - _ns(r.row["failed_at_ms"])) / 1e6
                                       if r.restarted_ns is not None else None),
               "lost_units": (r.units_at_stop - r.durable_units if r.units_at_stop is not None else None)}
        if r.stopped_ns is None:
            row["in_run"] = "not reached: the run ended first"
        elif r.dst is None:
            row["in_run"] = "down"
        elif r.restarted_ns is None:
            row["in_run"] = r.note or "booting when the run ended"
        else:
            row["in_run"] = "restarted"
        out.append(row)
    return out
