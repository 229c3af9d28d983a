"""Run estimates for compare, lmbench and nanobench (issue 16), as for run and sweep."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pvsim.cli import app
from pvsim.compare import plan
from pvsim.estimate import estimate, estimate_many

COMMANDS = {
    "compare": ["compare", "-w", "lmbench.null_call", "-m", "pv"],
    "lmbench": ["lmbench", "-m", "pv32"],
    "nanobench": ["nanobench", "-m", "bt"],
}


def invoke(args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_huge_ops_refused_with_the_estimate(cmd, tmp_path):
    r = invoke([*COMMANDS[cmd], "--ops", 10 ** 12, "--json", tmp_path / "o.json"])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("pvsim: error: estimate: ") and "days" in lines[0], r.output
    assert "--no-limit" in lines[0] and "60 min" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_no_limit_lifts_the_limit(tmp_path):
    base = [*COMMANDS["compare"], "--ops", 20]
    r = invoke([*base, "--max-wall-s", 1e-6])
    assert r.exit_code == 2 and "past the limit" in r.output, r.output
    r = invoke([*base, "--max-wall-s", 1e-6, "--no-limit", "--json", tmp_path / "o.json"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o.json").exists()


def test_estimate_many_adds_up_its_runs():
    scs = [sc for _w, _m, sc in plan(["lmbench.null_call"], ["pv"], "modern", ops=10 ** 9)]
    one = estimate(scs[0])
    many = estimate_many(scs)
    assert len(scs) == 2  # native is always run as the reference
    assert many.known and many.sim_ns_needed > 1.5 * one.sim_ns_needed
