"""The validation set as data, pvsim's prediction beside every published number, and the report.

Design note: the published numbers are those ``docs/calibration.md`` lists in its validation set:
the ASPLOS'06 nanobenchmarks (Adams & Agesen, Section 6.3, Pentium 4 cycles; profile ``p4-2006``)
and the SOSP'03 lmbench latencies (Barham et al., Tables 3-5, ratios of Xen, VMware Workstation
and UML (skas3) to native Linux L-UP; profile ``xeon-2003``). Each entry names its figure, its role
(``calibration`` where a constant was fitted on it -- such a row is shown but never counted as
validating the model -- or ``validation``), its band and the command that reproduces it. Bands are the project's acceptance
bands, fixed before the predictions were seen: +-20 % for a nanobenchmark (ASPLOS'06 rows), and for
an lmbench ratio the range ``docs/calibration.md`` states where it states one, else +-30 % of the
published ratio (UML's null call and fork: within a factor of 2, issue 12's acceptance; UML's path
is priced from native primitives, no constant stands on a UML measurement). Only native lmbench
latencies are inputs to the model (the L-UP column); the Xen, VMware and UML columns are never
read by it. A row's role comes from the bundled profiles'
``calibrated_on`` fields (:func:`calibrated_measurements`): ``group.test`` marks every mode's row of
that test, ``group.test:mode`` one row. The visible cases 3, 4, 7 and 11 of
``shared/reference/calibration.md`` section 7 (bands, orderings, exact counts, scheduler shares) are
:class:`Check` objects computed by running the model (:func:`case_checks`); the I/O identities of
``docs/calibration.md`` stay in the test suite.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from typing import Callable

import numpy as np

from guest_kernels.modes import MODES
from pvsim.compare import compare
from pvsim.core.engine import Engine, rng_for
from pvsim.core.errors import ScenarioError
from pvsim.core.profile import bundled_profiles, load_profile
from pvsim.core.version import __version__
from pvsim.mm.hap import build_translation_setup
from pvsim.mm.walk import O_MISSES, O_REFS, TLB, translate
from pvsim.plots import validation_points
from pvsim.sched import HostRunner, make_scheduler
from pvsim.sched.metrics import ShareMonitor, expected_shares
from pvsim.sched.workloads import CpuHog
from pvsim.workloads import PUBLISHED
from pvsim.workloads.lmbench import SOSP03, SOSP03_UML

#: The nanobenchmarks' band (ASPLOS'06 rows; docs/calibration.md, "acceptance: each within +-20 %").
NANO_BAND = 0.20
#: The default band of an lmbench ratio (SOSP'03 rows) where docs/calibration.md states none.
LMBENCH_BAND = 0.30
#: Ranges docs/calibration.md states for lmbench ratios (tests/core/test_lmbench_validation.py).
LMBENCH_RANGES = {("null_call", "pv32"): (0.90, 1.10), ("fork", "pv32"): (1.5, 2.2), ("exec", "pv32"): (1.2, 1.7),
                  ("fork", "bt"): (5.0, float("inf"))}
#: lmbench rows whose band is a factor around the published ratio (issue 12's acceptance for UML).
LMBENCH_FACTORS = {("null_call", "uml"): 2.0, ("fork", "uml"): 2.0}

#: Ranges calibration.md §7 states for nanobenchmarks given relative to native (case 3: BT null
#: syscall = native + 1800..2300 cycles at P4 costs), as offsets from pvsim's native.
NANO_RANGES = {("nano.syscall", "bt"): (1800.0, 2300.0)}

GROUPS = ("nano", "lmbench")
#: ASPLOS'06 gives some values relative to native ("the same as native", "native + 2000 cycles").
RELATIVE_TO_NATIVE = {"native": 0, "native+2000": 2000}
COMMANDS = {
    "nano": "pvsim nanobench --modes native,bt,hvm-shadow --profile p4-2006",
    "lmbench": "pvsim lmbench --modes native,pv32,bt,uml --profile xeon-2003",
}
FIGURES = {"nano": "ASPLOS'06 nanobenchmarks (p4-2006, cycles)",
           "lmbench": "SOSP'03 lmbench (xeon-2003, ratio to native L-UP)"}


@dataclass(frozen=True)
class Entry:
    """One published number: where it is from, what pvsim runs to predict it, how close it must be."""
    group: str
    test: str
    mode: str
    published: float | str  # a number, or "native" / "native+2000" (relative to pvsim's native)
    unit: str
    source: str
    role: str  # "calibration" or "validation"
    lo: float | None = None  # explicit acceptance range (absolute), else the relative band
    hi: float | None = None
    band: float = NANO_BAND
    profile: str = "p4-2006"


def calibrated_measurements() -> dict[str, list[tuple[str, str]]]:
    """Every measurement a bundled profile's constant was calibrated on (its ``calibrated_on`` field:
    ``group.test`` for every mode's row, ``group.test:mode`` for one row) -> [(profile, constant)]."""
    out: dict[str, list[tuple[str, str]]] = {}
    for name in bundled_profiles():
        for const, meas in sorted(load_profile(name).calibrations().items()):
            out.setdefault(meas, []).append((name, const))
    return dict(sorted(out.items()))


