"""``pvsim xenalyze TRACE``: a summary of a xentrace file in the layout of ``xenalyze --summary``.

Design note
-----------
Models the summary of ``tools/xentrace/xenalyze.c`` (``summary()``, ``domain_summary()``,
``print_cycle_summary``), computed from the trace file alone:

* per vCPU, the time in each runstate from ``TRC_SCHED_RUNSTATE_CHANGE`` (old and new state in
  the event id, ``{dom << 16 | vcpu}`` in its word), ``runnable`` split by how it was entered --
  ``wake`` (from blocked), ``preempt`` (from running), ``other`` (from offline) -- as xenalyze
  splits it; a vCPU's state before its first record is that record's old state;
* per domain, xenalyze's domain runstate classes over all of its vCPUs at every instant:
  ``blocked`` (all blocked or offline), ``partial run``, ``full run``, ``partial contention``
  (runnable ones, none running), ``concurrency_hazard`` (some running while others wait),
  ``full_contention``;
* hypercalls (``TRC_PV_HYPERCALL_V2``: the number in the low 20 bits of word 0), PV traps,
  HVM exits (``TRC_HVM_VMEXIT``, reason in word 0) with their time and average cycles, and
  grant map/unmap (``TRC_MEM_PAGE_GRANT_*``, the granting domain in word 0) done *by* the domain
  running on the pCPU and *for* the granting domain; records are attributed to the vCPU that
  the pCPU runs (from ``TRC_SCHED_SWITCH`` and the runstate records), as xenalyze does;
* pvsim's migration records (``PVSIM_TRC_MIG_*``, which real xenalyze passes over): per migrated
  domain its rounds (pages sent, skipped, dirty after, length) and the downtime from suspend to
  resume;
* every statistic line is ``<label>: <count> <seconds>s <avg cycles> {p5|p50|p95}``.

Simplifications: no interval or scatterplot modes, no CR3, MMIO or interrupt enumeration, no
emulate-eip list; percentiles are exact (xenalyze samples them with ``--sample-size``); an exit's
time is the handling cycles pvsim writes as its fourth word (real xenalyze measures it to the
next ``VMENTRY``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hypercalls import table as hc_table
from hypercalls.ops import DOMID_IDLE, RUNSTATE_NAMES
from hypercalls.trace import (
    PVSIM_TRC_MIG_ABORT,
    PVSIM_TRC_MIG_RESUME,
    PVSIM_TRC_MIG_ROUND,
    PVSIM_TRC_MIG_SUSPEND,
    TRC_HVM_VMEXIT,
    TRC_MEM_PAGE_GRANT_MAP,
    TRC_MEM_PAGE_GRANT_UNMAP,
    TRC_PV_HYPERCALL_V2,
    TRC_PV_TRAP,
    TRC_SCHED_RUNSTATE_CHANGE,
    TRC_SCHED_SWITCH,
)
from pvsim.trace.events import EXIT_REASON_NAMES, TRAP_NAMES
from pvsim.trace.xentrace import PVSIM_TRC_CLOCK, PVSIM_TRC_END, Rec

DEFAULT_CPU_HZ = 2.4e9  # xenalyze's default --cpu-hz
DOMAIN_CLASSES = ("blocked", "partial run", "full run", "partial contention", "concurrency_hazard",
                  "full_contention", "lost")
RUNNABLE_KINDS = ("wake", "preempt", "other")
CLASS_NAMES = {0x001: "gen", 0x002: "sched", 0x004: "dom0op", 0x008: "hvm", 0x010: "mem", 0x020: "pv",
               0x040: "shadow", 0x080: "hw", 0x800: "guest"}  # trace.h's classes, bits 16-27 of an id
_RS_MASK = ~0xFF0 & 0x0FFFFFFF


@dataclass
class Stat:
    """Durations (cycles) of one kind: count, total, samples for percentiles."""

    samples: list[int] = field(default_factory=list)

    def add(self, cycles: int) -> None:
        self.samples.append(int(cycles))

    @property
    def count(self) -> int:
        return len(self.samples)

    @property
    def cycles(self) -> int:
        return int(sum(self.samples))

    def to_dict(self, hz: float) -> dict:
        a = np.asarray(self.samples, dtype=np.int64)
        d = {"count": int(a.size), "cycles": int(a.sum()) if a.size else 0,
             "ns": float(a.sum()) / hz * 1e9 if a.size else 0.0,
             "avg_cycles": float(a.mean()) if a.size else 0.0}
        if a.size:
            d.update({f"p{p}": float(np.percentile(a, p)) for p in (5, 50, 95)})
        return d

    def line(self, label: str, hz: float, width: int = 20) -> str:
        d = self.to_dict(hz)
        pct = f" {{{d['p5']:.0f}|{d['p50']:.0f}|{d['p95']:.0f}}}" if d["count"] else ""
        return f"{label:>{width}}: {d['count']:7d} {d['cycles'] / hz:8.3f}s {d['avg_cycles']:10.0f}{pct}"


@dataclass
class VcpuSummary:
    dom: int
    vcpu: int
    state: int
    since: int
    runnable_kind: str = "other"
    runstates: dict = field(default_factory=lambda: {n: Stat() for n in RUNSTATE_NAMES})
    runnable: dict = field(default_factory=lambda: {k: Stat() for k in RUNNABLE_KINDS})
    cpu_time: dict = field(default_factory=dict)  # pcpu -> cycles running there
    hypercalls: dict = field(default_factory=dict)  # nr -> count
    traps: dict = field(default_factory=dict)  # name -> count
    exits: dict = field(default_factory=dict)  # reason number -> Stat

    def close(self, t: int, cpu: int | None) -> None:
        d = t - self.since
        self.runstates[RUNSTATE_NAMES[self.state]].add(d)
        if self.state == 1:
            self.runnable[self.runnable_kind].add(d)
        elif self.state == 0 and cpu is not None:
            self.cpu_time[cpu] = self.cpu_time.get(cpu, 0) + d
        self.since = t


@dataclass
class DomainSummary:
    dom: int
    classes: dict = field(default_factory=lambda: {c: Stat() for c in DOMAIN_CLASSES})
    cls: str | None = None
    since: int = 0
    grants_by: dict = field(default_factory=lambda: {"map": 0, "unmap": 0})
    grants_for: dict = field(default_factory=lambda: {"map": 0, "unmap": 0})


def _domain_class(states: list[int]) -> str:
    running = sum(1 for s in states if s == 0)
    runnable = sum(1 for s in states if s == 1)
    waiting = len(states) - running - runnable
    if runnable == 0:
        if running == 0:
            return "blocked"
        return "partial run" if waiting else "full run"
    if running == 0:
        return "partial contention" if waiting else "full_contention"
    return "concurrency_hazard"


class Summary:
    """The summary of a list of records (:func:`pvsim.trace.xentrace.read_trace`)."""

    def __init__(self, recs: list[Rec], cpu_hz: float | None = None):
        self.hz = cpu_hz
        self.t0 = None
        self.t_end = None
        self.volume: dict[int, dict[str, int]] = {}
        self.vcpus: dict[tuple[int, int], VcpuSummary] = {}
        self.domains: dict[int, DomainSummary] = {}
        self.unattributed = 0
        self.migrations: dict[int, dict] = {}  # migrated domid -> rounds, pages, downtime (pvsim records)
        self._scan(recs)

    def _scan(self, recs: list[Rec]) -> None:
        clock_hz = None
        first: dict[tuple[int, int], int] = {}
        for r in recs:
            if r.event == PVSIM_TRC_CLOCK and clock_hz is None:
                clock_hz = (r.words[0] | (r.words[1] << 32)) * 1e3
            elif (r.event & _RS_MASK) == TRC_SCHED_RUNSTATE_CHANGE:
                key = (r.words[0] >> 16, r.words[0] & 0xFFFF)
                if key not in first:
                    first[key] = (r.event >> 8) & 0xF
        if self.hz is None:
            self.hz = clock_hz or DEFAULT_CPU_HZ
        tsc = [r.tsc for r in recs if r.tsc is not None]
        self.t0 = min(tsc) if tsc else 0
        ends = [r.tsc for r in recs if r.event == PVSIM_TRC_END]
        self.t_end = ends[-1] if ends else (max(tsc) if tsc else 0)
        for key, st in sorted(first.items()):
            self.vcpus[key] = VcpuSummary(key[0], key[1], st, self.t0)
            self.domains.setdefault(key[0], DomainSummary(key[0], since=self.t0))
        for d in self.domains.values():
            d.cls = _domain_class(self._dom_states(d.dom))
        current: dict[int, tuple[int, int]] = {}
        where: dict[tuple[int, int], int] = {}
        for r in recs:
            ev = r.event
            vol = self.volume.setdefault(r.cpu, {})
            name = CLASS_NAMES.get((ev >> 16) & 0xFFF, f"class {(ev >> 16) & 0xFFF:#05x}")
            vol[name] = vol.get(name, 0) + 4 + (8 if r.tsc is not None else 0) + 4 * len(r.words)
            t = r.tsc if r.tsc is not None else self.t0
            if (ev & _RS_MASK) == TRC_SCHED_RUNSTATE_CHANGE:
                key = (r.words[0] >> 16, r.words[0] & 0xFFFF)
                v = self.vcpus[key]
                old, new = (ev >> 8) & 0xF, (ev >> 4) & 0xF
                v.close(t, where.get(key))
                if new == 1:
                    v.runnable_kind = "preempt" if old == 0 else "wake" if old == 2 else "other"
                v.state = new
                if new == 0:
                    where[key] = r.cpu
                    current[r.cpu] = key
                elif current.get(r.cpu) == key:
                    del current[r.cpu]
                self._dom_change(key[0], t)
            elif ev == TRC_SCHED_SWITCH and len(r.words) >= 4:
                nd, nu = r.words[2], r.words[3]
                if nd == DOMID_IDLE:
                    current.pop(r.cpu, None)
                else:
                    current[r.cpu] = (nd, nu)
            elif ev == TRC_PV_HYPERCALL_V2:
                v = self._on(current, r)
                if v is not None:
                    nr = r.words[0] & 0x000FFFFF
                    v.hypercalls[nr] = v.hypercalls.get(nr, 0) + 1
            elif ev == TRC_PV_TRAP:
                v = self._on(current, r)
                if v is not None:
                    k = TRAP_NAMES.get(r.words[0] & 0xFF, str(r.words[0] & 0xFF))
                    v.traps[k] = v.traps.get(k, 0) + 1
            elif ev == TRC_HVM_VMEXIT:
                v = self._on(current, r)
                if v is not None:
                    v.exits.setdefault(r.words[0], Stat()).add(r.words[3] if len(r.words) > 3 else 0)
            elif ev in (TRC_MEM_PAGE_GRANT_MAP, TRC_MEM_PAGE_GRANT_UNMAP):
                op = "map" if ev == TRC_MEM_PAGE_GRANT_MAP else "unmap"
                by = r.words[1] if len(r.words) > 1 else current.get(r.cpu, (None,))[0]
                if by is not None:
                    self.domains.setdefault(by, DomainSummary(by, since=self.t0)).grants_by[op] += 1
                fd = r.words[0]
                self.domains.setdefault(fd, DomainSummary(fd, since=self.t0)).grants_for[op] += 1
            elif ev in (PVSIM_TRC_MIG_ROUND, PVSIM_TRC_MIG_SUSPEND, PVSIM_TRC_MIG_RESUME, PVSIM_TRC_MIG_ABORT):
                self._migration(ev, t, r.words)
        for key, v in self.vcpus.items():
            v.close(self.t_end, where.get(key))
        for d in self.domains.values():
            if d.cls is not None:
                d.classes[d.cls].add(self.t_end - d.since)

    def _migration(self, ev: int, t: int, w) -> None:
        m = self.migrations.setdefault(w[0], {"rounds": [], "suspend": None, "resume": None, "new_domid": None,
                                              "aborted": False})
        if ev == PVSIM_TRC_MIG_ROUND and len(w) >= 7:
            m["rounds"].append({"round": w[1] & 0x7FFFFFFF, "live": bool(w[1] >> 31), "pages": w[2],
                                "skipped": w[3], "dirty_after": w[4], "ns": w[5] | (w[6] << 32)})
        elif ev == PVSIM_TRC_MIG_SUSPEND:
            m["suspend"] = t
        elif ev == PVSIM_TRC_MIG_RESUME:
            m["resume"] = t
            m["new_domid"] = w[1] if len(w) > 1 else None
        else:
            m["aborted"] = True

    def migration_dicts(self) -> list[dict]:
        out = []
        for dom, m in sorted(self.migrations.items()):
            down = (m["resume"] - m["suspend"]) / self.hz * 1e9 if m["suspend"] is not None and \
                m["resume"] is not None else None
            out.append({"domain": dom, "new_domid": m["new_domid"], "aborted": m["aborted"],
                        "rounds": len(m["rounds"]), "pages_sent": sum(r["pages"] for r in m["rounds"]),
                        "round_ns": sum(r["ns"] for r in m["rounds"]), "downtime_ns": down,
                        "per_round": m["rounds"]})
        return out

    def _on(self, current, r: Rec) -> VcpuSummary | None:
        key = current.get(r.cpu)
        v = self.vcpus.get(key) if key is not None else None
        if v is None:
            self.unattributed += 1
        return v

    def _dom_states(self, dom: int) -> list[int]:
        return [v.state for (d, _u), v in self.vcpus.items() if d == dom]

    def _dom_change(self, dom: int, t: int) -> None:
        d = self.domains[dom]
        c = _domain_class(self._dom_states(dom))
        if c != d.cls:
            if t > d.since:
                d.classes[d.cls].add(t - d.since)
            d.cls, d.since = c, t

    # ------------------------------------------------------------------------------ output
    def ns(self, cycles: int) -> float:
        return cycles / self.hz * 1e9

    def to_dict(self) -> dict:
        hz = self.hz
        doms = []
        for dom in sorted(self.domains):
            d = self.domains[dom]
            vc = []
            for (dd, u), v in sorted(self.vcpus.items()):
                if dd != dom:
                    continue
                vc.append({
                    "vcpu": u,
                    "runstates": {k: s.to_dict(hz) for k, s in v.runstates.items()},
                    "runnable": {k: s.to_dict(hz) for k, s in v.runnable.items()},
                    "cpu_affinity_ns": {str(c): self.ns(x) for c, x in sorted(v.cpu_time.items())},
                    "hypercalls": [{"nr": nr, "name": hc_table.name(nr) or f"#{nr}", "count": n}
                                   for nr, n in sorted(v.hypercalls.items())],
                    "traps": dict(sorted(v.traps.items())),
                    "vmexits": [{"reason": r, "name": EXIT_REASON_NAMES.get(r, f"#{r}"), **s.to_dict(hz)}
                                for r, s in sorted(v.exits.items())],
                })
            doms.append({"domain": dom, "runstates": {k: s.to_dict(hz) for k, s in d.classes.items()},
                         "grants_done_by": dict(d.grants_by), "grants_done_for": dict(d.grants_for),
                         "vcpus": vc})
        return {"cpu_hz": hz, "total_time_s": (self.t_end - self.t0) / hz,
                "log_volume": {str(c): v for c, v in sorted(self.volume.items())},
                "domains": doms, "migrations": self.migration_dicts(), "unattributed_records": self.unattributed}

    def text(self) -> str:
        hz = self.hz
        out = [f"Total time: {(self.t_end - self.t0) / hz:.2f} seconds (using cpu speed {hz / 1e9:.2f} GHz)",
               "--- Log volume summary ---"]
        for c, vol in sorted(self.volume.items()):
            out.append(f" - cpu {c} -")
            for k, b in sorted(vol.items()):
                out.append(f" {k:<8}: {b:10d} bytes")
        for dom in sorted(self.domains):
            d = self.domains[dom]
            out.append(f"|-- Domain {dom} --|")
            out.append(" Runstates:")
            for k, s in d.classes.items():
                if s.count:
                    out.append(s.line(k, hz))
            if any(d.grants_by.values()) or any(d.grants_for.values()):
                out.append(" Grant table ops:")
                out.append("  Done by:")
                out.append(f"   map: {d.grants_by['map']}  unmap: {d.grants_by['unmap']}")
                out.append("  Done for:")
                out.append(f"   map: {d.grants_for['map']}  unmap: {d.grants_for['unmap']}")
            for (dd, u), v in sorted(self.vcpus.items()):
                if dd != dom:
                    continue
                out.append(f"-- v{u} --")
                out.append(" Runstates:")
                for k, s in v.runstates.items():
                    out.append(s.line(k, hz))
                    if k == "runnable":
                        for kk, ss in v.runnable.items():
                            out.append(ss.line(kk, hz, width=24))
                if v.cpu_time:
                    out.append(" cpu affinity:")
                    for c, x in sorted(v.cpu_time.items()):
                        out.append(f"   cpu {c}: {x / hz:8.3f}s")
                if v.hypercalls or v.traps:
                    out.append(" PV events:")
                    for nr, n in sorted(v.hypercalls.items()):
                        out.append(f"   hypercall {nr:2d} {hc_table.name(nr) or '?':<24} {n:8d}")
                    for k, n in sorted(v.traps.items()):
                        out.append(f"   {k:<34} {n:8d}")
                if v.exits:
                    out.append(" Exit reasons:")
                    for r, s in sorted(v.exits.items()):
                        out.append(s.line(EXIT_REASON_NAMES.get(r, f"#{r}"), hz, width=24))
        for m in self.migration_dicts():
            out.append(f"|-- Migration of domain {m['domain']} (pvsim records) --|")
            out.append(f"  rounds: {m['rounds']}  pages sent: {m['pages_sent']}  round time: "
                       f"{m['round_ns'] / 1e6:.3f} ms" + (f"  downtime: {m['downtime_ns'] / 1e6:.3f} ms"
                                                          if m["downtime_ns"] is not None else "")
                       + (f"  -> d{m['new_domid']}" if m["new_domid"] is not None else "")
                       + ("  ABORTED" if m["aborted"] else ""))
            for r in m["per_round"]:
                out.append(f"   round {r['round']:3d} {'live' if r['live'] else 'stop':>4}: {r['pages']:8d} pages "
                           f"{r['skipped']:6d} skipped {r['ns'] / 1e6:9.3f} ms, dirty after {r['dirty_after']}")
        return "\n".join(out) + "\n"
