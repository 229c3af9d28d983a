"""Charts: SOSP'03 Figure 3-style relative bars, stacked time breakdowns, lmbench and nanobenchmark bars."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

CATEGORY_ORDER = ["user", "kernel", "hypercall", "trap", "exit", "mmu", "world_switch", "device", "io", "dom0",
                  "sched", "idle"]
COLORS = dict(zip(CATEGORY_ORDER, plt.get_cmap("tab20").colors[::1]))
LATENCY_METRICS = {"us_per_op", "cycles_per_op", "ns_per_op", "ms_per_op"}  # lower is better; the rest are rates


def _save(fig, path: str | Path) -> None:
    """Write the figure to ``path`` (callers stage it: see :class:`pvsim.results.Outputs`)."""
    fig.savefig(path, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)


def relative_bars(rows: list[dict], path: str | Path, title: str = "") -> None:
    """Grouped bars of relative_to_native, one group per workload (SOSP'03 Figure 3 style).

    Throughput workloads show value/native (higher is better); latency workloads show native/value,
    so that every bar reads "relative score, native = 1.0".
    """
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(workloads) * max(1, len(modes)) / 3), 4))
    width = 0.8 / max(1, len(modes))
    for j, m in enumerate(modes):
        ys = []
        for w in workloads:
            r = next((r for r in rows if r["workload"] == w and r["mode"] == m), None)
            rel = r["relative_to_native"] if r and r["relative_to_native"] else np.nan
            if r and r["metric"] in LATENCY_METRICS and rel == rel:
                rel = 1.0 / rel
            ys.append(rel)
        xs = np.arange(len(workloads)) + j * width
        bars = ax.bar(xs, ys, width, label=m)
        for b, y in zip(bars, ys):
            if y == y:
                ax.text(b.get_x() + b.get_width() / 2, y + 0.01, f"{y:.2f}", ha="center", va="bottom", fontsize=6,
                        rotation=90)
    ax.set_xticks(np.arange(len(workloads)) + 0.4 - width / 2)
    ax.set_xticklabels(workloads)
    ax.set_ylabel("relative score (native = 1.0)")
    ax.axhline(1.0, color="k", lw=0.5)
    top = max([1.0] + [y for b in ax.containers for y in b.datavalues if y == y])
    ax.set_ylim(0, max(1.25, top * 1.15))
    ax.legend(ncol=min(len(modes), 5), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    ax.set_title(title or "Relative performance (higher is better)")
    _save(fig, path)


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
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(labels)), 4.5))
    bottom = np.zeros(len(labels))
    for cat in CATEGORY_ORDER:
        ys = np.array([per.get(cat, 0.0) / norm[lab.split("\n")[0]] for lab, per in zip(labels, stacks)])
        if ys.any():
            ax.bar(range(len(labels)), ys, 0.7, bottom=bottom, label=cat, color=COLORS.get(cat))
            bottom += ys
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    ax.set_ylabel("time per unit of work (native total = 1.0)")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title or "Where the time goes")
    _save(fig, path)


def grouped_log_bars(rows: list[dict], path: str | Path, title: str, ylabel: str, label_key=lambda r: r["workload"],
                     log: bool = True) -> None:
    names = list(dict.fromkeys(label_key(r) for r in rows))
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(names) * max(1, len(modes)) / 2), 4))
    width = 0.8 / max(1, len(modes))
    for j, m in enumerate(modes):
        ys = [next((r["value"] for r in rows if label_key(r) == n and r["mode"] == m), np.nan) for n in names]
        ax.bar(np.arange(len(names)) + j * width, ys, width, label=m)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    ax.set_title(title)
    _save(fig, path)


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
    unit = records[0]["unit"] if records else ""
    ax.set_xlabel(f"published ({unit})")
    ax.set_ylabel(f"pvsim ({unit})")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    _save(fig, path)
