"""Charts: SOSP'03 Figure 3-style relative bars, stacked time breakdowns, lmbench and nanobenchmark bars.

Every mode has one colour in every figure (:data:`MODE_COLORS`, the Okabe-Ito colour-blind-safe
palette plus greys and two darker tones; a mode outside it takes a fixed grey). Figures are at
most :data:`MAX_WIDTH_IN` inches wide (a two-column paper's full width) at :data:`DPI`, so a PNG is
at most 1400 px wide. Ratios say which way they point: a *score* is native / time or rate /
native's rate (higher is better); *time relative to native* is time / native's (lower is better).
"""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

CATEGORY_ORDER = ["user", "kernel", "hypercall", "trap", "exit", "mmu", "world_switch", "cache", "tlb", "device",
                  "io", "dom0", "sched", "idle"]
COLORS = dict(zip(CATEGORY_ORDER, plt.get_cmap("tab20").colors[::1]))
LATENCY_METRICS = {"us_per_op", "cycles_per_op", "ns_per_op", "ms_per_op"}  # lower is better; the rest are rates
MODE_COLORS = {  # the named palette: one colour per mode in every figure
    "native": "#4D4D4D", "container": "#A6A6A6", "pv": "#0072B2", "pv32": "#56B4E9", "bt": "#E69F00",
    "hvm-shadow": "#D55E00", "hvm": "#CC79A7", "pvhvm": "#009E73", "pvh": "#117733", "kvm-virtio": "#882255",
    "uml": "#999933",
}
OTHER_MODE_COLOR = "#DDDDDD"
SCORE_LABEL = "score relative to native (native = 1.0; higher is better)"
TIME_RATIO_LABEL = "time relative to native (native = 1.0; lower is better)"
MAX_WIDTH_IN = 7.0
DPI = 200
#: The pinned style every figure is drawn in, so that a figure is the same picture on any machine
#: with this matplotlib (the stored-image tests of tests/test_figure_baselines.py rely on it):
#: matplotlib's own defaults, the Agg backend, DejaVu Sans (shipped with matplotlib), fixed DPI.
STYLE = {"font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"], "font.size": 8.0,
         "figure.dpi": DPI, "savefig.dpi": DPI, "text.hinting": "default",
         "text.usetex": False, "axes.unicode_minus": True, "svg.hashsalt": "pvsim", "path.simplify": True}


def mode_color(mode: str) -> str:
    return MODE_COLORS.get(mode, OTHER_MODE_COLOR)


def score(row: dict) -> float | None:
    """The row's score against native, higher is better (1 / relative_to_native for a latency)."""
    rel = row.get("relative_to_native")
    if not rel:
        return None
    return 1.0 / rel if row["metric"] in LATENCY_METRICS else rel


def _width(n_bars: int, per_bar: float = 0.18) -> float:
    return float(min(MAX_WIDTH_IN, max(3.5, per_bar * n_bars + 1.0)))


def _styled(fn):
    """Draw ``fn``'s figure in :data:`STYLE` from matplotlib's defaults, whatever the caller's rcParams."""
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        with matplotlib.rc_context():
            matplotlib.rcdefaults()
            matplotlib.rcParams.update(STYLE)
            return fn(*a, **kw)
    return wrapper


def _save(fig, path: str | Path) -> None:
    """Write the figure to ``path`` (callers stage it: see :class:`pvsim.results.Outputs`)."""
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    plt.close(fig)


@_styled
def relative_bars(rows: list[dict], path: str | Path, title: str = "") -> None:
    """Grouped bars of relative_to_native, one group per workload (SOSP'03 Figure 3 style).

    Throughput workloads show value/native (higher is better); latency workloads show native/value,
    so that every bar reads "relative score, native = 1.0".
    """
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    fig, ax = plt.subplots(figsize=(_width(len(workloads) * len(modes)), 3.2), layout="constrained")
    width = 0.8 / max(1, len(modes))
    used = {}
    for j, m in enumerate(modes):
        ys = []
        for w in workloads:
            r = next((r for r in rows if r["workload"] == w and r["mode"] == m), None)
            sc = score(r) if r else None
            ys.append(sc if sc is not None else np.nan)
        xs = np.arange(len(workloads)) + j * width
        bars = ax.bar(xs, ys, width, label=m, color=mode_color(m))
        used[m] = mode_color(m)
        for b, y in zip(bars, ys):
            if y == y:
                ax.text(b.get_x() + b.get_width() / 2, y + 0.01, f"{y:.2f}", ha="center", va="bottom", fontsize=6,
                        rotation=90)
    ax.set_xticks(np.arange(len(workloads)) + 0.4 - width / 2)
    ax.set_xticklabels(workloads, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(SCORE_LABEL, fontsize=8)
    ax.axhline(1.0, color="k", lw=0.5)
    top = max([1.0] + [y for b in ax.containers for y in b.datavalues if y == y])
    ax.set_ylim(0, max(1.25, top * 1.15))
    ax.legend(ncol=min(len(modes), 5), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22))
    ax.set_title(title or "Relative performance (higher is better)", fontsize=9)
    _save(fig, path)
    return used


