"""Comparisons across modes: one single-domain scenario per (workload, mode), same seed and profile.

Every comparison runs through the same ``Scenario -> build -> run`` path as a user's scenario, so
rows have the same form everywhere; this module only describes the scenarios and relates each row
to native. How a workload is measured comes from its catalogue entry (``measure``: a number of
units, or a timed window after a warm-up, and the host's pCPUs), else from its metric (rates: 1 s;
latencies: 10,000 units); ``ops``/``duration_ms``/``pcpus`` override it. ``relative_to_native`` is
``value / native value`` for the same workload: for latency metrics (``us_per_op``,
``cycles_per_op``) above 1 is slower, for rates below 1 is slower, as in SOSP'03 Figure 3's
"relative score".
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from guest_kernels.modes import BASELINE, MODES, missing_hardware
from pvsim.core.errors import ScenarioError
from pvsim.core.profile import load_profile
from pvsim.core.schema import unknown
from pvsim.scenario import Scenario, _has_hap
from pvsim.system import build
from pvsim.workloads import DEFAULT, Catalogue
from pvsim.workloads.spec import RATE_METRICS

DEFAULT_MICRO_OPS = 10_000
DEFAULT_RATE_MS = 1000.0
GUEST = "guest"


def measurement(workload: str, catalogue: Catalogue = DEFAULT, *, ops: int | None = None,
                duration_ms: float | None = None) -> dict:
    """The ``[run]`` table that measures ``workload`` in a comparison."""
    spec = catalogue.get(workload)
    m = spec.measure
    if ops is not None:
        return {"ops": int(ops)}
    if duration_ms is not None:
        warm = m.warmup_ms if m is not None and m.duration_ms is not None else 0.0
        return {"duration_ms": float(duration_ms), "warmup_ms": min(warm, float(duration_ms) / 10)}
    if m is not None:
        if m.ops is not None:
            return {"ops": int(m.ops)}
        if m.duration_ms is not None:
            return {"duration_ms": m.duration_ms, "warmup_ms": m.warmup_ms}
    return {"duration_ms": DEFAULT_RATE_MS} if spec.metric in RATE_METRICS else {"ops": DEFAULT_MICRO_OPS}


def single_scenario(workload: str, mode: str, profile: str, *, seed: int = 0, ops: int | None = None,
                    duration_ms: float | None = None, pcpus: int | None = None, scheduler: str = "credit",
                    options: dict | None = None, params: dict | None = None,
                    catalogue: Catalogue = DEFAULT) -> Scenario:
    """One host, one guest running ``workload`` in ``mode`` (plus the control domain it needs)."""
    spec = catalogue.get(workload)
    if pcpus is None:
        pcpus = spec.measure.pcpus if spec.measure is not None and spec.measure.pcpus else 1
    dom = {"name": GUEST, "mode": mode, "workload": workload, "vcpus": 1, "memory_mib": 1024}
    if options:
        dom["options"] = dict(options)
    if params:
        dom["params"] = dict(params)
    data = {
        "name": f"{workload}@{mode}", "seed": seed,
        "host": {"pcpus": pcpus, "memory_mib": 4096, "profile": profile},
        "scheduler": {"name": scheduler},
        "run": measurement(workload, catalogue, ops=ops, duration_ms=duration_ms), "domains": [dom],
    }
    sc = Scenario.from_dict(data)
    return sc if not catalogue.extra else _with_catalogue(sc, catalogue)


def _with_catalogue(sc: Scenario, catalogue: Catalogue) -> Scenario:
    return replace(sc, catalogue=catalogue)


def split_list(text: str, what: str, allowed: list[str]) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise ScenarioError(what, "must name at least one")
    for x in items:
        if x not in allowed:
            raise unknown(what, x, allowed, what="value")
    return items


def check_modes(modes: list[str], profile: str, field: str = "--modes") -> None:
    prof = load_profile(profile, field_name="--profile")
    for m in modes:
        if m not in MODES:
            raise unknown(field, m, MODES, what="mode")
        lack = missing_hardware(MODES[m], prof.has("hvm.vmexit_cycles"), _has_hap(prof))
        if lack:
            raise ScenarioError(field, f"mode {m!r} needs {lack}, which profile {prof.name!r} lacks")


def plan(workloads: list[str], modes: list[str], profile: str, *, seed: int = 0, ops: int | None = None,
         duration_ms: float | None = None, pcpus: int | None = None, options: dict | None = None,
         params: dict | None = None, catalogue: Catalogue = DEFAULT) -> list[tuple[str, str, Scenario]]:
    """The ``(workload, mode, scenario)`` runs of a comparison, native first for each workload (what
    :func:`compare` runs, and what ``pvsim.estimate`` probes before it)."""
    run_modes = list(modes) if BASELINE in modes else [BASELINE, *modes]
    check_modes(run_modes, profile)
    return [(w, m, single_scenario(w, m, profile, seed=seed, ops=ops, duration_ms=duration_ms, pcpus=pcpus,
                                   options=options, params=params, catalogue=catalogue))
            for w in workloads for m in run_modes]


def compare(workloads: list[str], modes: list[str], profile: str, *, seed: int = 0, ops: int | None = None,
            duration_ms: float | None = None, pcpus: int | None = None, options: dict | None = None,
            params: dict | None = None, catalogue: Catalogue = DEFAULT,
            progress: Callable[[str], None] | None = None) -> list[dict]:
    """Rows for every (workload, mode); native is always run (as the reference) but only reported if asked."""
    for w in workloads:
        if w not in catalogue:
            raise unknown("--workload", w, catalogue.names(), what="workload")
    scenarios = plan(workloads, modes, profile, seed=seed, ops=ops, duration_ms=duration_ms, pcpus=pcpus,
                     options=options, params=params, catalogue=catalogue)
    rows: list[dict] = []
    native: dict[str, float] = {}
    for w, m, sc in scenarios:
        if progress:
            progress(f"{w} / {m}")
        res = build(sc).run()
        row = next(r for r in res.rows if r["domain"] == GUEST)
        if m == BASELINE:
            native[w] = row["value"]
        rows.append(row)
    out = []
    for r in rows:
        ref = native.get(r["workload"])
        r["relative_to_native"] = (r["value"] / ref) if ref else None
        if r["mode"] in modes:
            out.append(r)
    return out
