"""``pvsim xenalyze TRACE``: the command (registered by :mod:`pvsim.cli`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from pvsim.core.errors import ScenarioError
from pvsim.core.version import __version__
from pvsim.results import Outputs, check_output_path
from pvsim.trace.xenalyze import Summary
from pvsim.trace.xentrace import read_trace


def xenalyze(trace: Path = typer.Argument(..., help="a xentrace file (pvsim run --trace FILE)"),
             cpu_hz: Optional[float] = typer.Option(None, "--cpu-hz", help="TSC rate in Hz (default: the rate "
                                                    "the trace records; xenalyze's 2.4e9 if it has none)"),
             json_out: Optional[Path] = typer.Option(None, "--json", help="also write the summary as JSON "
                                                     "('-': print JSON instead of the text)"),
             summary: bool = typer.Option(True, "--summary/--no-summary", help="print the summary (xenalyze "
                                          "--summary)")):
    """Summarise a xentrace file in the layout of xenalyze --summary (computed from the file alone)."""
    to_stdout = json_out is not None and str(json_out) == "-"
    if json_out is not None and not to_stdout:
        check_output_path(json_out, "--json")
    if cpu_hz is not None and not cpu_hz > 0:
        raise ScenarioError("--cpu-hz", f"must be a positive rate in Hz, got {cpu_hz}")
    s = Summary(read_trace(trace, "TRACE"), cpu_hz)
    doc = {"pvsim_version": __version__, "trace": str(trace), **s.to_dict()}
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    if to_stdout:
        typer.echo(text, nl=False)
        return
    with Outputs() as outs:
        if json_out is not None:
            outs.write(json_out, text)
    if summary:
        typer.echo(s.text(), nl=False)
