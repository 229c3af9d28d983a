"""Every PNG `make demo` writes, written by the demo's own commands (read from the Makefile, with tiny
runs) and opened: it exists, it is a PNG a paper can take (width within MAX_WIDTH_IN at DPI), and the
figures of one command use the palette's colour for each of its modes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import matplotlib.image as mpimg
import pytest
from typer.testing import CliRunner

from pvsim import plots
from pvsim.cli import app

ROOT = Path(__file__).resolve().parents[2]


def demo_commands() -> list[list[str]]:
    text = (ROOT / "Makefile").read_text()
    body = text.split("\ndemo:", 1)[1].split("\n\n", 1)[0].replace("\\\n", " ")
    cmds = []
    for line in body.splitlines():
        m = re.search(r"\$\(VENV\)/bin/pvsim (.*)$", line.strip())
        if m and "--plot" in m.group(1):
            cmds.append(shlex.split(m.group(1)))
    return cmds


def test_the_demo_has_plots():
    names = {c[0] for c in demo_commands()}
    assert {"compare", "lmbench", "nanobench"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("cmd", demo_commands(), ids=lambda c: c[0])
def test_every_demo_png_opens_at_a_paper_size(cmd, tmp_path):
    args = [a.replace("out/", f"{tmp_path}/") for a in cmd]
    if "--workload" in args:  # the demo's comparison, on two of its workloads
        i = args.index("--workload")
        args[i + 1] = ",".join(args[i + 1].split(",")[:2])
    r = CliRunner().invoke(app, [*args, "--ops", "2", "--no-limit"])
    assert r.exit_code == 0, r.output
    pngs = sorted(tmp_path.glob("*.png"))
    want = Path(args[args.index("--plot") + 1]).name
    assert want in {p.name for p in pngs}
    if args[0] == "compare":
        assert Path(want).stem + "-breakdown.png" in {p.name for p in pngs}
    for p in pngs:
        img = mpimg.imread(p)
        h, w = img.shape[:2]
        assert 3.5 * plots.DPI - 1 <= w <= plots.MAX_WIDTH_IN * plots.DPI, (p.name, w)
        assert 200 <= h <= 5 * plots.DPI, (p.name, h)
