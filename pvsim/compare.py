"""Comparisons across modes: one single-domain scenario per (workload, mode), same seed and profile.

Every comparison runs through the same build/run path as a user's scenario (so breakdowns, counts
and provenance are identical in form); this module only lays the scenarios out and relates each
row to native. ``relative_to_native`` is ``value / native value`` for the same workload: for
latency metrics (``us_per_op``, ``cycles_per_op``) above 1 is slower, for throughput (``ops_per_s``)
below 1 is slower, as in SOSP'03 Figure 3's "relative score".
"""

from __future__ import annotations

from typing import Callable

from pvsim.errors import ScenarioError
from pvsim.pricing import check_mode
from pvsim.scenario import Scenario
from pvsim.system import build
from pvsim.workloads import get as get_op
from pvsim.workloads import workload_names

DEFAULT_MICRO_OPS = 10_000


def single_scenario(workload: str, mode: str, profile: str, *, seed: int = 0, ops: int | None = None,
                    duration_ms: float | None = None, pcpus: int = 1, scheduler: str = "credit",
                    options: dict | None = None) -> Scenario:
    run: dict = {}
    if ops is not None:
        run["ops"] = ops
    elif duration_ms is not None:
        run["duration_ms"] = duration_ms
    else:
        try:
            metric = get_op(workload).metric
        except KeyError:
            metric = "ops_per_s"
        if metric == "ops_per_s":
            run["duration_ms"] = 1000.0
        else:
            run["ops"] = DEFAULT_MICRO_OPS
    dom = {"name": "guest", "mode": mode, "workload": workload, "vcpus": 1, "memory_mib": 1024}
    if options:
        dom["options"] = dict(options)
    return Scenario.from_dict({
        "name": f"{workload}@{mode}", "seed": seed,
        "host": {"pcpus": pcpus, "memory_mib": 4096, "profile": profile},
        "scheduler": {"name": scheduler}, "run": run, "domains": [dom],
    })


def split_list(text: str, what: str, allowed: list[str]) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise ScenarioError(what, "must name at least one")
    for x in items:
        if x not in allowed:
            raise ScenarioError(what, f"unknown value {x!r}; allowed: {', '.join(allowed)}")
    return items


IO_DEFAULT_DURATION_MS = 200.0


def _io_workloads() -> tuple[str, ...]:
    try:
        from pvsim.io.workloads import IO_WORKLOADS
    except ImportError:  # pragma: no cover
        return ()
    return tuple(IO_WORKLOADS)


def _run_io_row(w: str, m: str, profile: str, seed: int, duration_ms: float | None, options: dict | None) -> dict:
    """An I/O workload through the split-driver subsystem (rings, event channels, grants, dom0 backends
    scheduled by the same dispatcher), as one row of the same form."""
    from pvsim import __version__
    from pvsim.io.workloads import run_io_workload
    from pvsim.profile import load_profile

    prof = load_profile(profile)
    check_mode(m, prof)
    opts = {k: v for k, v in (options or {}).items() if k != "mmu"}
    dur = int((duration_ms if duration_ms is not None else IO_DEFAULT_DURATION_MS) * 1_000_000)
    row = run_io_workload(w, m, prof, seed=seed, duration_ns=dur, **opts)
    row.setdefault("domain", "guest")
    row.update({"profile": prof.name, "seed": seed, "pvsim_version": __version__, "scenario": f"{w}@{m}",
                "relative_to_native": None})
    row.setdefault("units", row.get("requests", 0))
    return row


def _run_mm_row(w: str, m: str, profile: str, seed: int) -> dict:
    """A memory workload on the structural MMU (page tables as data), as one row of the same form."""
    from pvsim import __version__
    from pvsim.mm.runner import run_mm_workload
    from pvsim.profile import load_profile

    prof = load_profile(profile)
    row = run_mm_workload(w, m, prof, seed=seed)
    row.update({"domain": "guest", "seed": seed, "pvsim_version": __version__, "scenario": f"{w}@{m}",
                "relative_to_native": None})
    return row


def compare(workloads: list[str], modes: list[str], profile: str, *, seed: int = 0, ops: int | None = None,
            duration_ms: float | None = None, pcpus: int = 1, options: dict | None = None,
            progress: Callable[[str], None] | None = None) -> list[dict]:
    """Rows for every (workload, mode); native is always run (as the reference) but only reported if asked.

    I/O workloads (``ttcp-1500``, ``ttcp-500``, ``netperf-rr``, ``fio-rand4k``, ``dbench``, ``oltp``,
    ``web``) run through the split-driver subsystem (:mod:`pvsim.io`), 200 ms of simulated time each
    unless ``duration_ms`` says otherwise; memory workloads (``gups``, ``stream``, ``ptchurn-mmap``,
    ``ptchurn-fork``) on the structural MMU (:mod:`pvsim.mm.runner`, fixed sizes); the others through a
    single-domain scenario."""
    for w in workloads:
        if w not in workload_names():
            raise ScenarioError("workload", f"unknown workload {w!r}; see 'pvsim list workloads'")
    run_modes = list(modes) if "native" in modes else ["native", *modes]
    io = set(_io_workloads())
    from pvsim.mm.runner import MM_WORKLOADS
    from pvsim.profile import load_profile

    direct = io | set(MM_WORKLOADS)

    prof = load_profile(profile, field_name="--profile")
    for m in run_modes:
        check_mode(m, prof, "--modes")
    scenarios = [(w, m, None if w in direct else single_scenario(w, m, profile, seed=seed, ops=ops, duration_ms=duration_ms,
                                                            pcpus=pcpus, options=options))
                 for w in workloads for m in run_modes]
    rows: list[dict] = []
    native: dict[str, float] = {}
    for w, m, sc in scenarios:
        if progress:
            progress(f"{w} / {m}")
        if w in MM_WORKLOADS:
            row = _run_mm_row(w, m, profile, seed)
        elif sc is None:
            row = _run_io_row(w, m, profile, seed, duration_ms, options)
        else:
            res = build(sc).run()
            row = next(r for r in res.rows if r["domain"] == "guest")
        if m == "native":
            native[w] = row["value"]
        rows.append(row)
    out = []
    for r in rows:
        ref = native.get(r["workload"])
        r["relative_to_native"] = (r["value"] / ref) if ref else None
        if r["mode"] in modes:
            out.append(r)
    return out
