"""The per-round migration timeline figure is written and draws one bar per round; `pvsim migrate --plot`
and `pvsim run --plot` (each in-run migration, with the guest's throughput) write it."""

import json
from pathlib import Path

import matplotlib.image as mpimg
from typer.testing import CliRunner

from pvsim import plots
from pvsim.cli import app, migration_plot_paths


def test_timeline_draws_one_bar_per_round(tmp_path, monkeypatch):
    rounds = [{"start_ms": 0.0, "duration_ms": 80.0, "bytes": 8 * 2**20},
              {"start_ms": 80.0, "duration_ms": 10.0, "bytes": 1 * 2**20}]
    seen = {}
    real_bar = plots.plt.Axes.bar

    def spy(self, *a, **kw):
        seen["bars"] = real_bar(self, *a, **kw)
        return seen["bars"]
    monkeypatch.setattr(plots.plt.Axes, "bar", spy)
    out = tmp_path / "t.png"
    plots.migration_timeline(rounds, out, {"throughput": {"before": 10.0, "during": 8.0, "after": 10.0},
                                           "metric": "ops"})
    assert out.exists() and mpimg.imread(out).shape[1] <= 1400
    heights = [p.get_height() for p in seen["bars"].patches]
    assert heights == [8.0, 1.0]


def test_migrate_plot_writes_the_timeline(tmp_path):
    out = tmp_path / "m.png"
    res = CliRunner().invoke(app, ["migrate", "examples/migrate_in_run.toml", "-q", "--plot", str(out)])
    assert res.exit_code == 0, res.output
    assert mpimg.imread(out).shape[0] > 100


def _in_run(tmp_path, extra=""):
    """examples/migrate_in_run.toml, shorter: a 32 MiB guest migrated at 10 ms of a 60 ms run."""
    t = Path("examples/migrate_in_run.toml").read_text()
    t = t.replace("duration_ms = 120", "duration_ms = 60").replace("at_ms = 30", "at_ms = 10")
    p = tmp_path / "s.toml"
    p.write_text(t.replace("memory_mib = 64", "memory_mib = 32") + extra)
    return p


def test_run_plot_draws_the_rounds_and_the_guest_throughput(tmp_path, monkeypatch):
    drawn = []
    real = plots.migration_timeline

    def spy(rounds, path, migration=None, title=""):
        drawn.append((rounds, migration, title))
        return real(rounds, path, migration, title)
    monkeypatch.setattr(plots, "migration_timeline", spy)
    out, js = tmp_path / "r.png", tmp_path / "r.json"
    res = CliRunner().invoke(app, ["run", str(_in_run(tmp_path)), "-q", "--plot", str(out), "--json", str(js)])
    assert res.exit_code == 0, res.output
    assert mpimg.imread(out).shape[0] > 100
    doc = json.loads(js.read_text())
    mig = [r for r in doc["migrations"] if r["kind"] == "migration"]
    assert len(drawn) == 1 and len(mig) == 1
    rounds, m, title = drawn[0]
    # the migration's own rounds, in order, and its row with the guest's throughput for the line
    assert [r["round"] for r in rounds] == list(range(1, mig[0]["rounds"] + 1)) and rounds[-1]["live"] is False
    assert m["state"] == "done" and set(m["throughput"]) == {"before", "during", "after"}
    assert all(v > 0 for v in m["throughput"].values())
    assert title == "app: xen h1 -> h2 (done)"


def test_run_plot_draws_each_of_several_migrations(tmp_path):
    extra = ('\n[[domains]]\nname = "app2"\nhost = "h1"\nmode = "pv"\nworkload = "cpu-int"\nmemory_mib = 16\n'
             '\n[[migrations]]\ndomain = "app2"\nto = "h2"\nat_ms = 20\npolicy = "qemu"\n')
    out = tmp_path / "r.png"
    res = CliRunner().invoke(app, ["run", str(_in_run(tmp_path, extra)), "-q", "--plot", str(out)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["r-1-app.png", "r-2-app2.png"]
    assert migration_plot_paths(out, [{"domain": "db"}]) == [out]


def test_run_plot_without_migrations_is_one_line_exit_2(tmp_path):
    out = tmp_path / "q.png"
    res = CliRunner().invoke(app, ["run", "examples/quickstart.toml", "-q", "--plot", str(out)])
    assert res.exit_code == 2
    assert "--plot" in res.output and "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_run_plot_into_a_missing_folder_is_refused_before_running(tmp_path):
    res = CliRunner().invoke(app, ["run", str(_in_run(tmp_path)), "-q", "--plot", str(tmp_path / "no" / "r.png")])
    assert res.exit_code == 2 and "--plot" in res.output and "does not exist" in res.output
