"""Fuzzing the loaders (issue 16): Hypothesis-made scenario, profile and workload files and CLI
arguments. Each case either succeeds, or prints one line ``pvsim: error: ...`` with exit 2 and
leaves no file behind; never a traceback."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pvsim.cli import app

GOOD = ('seed = 1\n[host]\npcpus = 2\nmemory_mib = 4096\nprofile = "modern"\n[run]\nops = 5\n'
        '[[domains]]\nname = "g"\nmode = "pv"\nworkload = "lmbench.null_call"\nvcpus = 1\ncpus = "all"\n'
        'options = { batch = 16 }\n')
USER_WL = ('[[workloads]]\nname = "mine"\nthreads = 1\nsteps = [{ cpu = { ns = 1000 } }]\n')
VALUES = st.one_of(st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=False), st.booleans(),
                   st.text(max_size=12).map(lambda s: '"' + s.replace("\\", "").replace('"', "") + '"'),
                   st.sampled_from(['"0-100000000000"', "{}", "[]", '"all"', "1e12", '""', "{ x = 1 }", "[1, 2]"]))
KEYS = st.sampled_from(["seed", "pcpus", "memory_mib", "profile", "ops", "duration_ms", "warmup_ms", "name",
                        "mode", "workload", "vcpus", "cpus", "options", "weight", "cap", "threads", "steps"])


def _edit(text: str, key: str, value) -> str:
    lines = text.splitlines()
    for i, ln in enumerate(lines):
        if ln.split("=")[0].strip() == key:
            lines[i] = f"{key} = {value}"
            return "\n".join(lines) + "\n"
    return text + f"{key} = {value}\n"


def _check(args, folder: Path):
    before = sorted(p.name for p in folder.iterdir())
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    if r.exit_code == 0:
        return True
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("pvsim: error: "), r.output
    assert sorted(p.name for p in folder.iterdir()) == before, "files left behind"
    return False


FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=3), st.booleans(), st.binary(max_size=6))
def test_fuzzed_scenario_files(edits, user_wl, junk):
    text = GOOD + (USER_WL if user_wl else "")
    for k, v in edits:
        text = _edit(text, k, v)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        f = d / "s.toml"
        f.write_bytes(text.encode() + (junk if len(junk) % 3 == 0 else b""))
        _check(["run", f, "--json", d / "o.json", "--max-wall-s", "20", "-q"], d)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["base", "clock_ghz", "name", "description", "cpu.syscall_cycles",
                                           "io.ring_slot_cycles", "nonsense"]), VALUES), min_size=1, max_size=3))
def test_fuzzed_profile_files(edits):
    text = 'base = "modern"\n'
    for k, v in edits:
        text = _edit(text, k, v)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        p = d / "p.toml"
        p.write_text(text)
        _check(["compare", "--workload", "lmbench.null_call", "--modes", "pv", "--ops", "3", "--profile", p,
                "--json", d / "o.json"], d)


ARGS = st.lists(st.sampled_from(["--seed", "-1", str(2 ** 64), "--ops", "0", "1e3", "--modes", "pv,nope", "x",
                                 "--workload", "lmbench.null_call", "--duration-ms", "-5", "--pcpus", "0", "99999",
                                 "--json", "/proc/x.json", "--csv", ".", "--profile", "", "--mmu", "bogus"]),
                max_size=6)


@FUZZ
@given(st.sampled_from(["compare", "lmbench", "nanobench", "run", "sweep", "list"]), ARGS)
def test_fuzzed_cli_arguments(cmd, args):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        f = d / "s.toml"
        f.write_text(GOOD)
        base = [cmd, f] if cmd in ("run", "sweep") else [cmd, "modes"] if cmd == "list" else \
            [cmd, "--ops", "3", "--modes", "native"] + (["--workload", "lmbench.null_call"] if cmd == "compare" else [])
        here = os.getcwd()
        os.chdir(d)  # an argument taken as a file name (e.g. "--json --csv") is written in the temp folder
        try:
            r = CliRunner().invoke(app, [str(a) for a in base + args])
        finally:
            os.chdir(here)
        assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
        assert r.exit_code in (0, 2), r.output
        if r.exit_code == 2:
            # pvsim's own one-line error, or click's usage error for a malformed command line
            # (an option without its argument): exit 2, no traceback either way
            lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
            assert (len(lines) == 1 and lines[0].startswith("pvsim: error: ")) or "Error" in r.output, r.output
        if r.exit_code != 0:
            assert sorted(p.name for p in d.iterdir()) == ["s.toml"], "files left behind"
