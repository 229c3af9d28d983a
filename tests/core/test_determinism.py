"""Same scenario and seed: byte-identical JSON; another seed changes stochastic results."""

from pathlib import Path

from typer.testing import CliRunner

from pvsim.cli import app

ROOT = Path(__file__).resolve().parents[2]


def run_json(tmp_path, name, *extra):
    out = tmp_path / name
    r = CliRunner().invoke(app, ["run", str(ROOT / "examples" / "consolidation.toml"), "--quiet", "--json", str(out),
                                 *extra])
    assert r.exit_code == 0, r.output
    return out.read_bytes()


def test_same_seed_byte_identical(tmp_path):
    assert run_json(tmp_path, "a.json") == run_json(tmp_path, "b.json")


def test_other_seed_differs(tmp_path):
    assert run_json(tmp_path, "a.json") != run_json(tmp_path, "c.json", "--seed", "7")


def test_in_process_and_cli_agree(tmp_path):
    from pvsim.scenario import Scenario
    from pvsim.system import build

    sc = Scenario.from_toml(ROOT / "examples" / "consolidation.toml")
    text = build(sc).run().to_json()
    assert text.encode() == run_json(tmp_path, "d.json")
