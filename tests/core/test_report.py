"""pvsim report: a row for every published number of the validation set, built from a subset here."""

from typer.testing import CliRunner

from pvsim import validation
from pvsim.cli import app
from pvsim.workloads import CALIBRATION_SET, PUBLISHED
from pvsim.workloads.lmbench import SOSP03


def test_the_set_has_every_published_number_once():
    es = validation.entries()
    assert len(es) == 2 * len(PUBLISHED) + 3 * len(SOSP03)
    assert len({(e.group, e.test, e.mode) for e in es}) == len(es)
    cal = {(e.test, e.mode) for e in es if e.role == "calibration"}
    assert {t for t, _m in cal if all((t, m) in cal for m in ("bt", "hvm-shadow"))} == CALIBRATION_SET
    assert cal == {(t, m) for t in CALIBRATION_SET for m in ("bt", "hvm-shadow")} | {
        ("nano.call_ret", "bt"), ("nano.in", "hvm-shadow"), ("ctx_2p_0k", "pv32")}


def test_bands_pass_and_fail():
    e = validation.entries(("lmbench",))
    fork_bt = next(x for x in e if x.test == "fork" and x.mode == "bt")
    assert validation.Row(fork_bt, 7.95, 5.1).passed and not validation.Row(fork_bt, 7.95, 4.9).passed
    stat = next(x for x in e if x.test == "stat" and x.mode == "pv32")
    assert validation.Row(stat, 1.0, 1.29).passed and not validation.Row(stat, 1.0, 1.31).passed


def test_report_from_a_subset(tmp_path):
    h, m, j = tmp_path / "r.html", tmp_path / "r.md", tmp_path / "r.json"
    r = CliRunner().invoke(app, ["report", "--groups", "nano", "--ops", "200", "--html", str(h), "--markdown", str(m),
                                 "--json", str(j), "--no-cases"])
    assert r.exit_code == 0, r.output
    page = h.read_text()
    assert page.count("<tr class=") == 2 * len(PUBLISHED)
    assert "data:image/png;base64," in page and "pvsim nanobench" in page
    md = m.read_text()
    assert md.count("| nano.") == 2 * len(PUBLISHED) and "calibration" in md


def test_case_checks_are_shown_in_both_pages():
    checks = (validation.Check("7", "2-D 4/4: references per TLB miss", "(structural)", 24.0, "= 24", True),
              validation.Check("4", "fork: bt << uml", "xeon-2003", None, ">= 5 x bt", None, "not yet modelled"))
    md = validation.markdown([], checks)
    assert "| 7 | 2-D 4/4: references per TLB miss | (structural) | 24 | = 24 | pass |" in md
    assert "| 4 | fork: bt << uml | xeon-2003 | - | >= 5 x bt | n/a | not yet modelled |" in md
    page = validation.html_page([], checks)
    assert page.count("<tr class=") == 2 and "n/a" in page
    assert checks[1].record()["result"] == "n/a" and checks[0].record()["group"] == "case7"


def test_an_unknown_group_is_one_line(tmp_path):
    r = CliRunner().invoke(app, ["report", "--groups", "nano,spec", "--html", str(tmp_path / "r.html")])
    assert r.exit_code == 2 and "--groups" in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()
