"""Every figure pvsim draws, rendered from fixed rows and compared with a stored PNG (issue 13).

The figures are drawn in ``pvsim.plots.STYLE`` (Agg, DejaVu Sans, fixed DPI), so the picture is the
same on a fresh machine; ``matplotlib.testing.compare.compare_images`` allows an RMS difference of
``TOL`` (grey levels 0-255) for anti-aliasing and FreeType differences. To re-make the baselines after
an intended change of a figure: ``PVSIM_UPDATE_BASELINES=1 python -m pytest tests/figures`` (then
look at them and commit them)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import matplotlib
import pytest
from matplotlib.testing.compare import compare_images

from pvsim import plots

BASE = Path(__file__).resolve().parent / "baseline"
TOL = 6.0
MODES = ["native", "container", "pv", "pv32", "bt", "hvm-shadow", "hvm", "pvh"]


def _rows(workloads, modes, metric, value):
    rows = []
    for i, w in enumerate(workloads):
        for j, m in enumerate(modes):
            v = value(i, j)
            rows.append({"workload": w, "mode": m, "metric": metric, "value": v,
                         "relative_to_native": v / value(i, 0), "units": 10.0,
                         "breakdown_ns": {"user": 50.0 + 3 * i, "kernel.fill": 20.0 * (1 + j), "exit.cpuid": 5.0 * j,
                                          "hypercall.mmu_update": 2.0 * j, "sched.wait": 1.0 + i}})
    return rows


def _compare(path):
    cmp_ = _rows(["cpu-int", "kernel-build", "forkwait", "oltp", "web"], MODES, "ops_per_s",
                 lambda i, j: 100.0 - 4 * j - i)
    plots.relative_bars(cmp_, path, title="Relative performance, profile modern")


def _breakdown(path):
    cmp_ = _rows(["cpu-int", "kernel-build", "forkwait"], MODES[:5], "ops_per_s", lambda i, j: 100.0 - 4 * j - i)
    plots.breakdown_bars(cmp_, path, title="Time per unit of work by cause, profile modern")


def _lmbench(path):
    lm = _rows([f"lmbench.t{i}" for i in range(12)], ["native", "pv32", "bt"], "us_per_op",
               lambda i, j: 1.0 + i + 0.7 * j * (1 + i % 3))
    rel = [dict(r, value=r["relative_to_native"]) for r in lm]
    plots.grouped_log_bars(rel, path, "lmbench relative to native", plots.TIME_RATIO_LABEL,
                           label_key=lambda r: r["workload"].split(".")[1])


def _nanobench(path):
    nano = _rows([f"nano.t{i}" for i in range(6)], ["native", "bt", "hvm-shadow"], "cycles_per_op",
                 lambda i, j: 100.0 * (1 + i) * (1 + 5 * j))
    pub = {("t0", "bt"): 1500.0, ("t1", "hvm-shadow"): 4000.0, ("t3", "bt"): 2500.0}
    plots.grouped_log_bars(nano, path, "Nanobenchmarks, profile p4-2006", "cycles per operation",
                           label_key=lambda r: r["workload"].split(".")[1], published=pub)


def _validation(path):
    recs = [{"test": f"nano.t{i}", "mode": m, "published": 100.0 * (i + 1), "predicted": 100.0 * (i + 1) * f,
             "role": role, "result": "pass" if abs(f - 1) < 0.2 else "fail", "unit": "cycles"}
            for i, (m, f, role) in enumerate([("bt", 1.1, "validation"), ("hvm-shadow", 0.7, "validation"),
                                              ("bt", 1.0, "calibration"), ("pv", 1.05, "validation"),
                                              ("hvm", 1.5, "validation")])]
    plots.validation_points(recs, path, "Validation: published against pvsim")


def _migration(path):
    rounds = [{"start_ms": 30.0 + 60.0 * i, "duration_ms": d, "bytes": b * 2**20}
              for i, (d, b) in enumerate([(54.0, 64.0), (5.2, 6.1), (1.1, 1.3), (0.3, 0.2)])]
    mig = {"throughput": {"before": 1000.0, "during": 870.0, "after": 990.0}}
    plots.migration_timeline(rounds, path, mig, "Migration rounds, fixed rows")


def _availability(path):
    rows = []
    for scope, dom, prot, per in (("domain", "db", "remus", 1.1), ("domain", "web", "restart", 14406.0),
                                  ("domain", "logs", "restart", 8.5), ("pool", None, None, 7200.0)):
        for rate in (0.0, 0.5, 1.0, 2.0, 5.0, 10.0):
            u = rate * per / (8766 * 3600)
            rows.append({"kind": "mean", "scope": scope, "domain": dom, "protection": prot,
                         "rate_per_host_year": rate, "availability_mean": 1 - u,
                         "availability_ci_low": 1 - 1.3 * u, "availability_ci_high": min(1.0, 1 - 0.6 * u)})
    plots.availability(rows, path, "Availability, fixed rows")


FIGURES = {"availability": _availability, "compare": _compare, "migration": _migration, "compare-breakdown": _breakdown, "lmbench": _lmbench, "nanobench": _nanobench,
           "validation": _validation}


def test_every_drawing_function_is_covered():
    drawn = {n for n in dir(plots) if callable(getattr(plots, n)) and getattr(getattr(plots, n), "__wrapped__", None)}
    assert drawn == {"relative_bars", "breakdown_bars", "grouped_log_bars", "validation_points",
                     "migration_timeline", "availability"}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_matches_its_baseline(name, tmp_path):
    out = tmp_path / f"{name}.png"
    matplotlib.rcParams["font.size"] = 20  # a caller's own style must not leak into the figure
    try:
        FIGURES[name](out)
    finally:
        matplotlib.rcdefaults()
    base = BASE / f"{name}.png"
    if os.environ.get("PVSIM_UPDATE_BASELINES"):
        BASE.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, base)
    assert base.exists(), f"no baseline {base}: run with PVSIM_UPDATE_BASELINES=1"
    diff = compare_images(str(base), str(out), tol=TOL)
    assert diff is None, diff


def test_a_changed_figure_is_caught(tmp_path):
    """The comparison is not blind: the compare figure with other values differs from its baseline."""
    out = tmp_path / "compare.png"
    cmp_ = _rows(["cpu-int", "kernel-build", "forkwait", "oltp", "web"], MODES, "ops_per_s",
                 lambda i, j: 100.0 - 9 * j - i)
    plots.relative_bars(cmp_, out, title="Relative performance, profile modern")
    assert compare_images(str(BASE / "compare.png"), str(out), tol=TOL) is not None
