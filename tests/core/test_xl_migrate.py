"""pvsim xl migrate / save / restore: the in-run migration moves the domain, names are checked before
anything runs, save -> restore round-trips, a truncated image is refused (exit 2, one line)."""

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pvsim.xl import app
from pvsim.xlsave import read

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples" / "migrate_in_run.toml"
run = CliRunner().invoke


@pytest.fixture(scope="module")
def scen(tmp_path_factory):
    """The example without its own [[migrations]] (the verb adds the migration)."""
    d = tmp_path_factory.mktemp("xlmig")
    text = re.sub(r"\[\[migrations\]\].*", "", EX.read_text(), flags=re.S)
    p = d / "s.toml"
    p.write_text(text)
    return d, str(p)


@pytest.fixture(scope="module")
def migrated(scen):
    d, s = scen
    out = []
    for k in range(2):
        js = d / f"m{k}.json"
        r = run(app, ["migrate", s, "app", "h2", "--at-ms", "30", "--json", str(js), "--csv", str(d / "m.csv")])
        assert r.exit_code == 0, r.output
        out.append(json.loads(js.read_text()))
    return out


def test_migrate_moves_the_domain(migrated):
    doc = migrated[0]
    rows = doc["results"]
    m = next(x for x in rows if x["kind"] == "migration")
    assert m["state"] == "done" and m["from"] == "h1" and m["to"] == "h2" and m["rounds"] >= 1
    assert 30 <= m["start_ms"] and m["downtime_ms"] > 0 and m["total_ms"] > m["downtime_ms"]
    lists = [x for x in rows if x["kind"] == "list"]
    assert any(x["host"] == "h2" and x["name"] == "app" and x["time_s"] > 0 for x in lists)
    assert not any(x["host"] == "h1" and x["name"] == "app" for x in lists)
    assert doc["view"]["changes"][0]["change"] == "migrate app h2"


def test_migrate_same_seed_same_results(migrated):
    a, b = migrated
    assert a["results"] == b["results"]


@pytest.mark.parametrize("args, field", [(["nope", "h2"], "DOM"), (["app", "h9"], "HOST"), (["app", "h1"], "HOST"),
                                         (["app", "h2", "--at-ms", "-5"], "--at-ms")])
def test_migrate_bad_names_exit_2_before_running(scen, args, field, monkeypatch):
    _d, s = scen
    monkeypatch.setattr("pvsim.system.System.run", lambda *a, **k: pytest.fail("ran"))
    r = run(app, ["migrate", s, *args])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pvsim: error: {field}")


@pytest.fixture(scope="module")
def saved(scen):
    d, s = scen
    img, js = d / "app.img", d / "save.json"
    r = run(app, ["save", s, "app", str(img), "--at-ms", "40", "--json", str(js)])
    assert r.exit_code == 0, r.output
    return img, json.loads(js.read_text())


def test_save_writes_an_image(saved):
    img, doc = saved
    row = doc["results"][0]
    body = read(img)
    assert row["kind"] == "save" and row["pages"] == 64 * 256 == body["pages"]
    assert body["stream_bytes"] >= body["pages"] * 4096 and row["save_ms"] > 0
    # pages through the stream at the link's rate: the save lasts at least the bytes' serialisation
    assert row["save_ms"] >= body["stream_bytes"] * 8 / (row["rate_mbps"] * 1e6) * 1e3 * 0.999
    assert body["progress"]["units_done"] > 0
    assert not list(img.parent.glob(".app.img.*.tmp"))
    assert not any(x["kind"] == "list" and x["name"] == "app" for x in doc["results"])


def test_restore_round_trips(scen, saved):
    d, s = scen
    img, sdoc = saved
    js = d / "restore.json"
    r = run(app, ["restore", s, str(img), "--at-ms", "10", "--json", str(js)])
    assert r.exit_code == 0, r.output
    rows = json.loads(js.read_text())["results"]
    row = rows[0]
    assert row["kind"] == "restore" and row["config"] == read(img)["domain"]
    assert row["running_from_ms"] > 10
    app_row = next(x for x in rows if x["kind"] == "list" and x["name"] == "app")
    assert app_row["host"] == "h1" and app_row["time_s"] > 0


def test_restore_refuses_truncated_and_foreign(scen, saved):
    d, s = scen
    img, _ = saved
    cut = d / "cut.img"
    cut.write_bytes(img.read_bytes()[:-10])
    foreign = d / "foreign.img"
    foreign.write_bytes(b"Xen saved domain, xl format\n \0 \r" + b"\0" * 64)
    for f in (cut, foreign):
        r = run(app, ["restore", s, str(f), "--json", str(d / "never.json")])
        assert r.exit_code == 2
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pvsim: error: FILE")
        assert not (d / "never.json").exists()


def test_migrate_no_live_is_one_suspended_round(scen):
    d, s = scen
    js = d / "nl.json"
    r = run(app, ["migrate", s, "app", "h2", "--at-ms", "30", "--no-live", "--json", str(js)])
    assert r.exit_code == 0, r.output
    rows = json.loads(js.read_text())["results"]
    m = next(x for x in rows if x["kind"] == "migration")
    rounds = [x for x in rows if x["kind"] == "round"]
    assert m["state"] == "done" and m["stop_reason"] == "non-live" and m["rounds"] == 1
    assert rounds[0]["live"] is False and rounds[0]["pages"] == 64 * 256
    # the guest is down for the whole copy: downtime is almost all of the total
    assert m["downtime_ms"] > 0.9 * m["total_ms"]