@_styled
def breakdown_bars(rows: list[dict], path: str | Path, title: str = "") -> None:
    """Stacked time per unit of work by category, one bar per (workload, mode), normalised to native."""
    labels, stacks = [], []
    for r in rows:
        units = max(r.get("units") or 1.0, 1e-12)
        per = {}
        for cause, ns in r["breakdown_ns"].items():
            cat = cause.split(".", 1)[0]
            per[cat] = per.get(cat, 0.0) + ns / units
        labels.append(f"{r['workload']}\n{r['mode']}")
        stacks.append(per)
    # normalise each workload's bars to its native (or first) total
    norm = {}
    for lab, per in zip(labels, stacks):
        w = lab.split("\n")[0]
        if w not in norm or lab.endswith("\nnative"):
            norm[w] = sum(per.values()) or 1.0
    xs, x, prev = [], 0.0, None
    for lab in labels:  # a gap between workload groups
        w = lab.split("\n")[0]
        if prev is not None and w != prev:
            x += 0.8
        xs.append(x)
        x += 1.0
        prev = w
    fig, ax = plt.subplots(figsize=(_width(len(labels), 0.22), 4.0), layout="constrained")
    bottom = np.zeros(len(labels))
    for cat in CATEGORY_ORDER:
        ys = np.array([per.get(cat, 0.0) / norm[lab.split("\n")[0]] for lab, per in zip(labels, stacks)])
        if ys.any():
            ax.bar(xs, ys, 0.8, bottom=bottom, label=cat, color=COLORS.get(cat))
            bottom += ys
    ax.set_xticks(xs)
    ax.set_xticklabels([lab.split("\n")[1] for lab in labels], rotation=90, fontsize=6)
    groups: dict[str, list[float]] = {}
    for lab, x in zip(labels, xs):
        groups.setdefault(lab.split("\n")[0], []).append(x)
    for w, gx in groups.items():  # the workload under its group of bars
        ax.annotate(w, xy=((min(gx) + max(gx)) / 2, 0), xycoords=("data", "axes fraction"), xytext=(0, -48),
                    textcoords="offset points", ha="center", va="top", fontsize=7)
    ax.set_ylabel(TIME_RATIO_LABEL.replace("time relative", "time per unit of work relative"), fontsize=7)
    ax.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title or "Where the time goes", fontsize=9)
    _save(fig, path)


@_styled
def grouped_log_bars(rows: list[dict], path: str | Path, title: str, ylabel: str, label_key=lambda r: r["workload"],
                     log: bool = True, published: dict | None = None) -> dict:
    """Bars per (name, mode); ``published`` ``{(name, mode): value}`` draws the papers' values beside
    them as black diamonds. Returns the colour each mode was drawn in."""
    names = list(dict.fromkeys(label_key(r) for r in rows))
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    fig, ax = plt.subplots(figsize=(_width(len(names) * len(modes), 0.12), 3.4), layout="constrained")
    width = 0.8 / max(1, len(modes))
    used = {}
    for j, m in enumerate(modes):
        ys = [next((r["value"] for r in rows if label_key(r) == n and r["mode"] == m), np.nan) for n in names]
        ax.bar(np.arange(len(names)) + j * width, ys, width, label=m, color=mode_color(m))
        used[m] = mode_color(m)
    if published:
        px = [i + j * width for i, n in enumerate(names) for j, m in enumerate(modes) if published.get((n, m))]
        py = [published[(n, m)] for n in names for m in modes if published.get((n, m))]
        if px:
            ax.plot(px, py, "D", color="black", markersize=3.5, label="published", linestyle="none")
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2)
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=6)
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _p: f"{v:g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(
            lambda v, _p: f"{v:g}" if str(f"{v:g}")[0] in "25" else ""))
        ax.tick_params(axis="y", which="minor", labelsize=6)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.legend(fontsize=6, ncol=min(len(modes) + 1, 5), loc="lower center", bbox_to_anchor=(0.5, 1.08))
    ax.set_title(title, fontsize=9)
    _save(fig, path)
    return used


