"""Usage errors of every command (issue 16): one line ``pvsim: error: <option>: ...``, exit 2, no box.

Walks the real command tree, so a command added later is covered without editing this file."""

from __future__ import annotations

import pytest
import typer.main
from typer.testing import CliRunner

from pvsim.cli import app

ROOT = typer.main.get_command(app)


def _commands(cmd, path=()):
    subs = getattr(cmd, "commands", None)
    if subs:
        for name, sub in sorted(subs.items()):
            yield from _commands(sub, (*path, name))
    else:
        yield path, cmd


COMMANDS = list(_commands(ROOT))
VALUE_OPTIONS = [(path, p) for path, cmd in COMMANDS for p in cmd.params
                 if p.param_type_name == "option" and not p.is_flag and not getattr(p, "count", False)]


def one_line(r, *needles):
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1, r.output
    assert lines[0].startswith("pvsim: error: "), r.output
    for n in needles:
        assert n in lines[0], (n, r.output)
    assert "Usage:" not in r.output and "Traceback" not in r.output and "╭" not in r.output


def invoke(args):
    return CliRunner().invoke(app, list(args))


def test_the_tree_has_every_command():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"run", "compare", "lmbench", "nanobench", "sweep", "xenalyze", "xl create", "xl sched-credit"} <= names
    assert len(VALUE_OPTIONS) > 50


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_unknown_option(path):
    one_line(invoke([*path, "--no-such-option"]), "--no-such-option: unknown option", " ".join(path))


@pytest.mark.parametrize("path,opt", VALUE_OPTIONS, ids=lambda x: " ".join(x) if isinstance(x, tuple) else x.opts[0])
def test_option_without_its_value(path, opt):
    flag = opt.opts[0]
    one_line(invoke([*path, flag]), f"{flag}: needs a value")


@pytest.mark.parametrize("path,opt", [(p, o) for p, o in VALUE_OPTIONS if str(o.bare_type()) in ("int", "float")],
                         ids=lambda x: " ".join(x) if isinstance(x, tuple) else x.opts[0])
def test_number_option_with_a_word(path, opt):
    flag = [o for o in opt.opts if o.startswith("--")][0]
    one_line(invoke([*path, flag, "many"]), f"{flag}: invalid value")


def test_unknown_command_and_missing_argument():
    one_line(invoke(["frobnicate"]), "command: No such command 'frobnicate'")
    one_line(invoke(["xl", "frobnicate"]), "pvsim xl --help")
    one_line(invoke(["run"]), "SCENARIO: missing argument")
    one_line(invoke(["compare"]), "--workload: missing (required)")
    one_line(invoke(["xenalyze", "a", "b"]), "unexpected extra argument")


def test_help_still_prints_and_exits_0():
    r = invoke([])
    assert r.exit_code == 0 and "Usage" in r.output
    r = invoke(["run", "--help"])
    assert r.exit_code == 0 and "--trace" in r.output
