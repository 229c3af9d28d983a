"""Regenerate the generated parts of docs/calibration.md: the calibration table (from the bundled
profiles' ``calibrated_on`` fields) and the validation table (every visible case, computed afresh by
:mod:`pvsim.validation`). Each lives between ``<!-- BEGIN GENERATED: name -->`` and
``<!-- END GENERATED: name -->``; the rest of the page is hand-written.

Usage: ``python tools/calibration_doc.py`` rewrites the page; ``--check`` exits 1 if it is stale
(tests/test_calibration_doc.py runs the same comparison).
"""

from __future__ import annotations

import pathlib
import re
import sys

from pvsim import validation
from pvsim.core.profile import load_profile

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "calibration.md"


def calibration_table() -> str:
    out = ["| constant | profile | value | calibrated on (the one measurement; shown as calibration, never counted) |",
           "| --- | --- | --- | --- |"]
    for meas, items in validation.calibrated_measurements().items():
        for prof, const in items:
            out.append(f"| `{const}` | {prof} | {load_profile(prof).value(const):g} | `{meas}` |")
    return "\n".join(out)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def validation_table(rows: list, checks: list) -> str:
    val = [r for r in rows if r.entry.role == "validation"]
    cal = len(rows) - len(val)
    ok = sum(r.passed for r in val)
    cv = [c for c in checks if c.passed is not None]
    out = [f"Published-number rows: {len(val)} validation, {ok} within their band, {len(val) - ok} misses; "
           f"{cal} calibration rows (shown, not counted). Section-7 checks: {len(cv)} run, "
           f"{sum(c.passed for c in cv)} pass, {sum(not c.passed for c in cv)} fail, "
           f"{len(checks) - len(cv)} not yet modelled.", "",
           "| case / figure | test | mode | profile | published | pvsim | band | result | role |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        d = r.record()
        out.append(f"| {validation.FIGURES[r.entry.group]} | {d['test']} | {d['mode']} | {d['profile']} | "
                   f"{d['published']:g} | {d['predicted']:.4g} | {d['band']} | {d['result']} | {d['role']} |")
    for c in checks:
        shown = _num(c.value) + (f" ({c.note})" if c.note else "")
        out.append(f"| case {c.case} | {c.name} | - | {c.profile} | - | {shown} | {c.band} | {c.result} | {c.role} |")
    return "\n".join(out)


def sections() -> dict[str, str]:
    return {"calibration": calibration_table(),
            "validation": validation_table(validation.predict(), validation.case_checks())}


def render(text: str, parts: dict[str, str]) -> str:
    for name, body in parts.items():
        pat = re.compile(rf"(<!-- BEGIN GENERATED: {name} -->\n).*?(<!-- END GENERATED: {name} -->)", re.S)
        if not pat.search(text):
            raise SystemExit(f"docs/calibration.md: marker for {name!r} missing")
        text = pat.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)
    return text


def main(argv: list[str]) -> int:
    text = DOC.read_text()
    new = render(text, sections())
    if "--check" in argv:
        if new != text:
            print("docs/calibration.md is stale: run python tools/calibration_doc.py")
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
