"""Help text and the output pipe: TOML table names in option help survive Rich's markup (they used to
print as ``[]`` and ``(, , )``), and a reader that closes the pipe early (``pvsim convert --help | head``)
ends the command without a traceback (the except clause named an ``Abort`` that Typer's vendored
Click does not have, so any exit through it raised AttributeError)."""

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from pvsim.cli import app

ROOT = Path(__file__).resolve().parents[2]


def _help(*cmd: str) -> str:
    r = CliRunner().invoke(app, [*cmd, "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    return r.output


def test_toml_table_names_are_printed_in_help():
    assert "[[failures]]" in _help("failover") and "[ha]" in _help("failover")
    assert "[ha]" in _help("availability")
    assert "[[migrations]]" in _help("run") and "[[migrations]]" in _help("sweep")
    assert "[scheduler]" in _help("run") and "[scheduler]" in _help("xl", "list")


def test_a_closed_output_pipe_is_no_traceback():
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the help is written
    try:
        p = subprocess.run([sys.executable, "-m", "pvsim", "convert", "--help"], stdout=w, stderr=subprocess.PIPE,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, timeout=300)
    finally:
        os.close(w)
    assert b"Traceback" not in p.stderr, p.stderr.decode()[-2000:]
    assert p.returncode == 1
