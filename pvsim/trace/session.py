"""Tracing a run: the xentrace and Perfetto writers subscribed to a built system's trace bus.

Design note
-----------
As ``xentrace`` reads the trace buffers of one Xen host, a run is traced on its host's bus
(``Engine.subscribe``); both writers are subscribers, so a run with tracing on makes the same
decisions as one without (the dispatchers only build records when someone subscribes). The
files are written through :class:`pvsim.results.Outputs`: streamed to temporary files and moved
into place only when the run succeeded.

Several hosts: the hosts of a scenario share one engine and one bus, so each host's dispatcher
and hypervisor number their records' pCPUs from their own base (``trace_base``: host 0's pCPUs
first, then host 1's, ...). ``--trace FILE`` then writes one xentrace file per host, as one
``xentrace`` per Xen host would: the host's name inserted before the suffix (``t.xentrace`` ->
``t.h1.xentrace``, ``t.h2.xentrace``), each with its pCPUs numbered from 0; ``--perfetto FILE`` writes
one timeline with a process per host (its pCPUs) and per domain of each host.
"""

from __future__ import annotations

import bisect
from pathlib import Path

from guest_kernels.program import ProgramMeter, ProgramVcpu
from hypercalls.ops import DOMID_IDLE
from hypercalls.table import HYPERCALLS_BY_NAME
from hypercalls.trace import TRC_PV_HYPERCALL_V2, TRC_SCHED_RUNSTATE_CHANGE, TRC_SCHED_SWITCH
from pvsim.core.engine import TraceRecord
from pvsim.core.errors import ScenarioError
from pvsim.results import Outputs
from pvsim.sched.hk import layout as L
from pvsim.trace.perfetto import ChromeTraceWriter, HostTracks
from pvsim.trace.xentrace import XentraceWriter, parse_mask


def host_path(path: str | Path, host: str) -> Path:
    """The trace file of ``host`` in a run of several hosts: its name before the suffix."""
    p = Path(path)
    return p.with_name(f"{p.stem}.{host}{p.suffix}") if p.suffix else p.with_name(f"{p.name}.{host}")


class HostFilter:
    """A subscriber passing on the records of one host's pCPU range, renumbered from 0."""

    def __init__(self, writer, base: int, n: int):
        self.writer, self.base, self.end = writer, base, base + n

    def __call__(self, rec: TraceRecord) -> None:
        if self.base <= rec.pcpu < self.end:
            self.writer(TraceRecord(rec.time_ns, rec.pcpu - self.base, rec.event, rec.words))

    def close(self, end_ns: int) -> None:
        self.writer.close(end_ns)


_RS_MASK = ~0xFF0 & 0x0FFFFFFF


class _ArenaCounters:
    """A program vCPU's counters read from the compiled dispatcher's arena (what ``sync`` copies),
    with the counts charged to it from outside its program (kept on the Python side)."""

    def __init__(self, arena, uid: int, extra_counts: dict):
        self.PC, self.V, self.uid = arena.region(L.PC), arena.region(L.V), uid
        self.maxops = int(arena.g[L.G_MAXOPS])
        self.extra_counts = extra_counts

    def op_exec(self, i):
        return int(self.PC[i, self.uid])

    def op_drawn(self, i):
        return int(self.PC[self.maxops + i, self.uid])

    def idles(self):
        return int(self.V[L.F_IDLES, self.uid])


