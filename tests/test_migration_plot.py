"""The per-round migration timeline figure is written and draws one bar per round."""

import matplotlib.image as mpimg
from typer.testing import CliRunner

from pvsim import plots
from pvsim.cli import app


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