def role_of(test: str, mode: str) -> str:
    """``calibration`` when a profile's constant was calibrated on this row, else ``validation``."""
    cal = calibrated_measurements()
    return "calibration" if test in cal or f"{test}:{mode}" in cal else "validation"


def entries(groups: tuple[str, ...] = GROUPS) -> list[Entry]:
    """The validation set (every published number), in the order of docs/calibration.md."""
    for g in groups:
        if g not in GROUPS:
            raise ScenarioError("--groups", f"unknown group {g!r}; allowed: {', '.join(GROUPS)}")
    out = []
    if "nano" in groups:
        for test, pub in PUBLISHED.items():
            for mode in ("bt", "hvm-shadow"):
                lo, hi = NANO_RANGES.get((test, mode), (None, None))
                out.append(Entry("nano", test, mode, pub[mode], "cycles", "Adams & Agesen, ASPLOS'06, Section 6.3",
                                 role_of(test, mode), lo, hi))
    if "lmbench" in groups:
        for op, (lup, xen, vmw) in SOSP03.items():
            for mode, pub, system in (("pv32", xen, "Xen"), ("bt", vmw, "VMware Workstation"),
                                      ("uml", SOSP03_UML[op], "UML skas3")):
                ratio = round(pub / lup, 4)
                lo, hi = LMBENCH_RANGES.get((op, mode), (None, None))
                if (op, mode) in LMBENCH_FACTORS:
                    lo, hi = ratio / LMBENCH_FACTORS[op, mode], ratio * LMBENCH_FACTORS[op, mode]
                out.append(Entry("lmbench", op, mode, ratio, "x native",
                                 f"Barham et al., SOSP'03, Table 3 ({system} / L-UP)", role_of(f"lmbench.{op}", mode),
                                 lo, hi,
                                 LMBENCH_BAND, "xeon-2003"))
    return out


@dataclass
class Row:
    entry: Entry
    published: float
    predicted: float

    @property
    def deviation(self) -> float:
        return (self.predicted - self.published) / self.published

    @property
    def bounds(self) -> tuple[float, float]:
        e = self.entry
        if e.lo is not None and isinstance(e.published, str):  # offsets from pvsim's native value
            native = self.published - RELATIVE_TO_NATIVE[e.published]
            return native + e.lo, native + e.hi
        if e.lo is not None:
            return e.lo, e.hi
        return self.published * (1 - e.band), self.published * (1 + e.band)

    @property
    def passed(self) -> bool:
        lo, hi = self.bounds
        return lo <= self.predicted <= hi

    def band_text(self) -> str:
        e = self.entry
        if e.lo is not None and isinstance(e.published, str):
            return f"native+{e.lo:g}-{e.hi:g}"
        if e.lo is not None:
            return f">= {e.lo:g}" if e.hi == float("inf") else f"{e.lo:.4g}-{e.hi:.4g}"
        return f"+-{e.band:.0%}"

    def record(self) -> dict:
        e = self.entry
        return {"group": e.group, "test": e.test, "mode": e.mode, "unit": e.unit, "published": self.published,
                "predicted": round(self.predicted, 4), "deviation": round(self.deviation, 4), "band": self.band_text(),
                "result": "pass" if self.passed else "fail", "role": e.role, "source": e.source,
                "profile": e.profile, "figure": FIGURES[e.group], "command": COMMANDS[e.group],
                "pvsim_version": __version__}


