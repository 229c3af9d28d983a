"""Results: tidy rows with a time breakdown, event counts and provenance.

Each row: ``workload``, ``mode``, ``domain``, ``metric`` (``us_per_op``, ``cycles_per_op`` or
``ops_per_s``), ``value``, ``relative_to_native`` (filled by comparisons), ``elapsed_ns``,
``units`` (units of work completed), ``breakdown_ns`` (cause -> ns, summing to ``elapsed_ns``),
``counts`` (event name -> int), plus provenance (``pvsim_version``, ``profile``, ``seed``,
``scenario``). ``Results.to_json`` writes ``{"pvsim_version", "profile", "seed", "results": [...]}``
with sorted keys, so the same scenario and seed give byte-identical files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pvsim import __version__


def _round_breakdown(bd: dict[str, float], total: int) -> dict[str, int]:
    """Integer ns per cause, summing exactly to ``total`` (largest-remainder rounding)."""
    items = sorted(bd.items())
    floors = {k: int(v) for k, v in items}
    rem = total - sum(floors.values())
    order = sorted(items, key=lambda kv: (-(kv[1] - int(kv[1])), kv[0]))
    for k, _ in order[: max(0, rem)]:
        floors[k] += 1
    return {k: v for k, v in floors.items() if v}


@dataclass
class Results:
    rows: list[dict]
    meta: dict = field(default_factory=dict)
    sched_rows: list[dict] = field(default_factory=list)

    @classmethod
    def from_system(cls, system) -> "Results":
        stats = system.runner.stats()
        prof = system.profile
        rows = []
        for dr in system.domains:
            vstats = [v for v in stats.vcpus if v.domid == dr.domain.domid]
            n = max(1, len(vstats))
            finished = [b.finished_ns for b in dr.behaviours]
            done = all(f is not None for f in finished)
            elapsed = int(max(finished)) if done else int(stats.elapsed_ns)
            trailing = int(stats.elapsed_ns) - elapsed  # offline time after the domain finished
            switch = int(system.switch_ns.get(dr.domain.domid, 0))
            running = sum(v.running_ns for v in vstats) - switch  # switch time is Xen's, not the guest's
            runnable = sum(v.runnable_ns for v in vstats)
            blocked = sum(v.blocked_ns for v in vstats)
            offline = sum(v.offline_ns for v in vstats) - n * trailing
            service = getattr(system, "dom0_service", None) if dr.spec.name == "Domain-0" else None
            served = min(float(running), float(service.served_ns)) if service is not None else 0.0
            running_total, running = running, running - served  # Domain-0's own work, then its guests'
            cpu_c = dr.cost.cpu_cycles
            # units of work done, fractional: CPU time consumed / CPU time per unit (exact for the
            # burst in progress at the end of a timed run); whole units for CPU-free workloads
            units = running / (cpu_c / prof.clock_ghz) if cpu_c > 0 else \
                sum(b.units_done + (b._pending if b._state == "wait" else 0) for b in dr.behaviours)
            wait_c = dr.cost.wait_cycles
            bd: dict[str, float] = {}
            if cpu_c > 0:
                for cause, cyc in dr.cost.cycles.items():
                    if not cause.startswith("idle"):
                        bd[cause] = bd.get(cause, 0.0) + running * cyc / cpu_c
            else:
                bd["idle"] = float(running)
            if served:
                for cause, ns in service.served.items():
                    bd[cause] = bd.get(cause, 0.0) + ns * served / service.served_ns
            io_wait = min(float(blocked), units * wait_c / prof.clock_ghz) if wait_c else 0.0
            if io_wait:
                bd["idle.io_wait"] = io_wait
            waited = sum(b.dom0_wait_until(int(stats.elapsed_ns)) for b in dr.behaviours)
            dom0_wait = min(float(blocked) - io_wait, float(waited))
            if dom0_wait > 0:
                bd["idle.dom0_wait"] = dom0_wait
            else:
                dom0_wait = 0.0
            bd["idle"] = bd.get("idle", 0.0) + (blocked - io_wait - dom0_wait) + offline
            if runnable:
                bd["sched.wait"] = float(runnable)
            if switch:
                bd["world_switch.vcpu"] = float(switch)
            # per-vCPU average, so that a row's breakdown sums to its elapsed time
            breakdown = _round_breakdown({k: v / n for k, v in bd.items()}, elapsed)
            op_metric = _metric_for(dr.spec.workload)
            if op_metric == "ops_per_s":
                value = units / (elapsed / 1e9) if elapsed else 0.0
            elif op_metric == "cycles_per_op":
                value = (running / max(units, 1e-12)) * prof.clock_ghz
            else:
                value = (running / max(units, 1e-12)) / 1000.0
            counts = {k: int(round(v * units)) for k, v in sorted(dr.cost.counts.items())}
            counts["sched.context_switches"] = int(sum(v.context_switches for v in vstats))
            counts["sched.migrations"] = int(sum(v.migrations for v in vstats))
            rows.append({
                "workload": dr.spec.workload, "mode": dr.spec.mode, "domain": dr.spec.name,
                "metric": op_metric, "value": float(value), "relative_to_native": None,
                "elapsed_ns": int(elapsed), "units": float(units), "vcpus": n,
                "breakdown_ns": breakdown, "counts": counts,
                "cpu_share": running_total / max(1, elapsed * 1.0),
            })
        meta = {"pvsim_version": __version__, "profile": prof.name, "seed": system.scenario.seed,
                "scenario": system.scenario.name, "scheduler": system.scenario.scheduler,
                "pcpus": system.scenario.host.pcpus}
        for r in rows:
            r.update({"profile": prof.name, "seed": system.scenario.seed, "pvsim_version": __version__,
                      "scenario": system.scenario.name})
        return cls(rows, meta, stats.rows())

    # ------------------------------------------------------------------ output
    def to_dict(self) -> dict:
        return {"pvsim_version": self.meta.get("pvsim_version", __version__), "profile": self.meta.get("profile"),
                "seed": self.meta.get("seed"), "meta": self.meta, "results": self.rows}

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True, indent=1, default=_json_default) + "\n"
        if path is not None:
            write_atomic(path, text)
        return text

    def frame(self):
        """A pandas DataFrame of the rows, with ``breakdown_ns`` flattened to ``bd.<cause>`` columns."""
        import pandas as pd

        flat = []
        for r in self.rows:
            f = {k: v for k, v in r.items() if k not in ("breakdown_ns", "counts")}
            f.update({f"bd.{k}": v for k, v in r["breakdown_ns"].items()})
            flat.append(f)
        return pd.DataFrame(flat)

    def to_csv(self, path: str | Path) -> None:
        write_atomic(path, self.frame().to_csv(index=False))


def _metric_for(workload: str) -> str:
    from pvsim.workloads import get

    try:
        return get(workload).metric
    except KeyError:
        return "ops_per_s"


def _json_default(o):
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    raise TypeError(type(o))


def write_atomic(path: str | Path, text: str | bytes) -> None:
    """Write via a temporary file and rename: nothing half-written on error."""
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    mode = "wb" if isinstance(text, bytes) else "w"
    with open(tmp, mode) as f:
        f.write(text)
    tmp.replace(p)
