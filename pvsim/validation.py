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
read by it. Simplification: the memory, I/O and scheduler checks of
``docs/calibration.md`` are identities and bands of the test suite, not published numbers, and are
not in the report.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from typing import Callable

from pvsim.compare import compare
from pvsim.core.errors import ScenarioError
from pvsim.core.version import __version__
from pvsim.plots import validation_points
from pvsim.workloads import CALIBRATION_SET, PUBLISHED
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
                                 "calibration" if test in CALIBRATION_SET else "validation", lo, hi))
    if "lmbench" in groups:
        for op, (lup, xen, vmw) in SOSP03.items():
            for mode, pub, system in (("pv32", xen, "Xen"), ("bt", vmw, "VMware Workstation"),
                                      ("uml", SOSP03_UML[op], "UML skas3")):
                ratio = round(pub / lup, 4)
                lo, hi = LMBENCH_RANGES.get((op, mode), (None, None))
                if (op, mode) in LMBENCH_FACTORS:
                    lo, hi = ratio / LMBENCH_FACTORS[op, mode], ratio * LMBENCH_FACTORS[op, mode]
                out.append(Entry("lmbench", op, mode, ratio, "x native",
                                 f"Barham et al., SOSP'03, Table 3 ({system} / L-UP)", "validation", lo, hi,
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


def markdown(rows: list[Row]) -> str:
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
    return "\n".join(out)


_BANDS = ("nanobenchmarks +-20 % (BT syscall: native + 1800-2300 cycles, calibration.md case 3); lmbench ratios the range docs/calibration.md states (pv32 null call 0.9-1.1, "
          "pv32 fork 1.5-2.2, pv32 exec 1.2-1.7, bt fork >= 5), uml null call and fork within a factor of 2 of the "
          "published ratio (issue 12), else +-30 % of the published ratio. The bands were "
          "set before the predictions were seen; no constant is fitted to a validation row.")


def html_page(rows: list[Row]) -> str:
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
    parts.append("</body></html>\n")
    return "".join(parts)