def predict(groups: tuple[str, ...] = GROUPS, ops: int = 2000, seed: int = 0,
            progress: Callable[[str], None] | None = None) -> list[Row]:
    """Run what each entry needs (through Scenario -> build -> run, like the commands) and pair the
    predictions with the published numbers."""
    es = entries(groups)
    rows = []
    if "nano" in groups:
        v = {(r["workload"], r["mode"]): r["value"] for r in
             compare(list(PUBLISHED), ["native", "bt", "hvm-shadow"], "p4-2006", ops=ops, seed=seed, progress=progress)}
        for e in (e for e in es if e.group == "nano"):
            native = v[(e.test, "native")]
            off = RELATIVE_TO_NATIVE.get(e.published) if isinstance(e.published, str) else None
            pub = e.published if off is None else native + off
            rows.append(Row(e, float(pub), float(v[(e.test, e.mode)])))
    if "lmbench" in groups:
        v = {(r["workload"], r["mode"]): r["value"] for r in
             compare([f"lmbench.{n}" for n in SOSP03], ["native", "pv32", "bt", "uml"], "xeon-2003", ops=ops, seed=seed,
                     progress=progress)}
        for e in (e for e in es if e.group == "lmbench"):
            op = f"lmbench.{e.test}"
            rows.append(Row(e, float(e.published), v[(op, e.mode)] / v[(op, "native")]))
    return rows


def _figure_png(rows: list[Row], group: str) -> bytes:
    buf = io.BytesIO()
    validation_points([r.record() for r in rows if r.entry.group == group], buf, FIGURES[group])
    return buf.getvalue()


def summary(rows: list[Row]) -> dict:
    val = [r for r in rows if r.entry.role == "validation"]
    return {"entries": len(rows), "validation": len(val), "calibration": len(rows) - len(val),
            "validation_passed": sum(r.passed for r in val)}


