"""docs/calibration.md's generated tables are in sync with the code (tools/calibration_doc.py), and the
calibration/validation roles follow the profiles' ``calibrated_on`` fields."""

import importlib.util
import pathlib

from pvsim import validation
from pvsim.core.profile import bundled_profiles, load_profile

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("calibration_doc", ROOT / "tools" / "calibration_doc.py")
calibration_doc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(calibration_doc)


def test_calibration_table_lists_every_calibrated_constant():
    table = calibration_doc.calibration_table()
    for name in bundled_profiles():
        for const, meas in load_profile(name).calibrations().items():
            assert f"| `{const}` | {name} |" in table and f"`{meas}`" in table


def test_rows_calibrated_on_are_not_validation():
    roles = {(e.group, e.test, e.mode): e.role for e in validation.entries()}
    assert roles[("nano", "nano.cr8wr", "hvm-shadow")] == "calibration"
    assert roles[("nano", "nano.call_ret", "bt")] == "calibration"
    assert roles[("nano", "nano.call_ret", "hvm-shadow")] == "validation"
    assert roles[("nano", "nano.in", "hvm-shadow")] == "calibration"
    assert roles[("nano", "nano.in", "bt")] == "validation"
    assert roles[("lmbench", "ctx_2p_0k", "pv32")] == "calibration"
    cal = validation.calibrated_measurements()
    for (g, t, m), role in roles.items():
        test = t if g == "nano" else f"{g}.{t}"
        assert (role == "calibration") == (test in cal or f"{test}:{m}" in cal)


def test_committed_doc_is_in_sync_with_the_generator():
    text = calibration_doc.DOC.read_text()
    assert calibration_doc.render(text, calibration_doc.sections()) == text, \
        "docs/calibration.md is stale: run python tools/calibration_doc.py"
