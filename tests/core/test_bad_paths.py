"""Bad input that used to escape as a traceback: one line, exit 2, nothing left behind."""

from typer.testing import CliRunner

from pvsim.cli import app

GOOD = '[host]\npcpus = 1\n[run]\nops = 5\n[[domains]]\nname = "g"\nmode = "pv"\nworkload = "lmbench.null_call"\n'


def _one_line(r, needle):
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("pvsim: error: ") and needle in lines[0], r.output


def test_a_directory_as_the_scenario(tmp_path):
    _one_line(CliRunner().invoke(app, ["run", str(tmp_path)]), "not a file")
    _one_line(CliRunner().invoke(app, ["sweep", str(tmp_path)]), "not a file")


def test_a_non_utf8_scenario(tmp_path):
    f = tmp_path / "s.toml"
    f.write_bytes(b"\xff\xfe\x00bad")
    _one_line(CliRunner().invoke(app, ["run", str(f)]), "UTF-8")


def test_a_negative_seed(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(GOOD)
    _one_line(CliRunner().invoke(app, ["run", str(f), "--seed", "-1"]), "--seed")
    _one_line(CliRunner().invoke(app, ["run", str(f), "--seed", str(2 ** 63)]), "--seed")


def test_outputs_pointing_at_a_directory_leave_nothing_behind(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(GOOD)
    d = tmp_path / "outdir"
    d.mkdir()
    _one_line(CliRunner().invoke(app, ["run", str(f), "--json", str(d)]), "--json")
    _one_line(CliRunner().invoke(app, ["run", str(f), "--json", str(tmp_path / "o.json"), "--csv", str(d)]), "--csv")
    _one_line(CliRunner().invoke(app, ["compare", "--workload", "lmbench.null_call", "--modes", "pv", "--ops", "5",
                                       "--plot", str(d)]), "--plot")
    _one_line(CliRunner().invoke(app, ["run", str(f), "--json", str(tmp_path / "no" / "o.json")]), "does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outdir", "s.toml"]
    assert list(d.iterdir()) == []