class MeteredCalls:
    """The hypercalls the meters counted without a dispatched call (a pre-priced step of a workload,
    :mod:`pvsim.pricing`; a program's ops, :mod:`guest_kernels.program`; a guest kernel's counted
    paths), written as ``TRC_PV_HYPERCALL_V2`` records so that the trace holds every call the run's
    meters hold. It passes every record on to the writers and follows, as xenalyze does, which vCPU
    each pCPU runs and which hypercall records it has had; whenever a vCPU stops running, the calls
    its meter gained beyond those records are written on that pCPU just before the runstate record,
    at that instant (the end of the work they were part of), and the rest at the end of the trace.
    xenalyze's counts per vCPU then equal its meter's ``hypercall.<name>`` counts. Under the compiled
    dispatcher a program's counters are read from the arena as the kernel left them at the end of its
    batch (such calls are then up to one batch early; their number is exact at the end)."""

    def __init__(self, system, bases: list[int], out):
        self.out = out  # the writers' fan-out
        self.bases = bases
        self.hosts = list(system.hosts)
        self.vcpus: dict[tuple[int, int, int], tuple] = {}  # (host, domid, vcpu) -> (host rt, unit, meter owner)
        for hi, h in enumerate(system.hosts):
            for dr in [*h.domains, *getattr(h, "incoming", [])]:
                for i, ov in enumerate(getattr(dr.os, "vcpus", ())):
                    self.vcpus[(hi, dr.domain.domid, i)] = (h, dr.domain.vcpus[i], ov)
        self.seen: dict[tuple[int, int, int], dict[int, int]] = {}  # hypercall records given to a vCPU
        self.current: dict[int, tuple[int, int, int]] = {}

    def _counts(self, h, unit, ov) -> dict:
        arena = getattr(h.runner, "arena", None)
        if isinstance(ov, ProgramVcpu) and arena is not None and getattr(unit, "uid", None) is not None:
            return ProgramMeter(ov.prog, _ArenaCounters(arena, unit.uid, ov.extra_counts)).counts
        return ov.meter.counts

    def _host(self, cpu: int) -> int:
        return max(0, bisect.bisect_right(self.bases, cpu) - 1)

    def catch_up(self, key, t: int, cpu: int) -> None:
        h, unit, ov = self.vcpus[key]
        seen = self.seen.setdefault(key, {})
        for name, c in self._counts(h, unit, ov).items():
            if not name.startswith("hypercall."):
                continue
            hc = HYPERCALLS_BY_NAME.get(name[10:])
            if hc is None:
                continue
            nr = hc.nr & 0xFFFFF
            n = int(round(c)) - seen.get(nr, 0)
            if n <= 0:
                continue
            seen[nr] = seen.get(nr, 0) + n
            rec = TraceRecord(t, cpu, TRC_PV_HYPERCALL_V2, (nr,))
            for _ in range(n):
                self.out(rec)

    def __call__(self, rec: TraceRecord) -> None:
        ev = rec.event
        if ev == TRC_PV_HYPERCALL_V2:
            key = self.current.get(rec.pcpu)
            if key is not None:
                d = self.seen.setdefault(key, {})
                nr = rec.words[0] & 0xFFFFF
                d[nr] = d.get(nr, 0) + 1
        elif (ev & _RS_MASK) == TRC_SCHED_RUNSTATE_CHANGE:
            key = (self._host(rec.pcpu), rec.words[0] >> 16, rec.words[0] & 0xFFFF)
            if ((ev >> 8) & 0xF) == 0 and key in self.vcpus:  # leaving running: its calls first
                self.catch_up(key, rec.time_ns, rec.pcpu)
            if ((ev >> 4) & 0xF) == 0:
                self.current[rec.pcpu] = key
            elif self.current.get(rec.pcpu) == key:
                del self.current[rec.pcpu]
        elif ev == TRC_SCHED_SWITCH and len(rec.words) >= 4 and rec.words[2] == DOMID_IDLE:
            self.current.pop(rec.pcpu, None)
        self.out(rec)

    def finish(self, end_ns: int) -> None:
        """The calls not yet written, at the end: on the pCPU a vCPU runs on (xenalyze gives them to
        it), else on its last pCPU."""
        for h in self.hosts:
            h.runner.sync()
        running = {k: c for c, k in self.current.items()}
        for key, (_h, unit, _ov) in sorted(self.vcpus.items()):
            cpu = running.get(key, self.bases[key[0]] + int(getattr(unit, "cpu", 0) or 0))
            self.catch_up(key, end_ns, cpu)


class Tracing:
    """Subscribe the writers asked for to ``system`` (built, not yet run); :meth:`close` after the run.
    ``paths`` lists every file written (one xentrace file per host in a run of several hosts)."""

    def __init__(self, system, outs: Outputs, xentrace: str | Path | None = None,
                 perfetto: str | Path | None = None, mask: str | int | None = None):
        self.system = system
        self.writers = []
        self._files = []
        self.paths: list[Path] = []
        if xentrace is None and perfetto is None:
            return
        hosts = list(system.hosts)
        multi = len(hosts) > 1
        bases, b = [], 0
        for h in hosts:
            bases.append(b)
            if multi:  # the class default is 0: a one-host run is numbered as before
                h.runner.trace_base = b
                h.hv.trace_base = b
            b += h.spec.pcpus
        if multi:
            names = [h.name for h in hosts]
            if len(set(names)) != len(names):
                raise ScenarioError("--trace", "hosts need distinct names for one trace file each")
        now = system.engine.now_ns
        mask_v = parse_mask(mask)
        if xentrace is not None:
            for h, base in zip(hosts, bases):
                path = host_path(xentrace, h.name) if multi else Path(xentrace)
                fh = open(outs.path_for(path), "wb")
                self._files.append(fh)
                self.paths.append(path)
                w = XentraceWriter(fh, h.profile.clock_ghz, mask_v, start_ns=now)
                self.writers.append(HostFilter(w, base, h.spec.pcpus) if multi else w)
        if perfetto is not None:
            fh = open(outs.path_for(perfetto), "w", encoding="utf-8")
            self._files.append(fh)
            self.paths.append(Path(perfetto))
            tracks = [HostTracks(h.name if multi else None, base, h.spec.pcpus,
                                 {d.domain.domid: (d.spec.name, len(d.domain.units) or d.spec.vcpus)
                                  for d in [*h.domains, *getattr(h, "incoming", [])]})
                      for h, base in zip(hosts, bases)]
            h0 = hosts[0]
            self.writers.append(ChromeTraceWriter(fh, h0.spec.pcpus, tracks[0].domains, h0.profile.clock_ghz,
                                                  hosts=tracks))
        self.calls = MeteredCalls(system, bases, self._fanout)
        system.engine.subscribe(self.calls)

    def _fanout(self, rec: TraceRecord) -> None:
        for w in self.writers:
            w(rec)

    def close(self) -> None:
        end = self.system.engine.now_ns
        try:
            if self.writers:
                self.calls.finish(end)
            for w in self.writers:
                w.close(end)
        finally:
            for fh in self._files:
                fh.close()
            self._files = []

    def abort(self) -> None:
        for fh in self._files:
            fh.close()
        self._files = []
