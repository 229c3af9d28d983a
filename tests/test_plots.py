"""The figures: one colour per mode in every file, a paper's column width, ratios that say which way."""

import matplotlib.colors as mcolors
import matplotlib.image as mpimg
import numpy as np
import pytest

from guest_kernels.modes import MODES as ALL
from pvsim import plots

MODES = ["native", "pv", "bt", "hvm-shadow", "hvm", "pvh"]


def _rows(workloads, metric="us_per_op", value=lambda i, j: 1.0 + i + 0.3 * j):
    rows = []
    for i, w in enumerate(workloads):
        for j, m in enumerate(MODES):
            v = value(i, j)
            rows.append({"workload": w, "mode": m, "metric": metric, "value": v,
                         "relative_to_native": v / value(i, 0), "units": 10.0,
                         "breakdown_ns": {"user": 50.0, "kernel.fill": 20.0 * (1 + j), "exit.cpuid": 5.0 * j,
                                          "sched.wait": 1.0}})
    return rows


def _has_color(png, hexcol, tol=2 / 255):
    img = mpimg.imread(png)[..., :3]
    rgb = np.array(mcolors.to_rgb(hexcol))
    return bool((np.abs(img - rgb).max(axis=-1) <= tol).any())


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    d = tmp_path_factory.mktemp("fig")
    lm = _rows([f"lmbench.t{i}" for i in range(24)])
    nano = _rows([f"nano.t{i}" for i in range(8)], "cycles_per_op", lambda i, j: 100.0 * (1 + i) * (1 + 5 * j))
    cmp_ = _rows(["cpu-int", "kernel-build", "forkwait", "oltp", "web"], "ops_per_s", lambda i, j: 100.0 - 5 * j)
    out = {}
    out["compare"] = (d / "compare.png", plots.relative_bars(cmp_, d / "compare.png"))
    plots.breakdown_bars(cmp_, d / "compare-breakdown.png")
    out["breakdown"] = (d / "compare-breakdown.png", {})
    rel = [dict(r, value=r["relative_to_native"]) for r in lm]
    out["lmbench"] = (d / "lmbench.png", plots.grouped_log_bars(rel, d / "lmbench.png", "lmbench", plots.TIME_RATIO_LABEL,
                                                                label_key=lambda r: r["workload"].split(".")[1]))
    pub = {("t0", "bt"): 1500.0, ("t1", "hvm-shadow"): 4000.0}
    out["nano"] = (d / "nano.png", plots.grouped_log_bars(nano, d / "nano.png", "nano", "cycles per operation",
                                                          label_key=lambda r: r["workload"].split(".")[1],
                                                          published=pub))
    return out


def test_sizes_fit_a_paper(figures):
    for name, (png, _used) in figures.items():
        h, w = mpimg.imread(png).shape[:2]
        assert w <= plots.MAX_WIDTH_IN * plots.DPI and h <= 5 * plots.DPI, (name, w, h)
        assert w >= 3.5 * plots.DPI - 1, name


def test_one_colour_per_mode_in_every_figure(figures):
    for name, (png, used) in figures.items():
        if name == "breakdown":
            continue
        assert used == {m: plots.MODE_COLORS[m] for m in MODES}, name
        for m in MODES:
            assert _has_color(png, plots.MODE_COLORS[m]), (name, m)
    assert len(set(plots.MODE_COLORS.values())) == len(plots.MODE_COLORS)


def test_the_palette_covers_every_mode():
    assert set(ALL) <= set(plots.MODE_COLORS)


def test_ratios_say_which_way():
    lat = {"metric": "us_per_op", "relative_to_native": 2.0}
    rate = {"metric": "ops_per_s", "relative_to_native": 0.5}
    assert plots.score(lat) == 0.5 and plots.score(rate) == 0.5  # both: higher is better
    assert "higher is better" in plots.SCORE_LABEL and "lower is better" in plots.TIME_RATIO_LABEL


def test_published_values_are_drawn(figures):
    png, _ = figures["nano"]
    assert _has_color(png, "#000000", tol=0.05)
