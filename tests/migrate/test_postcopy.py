"""Post-copy and hybrid (extensions of the save engine): the switch-over's downtime and the push time by
hand, the stall of a remote fault within its bounds, hybrid's pre-copy rounds, the CLI and bad input."""

import json

import numpy as np
from typer.testing import CliRunner

from pvsim.cli import app
from pvsim.migrate.save import POSTCOPY_FAULT_NS, RESUME_NS, SUSPEND_NS, XS_OP_NS, XS_OPS_PER_DEVICE
from tests.migrate.helpers import migrate
from tests.migrate.test_cli_migrate import EX, _scenario
from tests.migrate.test_inrun import _run as _run_in

run = CliRunner().invoke


def test_idle_postcopy_by_hand():
    o = migrate("postcopy", ram_mib=16, rate_mbps=1000, latency_us=100)
    # records: vCPU (8 + 8 + 5168) + shared info (8 + 4096) + TSC (8 + 24) + END 8 = 9328 bytes at 1 bit/ns
    records = 9328 * 8 + 100_000
    assert o.downtime_ns == SUSPEND_NS + records + 2 * XS_OPS_PER_DEVICE * XS_OP_NS + RESUME_NS == 3_974_624
    assert o.final_copy_ns == 0 and o.remote_faults == 0 and o.stall_ns == []
    # push: 64 batches of 64 pages, each 8 + 8 + 64 x (8 + 4096) = 262672 bytes = 2101376 ns on the link;
    # per-batch dom0 CPU 20000 + 0.128 x 500 + 64 x 4096 x 0.05 = 33171 ns, overlapped but for the first
    # batch's mapping (sender) and the last one's (receiver), plus one latency
    assert o.degraded_ns == 33171 + 64 * 2_101_376 + 100_000 + 33171
    assert o.pushed_pages == 4096 and o.pages_sent == 4096 and o.fetched.min() == 1 == o.fetched.max()


def test_remote_fault_stalls_within_their_bounds():
    o = migrate("postcopy", ram_mib=64, rate_mbps=1000, latency_us=100, ws_mib=8, mb_per_s=200, pattern="hot",
                seed=7)
    st = np.array(o.stall_ns)
    assert o.remote_faults == len(st) > 10
    page = (8 + 8 + 8 + 4096) * 8  # one PAGE_DATA record of one pfn at 1 bit/ns
    batch = (8 + 8 + 64 * (8 + 4096)) * 8
    assert st.min() >= POSTCOPY_FAULT_NS  # even a page already on its way is waited for and placed
    assert st.max() <= 2 * 100_000 + batch + page + POSTCOPY_FAULT_NS  # behind at most one push batch
    assert (st >= 2 * 100_000 + page + POSTCOPY_FAULT_NS).any()  # a fetched page's round trip at least
    assert 0 < o.degraded_ns < o.total_ns


def test_hybrid_runs_its_precopy_rounds_then_leaves_only_the_dirty_set_remote():
    kw = dict(ram_mib=64, rate_mbps=1000, ws_mib=8, mb_per_s=200, pattern="hot", seed=7)
    h = migrate("hybrid", precopy_rounds=3, **kw)
    assert [r.index for r in h.rounds] == [1, 2, 3] and all(r.live for r in h.rounds)
    assert int(h.remote.sum()) >= h.rounds[-1].dirty_after  # plus what was written while it suspended
    assert 0 < int(h.remote.sum()) < 64 * 256 // 10
    p, x = migrate("postcopy", **kw), migrate("xen", **kw)
    assert h.downtime_ns == p.downtime_ns < x.downtime_ns  # no pages inside the downtime
    assert h.degraded_ns < p.degraded_ns
    assert h.remote_faults < p.remote_faults


def test_cli_postcopy_rows_deterministic(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for f in (a, b):
        r = run(app, ["migrate", str(EX), "--domain", "db", "--to", "h2", "--policy", "hybrid", "--json", str(f),
                      "-q"])
        assert r.exit_code == 0, r.output
    assert a.read_bytes() == b.read_bytes()
    m = [x for x in json.loads(a.read_text())["results"] if x["kind"] == "migration"][0]
    assert m["policy"] == "hybrid" and m["pages_lost"] == 0 and m["iterations"] == 1
    for k in ("remote_faults", "stall_mean_us", "stall_p99_us", "degraded_ms", "pushed_pages"):
        assert k in m
    assert m["downtime_breakdown_ms"]["final_copy"] == 0


def test_bad_precopy_rounds_one_line_exit_2(tmp_path):
    r = run(app, ["migrate", str(EX), "--domain", "db", "--to", "h2", "--policy", "hybrid", "--precopy-rounds", "0"])
    assert r.exit_code == 2 and "--precopy-rounds" in r.output and "Traceback" not in r.output
    s = _scenario(tmp_path, '\n[[migrations]]\ndomain = "db"\nto = "h2"\npolicy = "hybrid"\nprecopy_rounds = "x"\n')
    r = run(app, ["migrate", s])
    assert r.exit_code == 2 and "migrations[0].precopy_rounds" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_postcopy_inside_a_run(tmp_path):
    for policy in ("postcopy", "hybrid"):
        res = _run_in(tmp_path, policy=policy, duration=200)
        m = [r for r in res.migration_rows if r["kind"] == "migration"][0]
        assert m["state"] == "done" and m["pages_lost"] == 0, m
        assert m["degraded_ms"] > 0 and m["downtime_breakdown_ms"]["final_copy"] == 0
        rows = {(r["host"], r["domain"]): r for r in res.rows}
        assert rows[("h2", "app")]["units"] > 0  # it runs on the target from the switch-over