def _case_lines(checks) -> list[str]:
    if not checks:
        return []
    out = ["## Visible cases 3, 4, 7 and 11 (shared/reference/calibration.md section 7)", "",
           "| case | check | profile | pvsim | band | result | note |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for c in checks:
        v = "-" if c.value is None else f"{c.value:.4g}"
        out.append(f"| {c.case} | {c.name} | {c.profile} | {v} | {c.band} | {c.result} | {c.note} |")
    return out + [""]


def markdown(rows: list[Row], checks: tuple = ()) -> str:
    s = summary(rows)
    out = [f"# pvsim against the published numbers (pvsim {__version__})", "",
           f"{s['entries']} entries: {s['validation']} validation ({s['validation_passed']} within their band), "
           f"{s['calibration']} calibration (a constant was fitted on them: shown, never counted).", "",
           "Bands: " + _BANDS, ""]
    for g in dict.fromkeys(r.entry.group for r in rows):
        out += [f"## {FIGURES[g]}", "", f"Reproduce: `{COMMANDS[g]}`", "",
                "| test | mode | published | pvsim | deviation | band | result | role | source |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in (r for r in rows if r.entry.group == g):
            d = r.record()
            out.append(f"| {d['test']} | {d['mode']} | {d['published']:g} | {d['predicted']:.4g} | "
                       f"{d['deviation']:+.1%} | {d['band']} | {d['result']} | {d['role']} | {d['source']} |")
        out.append("")
    out += _case_lines(checks)
    return "\n".join(out)


_BANDS = ("nanobenchmarks +-20 % (BT syscall: native + 1800-2300 cycles, calibration.md case 3); lmbench ratios the range docs/calibration.md states (pv32 null call 0.9-1.1, "
          "pv32 fork 1.5-2.2, pv32 exec 1.2-1.7, bt fork >= 5), uml null call and fork within a factor of 2 of the "
          "published ratio (issue 12), else +-30 % of the published ratio. The bands were "
          "set before the predictions were seen; no constant is fitted to a validation row.")


def html_page(rows: list[Row], checks: tuple = ()) -> str:
    """One self-contained page: the tables and the figures (PNG, inline)."""
    s = summary(rows)
    esc = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>pvsim validation report</title><style>",
             "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}"
             "td.n{text-align:right}tr.fail td{background:#fde8e8}tr.calibration td{color:#777;font-style:italic}"
             "code{background:#f4f4f4}", "</style></head><body>",
             f"<h1>pvsim against the published numbers</h1><p>pvsim {esc(__version__)}. {s['entries']} entries: "
             f"{s['validation']} validation, of which <b>{s['validation_passed']}</b> within their band; "
             f"{s['calibration']} calibration (a constant was fitted on them: shown in grey, never counted).</p>",
             f"<p>Bands: {esc(_BANDS)}</p>"]
    for g in dict.fromkeys(r.entry.group for r in rows):
        png = base64.b64encode(_figure_png(rows, g)).decode()
        parts.append(f"<h2>{esc(FIGURES[g])}</h2><p>Profile <code>{esc(next(r.entry.profile for r in rows if r.entry.group == g))}"
                     f"</code>; reproduce with <code>{esc(COMMANDS[g])}</code>.</p>"
                     f"<img alt='{esc(FIGURES[g])}' src='data:image/png;base64,{png}' style='max-width:100%'>")
        parts.append("<table><tr><th>test</th><th>mode</th><th>published</th><th>pvsim</th><th>deviation</th>"
                     "<th>band</th><th>result</th><th>role</th><th>source</th></tr>")
        for r in (r for r in rows if r.entry.group == g):
            d = r.record()
            cls = "calibration" if d["role"] == "calibration" else d["result"]
            parts.append(f"<tr class='{cls}'><td>{esc(d['test'])}</td><td>{esc(d['mode'])}</td>"
                         f"<td class='n'>{d['published']:g}</td><td class='n'>{d['predicted']:.4g}</td>"
                         f"<td class='n'>{d['deviation']:+.1%}</td><td>{esc(d['band'])}</td><td>{d['result']}</td>"
                         f"<td>{d['role']}</td><td>{esc(d['source'])}</td></tr>")
        parts.append("</table>")
    if checks:
        parts.append("<h2>Visible cases 3, 4, 7 and 11 (calibration.md section 7)</h2><table><tr><th>case</th>"
                     "<th>check</th><th>profile</th><th>pvsim</th><th>band</th><th>result</th><th>note</th></tr>")
        for c in checks:
            v = "-" if c.value is None else f"{c.value:.4g}"
            cls = "calibration" if c.passed is None else c.result
            parts.append(f"<tr class='{cls}'><td>{esc(c.case)}</td><td>{esc(c.name)}</td><td>{esc(c.profile)}</td>"
                         f"<td class='n'>{v}</td><td>{esc(c.band)}</td><td>{c.result}</td><td>{esc(c.note)}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------------
# The visible cases of shared/reference/calibration.md section 7 that are bands, orderings or exact
# counts rather than one published number each: 3 (null call by mode), 4 (process creation),
# 7 (2-D walk references) and 11 (proportional share). Each check runs the model.

#: The mode that case 4's ordering ends with; another task adds it to the mode table.
UML = "uml"
S_NS = 1_000_000_000
CASE_COMMANDS = {
    "3": "pvsim nanobench --modes native,bt,hvm-shadow --profile p4-2006; pvsim lmbench --modes native,pv32 "
         "--profile xeon-2003; pvsim lmbench --modes native,pv,hvm --profile modern",
    "4": "pvsim lmbench --modes native,pv32,bt[,uml] --profile xeon-2003",
    "7": "pytest tests/mm/test_walk.py -k exact_reference_counts",
    "11": "pytest tests/sched/test_sched_shares.py -s",
}
CASE_SOURCES = {"3": "calibration.md 7 case 3 (SOSP'03 Table 3, ASPLOS'06 6.3)",
                "4": "calibration.md 7 case 4 (SOSP'03 Table 3)",
                "7": "calibration.md 7 case 7 (2-D walk: (g+1)(h+1)-1)",
                "11": "calibration.md 7 case 11 (Cherkasova et al.; credit.c)"}


@dataclass(frozen=True)
class Check:
    """One check of a section-7 case: what was measured, its band, and the outcome (None = not run,
    e.g. a mode not yet in the mode table)."""
    case: str
    name: str
    profile: str
    value: float | None
    band: str
    passed: bool | None
    note: str = ""
    role: str = "validation"

    @property
    def result(self) -> str:
        return "n/a" if self.passed is None else ("pass" if self.passed else "fail")

    def record(self) -> dict:
        return {"group": f"case{self.case}", "test": self.name, "profile": self.profile, "predicted": self.value,
                "band": self.band, "result": self.result, "role": self.role, "note": self.note,
                "source": CASE_SOURCES[self.case], "command": CASE_COMMANDS[self.case], "pvsim_version": __version__}


def _ratio_rows(workloads: list[str], modes: list[str], profile: str, ops: int, seed: int, progress) -> dict:
    return {(r["workload"], r["mode"]): r["value"] for r in
            compare(workloads, modes, profile, ops=ops, seed=seed, progress=progress)}


def _in(x: float, lo: float, hi: float) -> bool:
    return lo <= x <= hi


def case3(ops: int = 2000, seed: int = 0, progress=None) -> list[Check]:
    nano = _ratio_rows(["nano.syscall"], ["native", "bt", "hvm-shadow"], "p4-2006", ops, seed, progress)
    old = _ratio_rows(["lmbench.null_call"], ["native", "pv32"], "xeon-2003", ops, seed, progress)
    new = _ratio_rows(["lmbench.null_call"], ["native", "pv", "hvm"], "modern", ops, seed, progress)
    n = nano[("nano.syscall", "native")]
    bt = nano[("nano.syscall", "bt")] - n
    hw1 = nano[("nano.syscall", "hvm-shadow")] / n
    pv32 = old[("lmbench.null_call", "pv32")] / old[("lmbench.null_call", "native")]
    pv64 = new[("lmbench.null_call", "pv")] / new[("lmbench.null_call", "native")]
    hw2 = new[("lmbench.null_call", "hvm")] / new[("lmbench.null_call", "native")]
    return [Check("3", "bt syscall - native (cycles)", "p4-2006", bt, "1800-2300", _in(bt, 1800, 2300)),
            Check("3", "hvm-shadow syscall / native", "p4-2006", hw1, "0.9-1.1", _in(hw1, 0.9, 1.1)),
            Check("3", "pv32 null call / native", "xeon-2003", pv32, "0.9-1.1", _in(pv32, 0.9, 1.1)),
            Check("3", "hvm null call / native", "modern", hw2, "0.9-1.1", _in(hw2, 0.9, 1.1)),
            Check("3", "pv (64-bit) null call / native", "modern", pv64, ">= 1.5", pv64 >= 1.5)]


def case4(ops: int = 2000, seed: int = 0, progress=None) -> list[Check]:
    modes = ["native", "pv32", "bt"] + ([UML] if UML in MODES else [])
    v = _ratio_rows(["lmbench.fork", "lmbench.exec"], modes, "xeon-2003", ops, seed, progress)
    r = {(w, m): v[(f"lmbench.{w}", m)] / v[(f"lmbench.{w}", "native")] for w in ("fork", "exec") for m in modes}
    out = [Check("4", "pv32 fork / native", "xeon-2003", r[("fork", "pv32")], "1.5-2.2", _in(r[("fork", "pv32")], 1.5, 2.2)),
           Check("4", "pv32 exec / native", "xeon-2003", r[("exec", "pv32")], "1.2-1.7", _in(r[("exec", "pv32")], 1.2, 1.7)),
           Check("4", "bt fork / native", "xeon-2003", r[("fork", "bt")], ">= 5", r[("fork", "bt")] >= 5)]
    for w in ("fork", "exec"):
        ok = 1.0 < r[(w, "pv32")] < r[(w, "bt")]
        out.append(Check("4", f"{w}: native < pv32 < bt", "xeon-2003", None, "ordering", ok,
                         f"pv32 {r[(w, 'pv32')]:.2f}x, bt {r[(w, 'bt')]:.2f}x"))
        if UML in MODES:
            u = r[(w, UML)]
            out.append(Check("4", f"{w}: bt << uml (uml >= 5 x bt)", "xeon-2003", u, ">= 5 x bt", u >= 5 * r[(w, "bt")]))
        else:
            out.append(Check("4", f"{w}: bt << uml", "xeon-2003", None, ">= 5 x bt", None,
                             "mode uml not yet modelled (not in guest_kernels/modes.py MODES)"))
    return out


#: (guest levels, guest leaf level, host levels, host leaf level) -> references per TLB miss
WALK_CASES = {"native 4-level": ("1d", 4, 1, 4, 1, 4), "2-D 4/4": ("2d", 4, 1, 4, 1, 24),
              "2-D 4/3": ("2d", 4, 1, 4, 2, 19), "2-D 3/3": ("2d", 4, 2, 4, 2, 15), "2-D 5/5": ("2d", 5, 1, 5, 1, 35)}


def case7() -> list[Check]:
    out = []
    cold = TLB(sets=(0, 0, 0), ways=(0, 0, 0))
    for name, (kind, gl, gleaf, hl, hleaf, refs) in WALK_CASES.items():
        setup, vas = build_translation_setup(kind, guest_levels=gl, guest_leaf=gleaf, host_levels=hl,
                                             host_leaf=hleaf, npages=40, rng=rng_for(3, kind))
        rows, slot, root, levels, two_d, h_root, h_levels = setup
        res = translate(rows, slot, vas, np.zeros(len(vas), bool), cold, root=root, levels=levels, two_d=two_d,
                        h_root=h_root, h_levels=h_levels)
        per = res[O_REFS] / res[O_MISSES]
        out.append(Check("7", f"{name}: references per TLB miss", "(structural)", float(per), f"= {refs}",
                         bool(per == refs)))
    return out


def _hogs(sched: str, weights: dict, caps: dict | None = None, until: int = 10 * S_NS, window: int | None = None):
    e = Engine(seed=0)
    r = HostRunner(e, make_scheduler(sched, None), 1)
    for d, w in weights.items():
        r.add_vcpu(d, 0, CpuHog(), weight=w, cap=(caps or {}).get(d, 0), affinity={0})
    mon = ShareMonitor(r, window) if window else None
    r.start()
    e.run(until + 1)
    return r, mon


def case11() -> list[Check]:
    out = []
    weights = {d: d for d in range(1, 9)}
    for sched in ("credit", "credit2"):
        r, _ = _hogs(sched, weights)
        st = r.stats()
        exp = expected_shares(weights, {}, {d: 1 for d in weights}, 1.0)
        rel = {d: (st.vcpu(d).cpu_ns / st.elapsed_ns - exp[d]) / exp[d] for d in weights}
        worst = max(rel, key=lambda d: abs(rel[d]))
        out.append(Check("11", f"(a) {sched}: weights 1..8, one pCPU, 10 s: worst relative share error",
                         "(scheduler)", rel[worst], "+-4 %", abs(rel[worst]) <= 0.04,
                         f"weight {worst}; weight 1 {rel[1]:+.1%}, weight 8 {rel[8]:+.1%}"))
    for sched in ("credit", "credit2"):
        r, mon = _hogs(sched, {1: 256, 2: 512}, until=11 * S_NS, window=S_NS)
        sh = mon.window_shares()[1][1:]  # the first second is warm-up (credit1 starts earning at a tick)
        err = float(np.abs((sh - np.array([1 / 3, 2 / 3])) / np.array([1 / 3, 2 / 3])).max())
        out.append(Check("11", f"(b) {sched}: 256/512, every 1 s window: worst relative error", "(scheduler)", err,
                         "<= 3 %", err <= 0.03))
        r, _ = _hogs(sched, {1: 256}, caps={1: 50})
        st = r.stats()
        share = st.vcpu(1).cpu_ns / st.elapsed_ns
        out.append(Check("11", f"(b) {sched}: cap 50, share of a pCPU over 10 s", "(scheduler)", share,
                         "<= 0.500 (to 0.1 point)", round(share, 3) <= 0.500))
    return out


def case_checks(ops: int = 2000, seed: int = 0, progress=None) -> list[Check]:
    """Every check of the visible section-7 cases 3, 4, 7 and 11, computed by running the model."""
    return case3(ops, seed, progress) + case4(ops, seed, progress) + case7() + case11()
