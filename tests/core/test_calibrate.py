"""pvsim calibrate: the lmbench summary round trip, the fit's round trip, and the written profile in use."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pvsim import calibrate as cal
from pvsim.cli import app
from pvsim.core.errors import ScenarioError
from pvsim.core.profile import load_profile
from pvsim.workloads.lmbench import SOSP03

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "lmbench-sosp03-native.txt"


def test_the_sample_is_the_sosp03_native_column():
    m = cal.parse_lmbench(SAMPLE.read_text())
    assert m.mhz == 2400 and m.latencies_us == {k: v[0] for k, v in SOSP03.items()}


def test_a_blank_column_is_skipped_and_garbage_is_one_line():
    lat = {k: v[0] for k, v in SOSP03.items() if k != "stat"}
    assert "stat" not in cal.parse_lmbench(cal.format_lmbench("h", 2000, lat)).latencies_us
    with pytest.raises(ScenarioError, match="Mhz"):
        cal.parse_lmbench("hello\nworld\n")


def test_constants_from_a_known_profile_come_back_within_2_percent(tmp_path):
    base = load_profile("xeon-2003")
    factors = {"native.syscall_cycles": 1.3, "native.context_switch_cycles": 0.8, "native.page_fault_cycles": 1.2,
               "native.walk_ref_cycles": 1.25}
    true = {k: base.value(k) * f for k, f in factors.items()}
    run = cal._Runner("xeon-2003", 3.1, list(SOSP03), 50)
    try:
        cycles = run(true)
    finally:
        run.close()
    lat = {o: c / 1000.0 / 3.1 for o, c in zip(SOSP03, cycles)}
    text = cal.format_lmbench("box", 3100, lat)
    fit = cal.fit(cal.parse_lmbench(text), "xeon-2003", n_ops=50)
    assert set(true) <= set(fit.fitted), fit.kept
    for k, v in fit.fitted.items():
        want = true.get(k, base.value(k))
        assert abs(v / want - 1) <= 0.02, (k, v, want)
    assert max(abs(r) for r in fit.residuals.values()) < 0.01


def test_the_written_profile_is_accepted_by_lmbench(tmp_path):
    prof = tmp_path / "mine.toml"
    r = CliRunner().invoke(app, ["calibrate", str(SAMPLE), "--out", str(prof), "--ops", "50"])
    assert r.exit_code == 0, r.output
    text = prof.read_text()
    assert 'base = "xeon-2003"' in text and "fitted on lmbench-sosp03-native.txt" in text
    p = load_profile(str(prof))
    assert p.clock_ghz == 2.4 and p.calibrations()
    r = CliRunner().invoke(app, ["lmbench", "--profile", str(prof), "--ops", "50", "--modes", "native,pv32"])
    assert r.exit_code == 0, r.output


def test_bad_calibrate_input_is_one_line(tmp_path):
    bad = tmp_path / "x.txt"
    bad.write_text("not lmbench")
    for args, field in (([str(bad), "--out", str(tmp_path / "p.toml")], "x.txt"),
                        ([str(SAMPLE), "--out", str(tmp_path / "p.txt")], "--out"),
                        ([str(SAMPLE), "--out", str(tmp_path / "p.toml"), "--base", "nope"], "--base")):
        r = CliRunner().invoke(app, ["calibrate", *args])
        assert r.exit_code == 2 and field in r.output and len(r.output.strip().splitlines()) == 1, (args, r.output)
        assert not (tmp_path / "p.toml").exists()