@_styled
def validation_points(records: list[dict], path, title: str) -> None:
    """Published against predicted, one point per entry on log-log axes with the y = x line: filled
    points are validation (green within the band, red outside), hollow grey ones calibration."""
    fig, ax = plt.subplots(figsize=(6, 5))
    pub = np.array([r["published"] for r in records], float)
    got = np.array([r["predicted"] for r in records], float)
    lo, hi = min(pub.min(), got.min()) * 0.7, max(pub.max(), got.max()) * 1.4
    ax.plot([lo, hi], [lo, hi], color="k", lw=0.6)
    for role, res, kw in (("validation", "pass", dict(color="tab:green", label="validation, within band")),
                          ("validation", "fail", dict(color="tab:red", label="validation, outside band")),
                          ("calibration", None, dict(facecolors="none", edgecolors="grey", label="calibration"))):
        sel = [i for i, r in enumerate(records) if r["role"] == role and (res is None or r["result"] == res)]
        if sel:
            ax.scatter(pub[sel], got[sel], s=22, **kw)
    for r, x, y in zip(records, pub, got):
        ax.annotate(f"{r['test'].replace('nano.', '')} {r['mode']}", (x, y), fontsize=5, xytext=(2, 2),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    for axis in (ax.xaxis, ax.yaxis):  # plain numbers on the log axes, not 10^0 / 2x10^0
        axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _p: f"{v:g}"))
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    unit = records[0]["unit"] if records else ""
    ax.set_xlabel(f"published ({unit})")
    ax.set_ylabel(f"pvsim ({unit})")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    _save(fig, path)


@_styled
def migration_timeline(rounds: list[dict], path: str | Path, migration: dict | None = None, title: str = "") -> None:
    """Per-round timeline of one migration: each ``kind = "round"`` row as a bar (MiB sent, from its
    ``start_ms`` for its ``duration_ms``); if ``migration`` (its ``kind = "migration"`` row from a run)
    has a ``throughput`` dict, the guest's throughput before / during / after as a line."""
    fig, ax = plt.subplots(figsize=(_width(len(rounds)), 3.0))
    ax.bar([r["start_ms"] for r in rounds], [r["bytes"] / 2**20 for r in rounds],
           width=[max(r["duration_ms"], 1e-3) for r in rounds], align="edge", color="#0072B2",
           edgecolor="black", linewidth=0.4, label="round (MiB sent)")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("MiB sent per round")
    tp = (migration or {}).get("throughput") or {}
    pts = [(k, v) for k, v in tp.items() if isinstance(v, (int, float))]
    if pts and rounds:
        t0, t1 = rounds[0]["start_ms"], rounds[-1]["start_ms"] + rounds[-1]["duration_ms"]
        xs = {"before": t0, "during": (t0 + t1) / 2, "after": t1}
        ax2 = ax.twinx()
        ax2.plot([xs.get(k, t1) for k, _ in pts], [v for _, v in pts], "o-", color="#D55E00",
                 label=f"guest throughput ({migration.get('metric', '')})")
        ax2.set_ylabel("guest throughput")
    ax.set_title(title or "migration rounds")
    fig.tight_layout()
    _save(fig, path)


AVAILABILITY_COLORS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#882255", "#999933"]


def _avail_tick(u: float, _p=None) -> str:
    """An unavailability as the availability it leaves: 1e-3 -> 99.9 %."""
    return f"{100 * (1 - u):.{max(0, min(10, int(round(-np.log10(u))) - 2))}f} %" if 0 < u < 1 else ""


@_styled
def availability(rows: list[dict], path: str | Path, title: str = "") -> None:
    """Availability against the host failure rate (log x), one line per domain and one for the pool
    (black), each point the mean over repetitions with its confidence-interval bar; ``rows`` are the
    ``kind = "mean"`` rows of :func:`pvsim.ha.availability.sweep`. The y axis is the unavailability
    1 - A on a log scale, turned so that up is more available, labelled as availability (99.9 %).
    A rate of 0, or a mean with no downtime, has no place on log axes and is left out."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6), layout="constrained")
    series = list(dict.fromkeys((r["scope"], r["domain"]) for r in rows))
    i = 0
    for scope, dom in series:
        pts = sorted((r for r in rows if (r["scope"], r["domain"]) == (scope, dom)
                      and r["rate_per_host_year"] > 0 and r["availability_mean"] < 1),
                     key=lambda r: r["rate_per_host_year"])
        if not pts:
            continue
        x = np.array([r["rate_per_host_year"] for r in pts])
        u = np.array([1 - r["availability_mean"] for r in pts])
        hi = np.array([1 - r["availability_ci_low"] for r in pts])
        lo = np.maximum(np.array([1 - r["availability_ci_high"] for r in pts]), u / 10)  # a bar to 100 % ends a decade down
        if scope == "pool":
            color, label, kw = "black", "pool (all domains)", dict(lw=1.6, ls="--")
        else:
            color, label, kw = AVAILABILITY_COLORS[i % len(AVAILABILITY_COLORS)], dom, dict(lw=1.0)
            label += " (Remus)" if pts[0].get("protection") == "remus" else ""
            i += 1
        ax.errorbar(x, u, yerr=[u - lo, hi - u], marker="o", markersize=3, capsize=2.5, color=color,
                    label=label, **kw)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _p: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _p: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    ax.tick_params(axis="x", which="minor", labelsize=6)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_avail_tick))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("host failure rate (failures per host-year, log)")
    ax.set_ylabel("availability (log of the downtime fraction; up is better)")
    ax.grid(True, which="major", lw=0.3, alpha=0.6)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(title or "Availability against failure rate (mean and 95 % CI over repetitions)", fontsize=9)
    _save(fig, path)
