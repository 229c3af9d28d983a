"""Migration streams and guest streams sharing a link (pvsim.io.flows): concurrent migrations each
take about twice as long, a rate-limited one leaves the rest of the link to the other, a guest's
ttcp stream to a peer host and a migration share the link fairly, and a guest with no network
traffic changes nothing."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pvsim.cli import app
from pvsim.core.engine import Engine
from pvsim.core.errors import ScenarioError
from pvsim.io.devices import Pipe
from pvsim.migrate.dirty import GuestMemory, WriteModel
from pvsim.migrate.save import QEMU_MAX_BANDWIDTH, Migration, MigrationOptions
from pvsim.scenario import Scenario
from pvsim.system import build

from .helpers import S


def _mig(e, pipe, policy="xen", ram_mib=32, seed=1):
    w = S(mib=None, ram_frac=None, mb_per_s=0.0, pattern="uniform", hot_frac=0.1, hot_share=0.9, free_frac=0.0)
    mem = GuestMemory(WriteModel.of(w, ram_mib, seed_offset=seed), seed)
    return Migration(e, pipe, mem, MigrationOptions(policy=policy))


def _together(policies, rate_mbps=1000.0, latency_us=100.0):
    e = Engine(seed=0)
    p = Pipe(e, rate_mbps, latency_us)
    ms = [_mig(e, p, pol, seed=i + 1) for i, pol in enumerate(policies)]
    for m in ms:
        e.process(m.process())
    e.run()
    return p, [m.out for m in ms]


def test_two_concurrent_migrations_each_take_about_twice_as_long():
    _p1, (alone,) = _together(["xen"])
    p, (a, b) = _together(["xen", "xen"])
    assert p.max_flows == 2
    for o in (a, b):
        assert o.total_ns == pytest.approx(2 * alone.total_ns, rel=0.03)
        assert int((o.receiver != o.sender).sum()) == 0
    # an idle guest sends the same bytes shared or not, and the link carried all of them
    assert a.bytes == b.bytes == alone.bytes and p.bytes == a.bytes + b.bytes


def test_a_rate_limited_migration_leaves_the_rest_of_the_link_to_the_other():
    rate = 10_000.0
    _p, (alone,) = _together(["xen"], rate)
    _p, (x, q) = _together(["xen", "qemu"], rate)
    cap = QEMU_MAX_BANDWIDTH * 8 / 1e6  # Mbit/s, the qemu stream's own limit
    # not half the link: the xen stream gets what the capped one leaves (about rate - cap)
    assert x.total_ns == pytest.approx(alone.total_ns * rate / (rate - cap), rel=0.06)
    assert x.total_ns < 1.3 * alone.total_ns
    assert q.bytes * 8 / (q.total_ns / 1e9) / 1e6 < 1.2 * cap  # paced rounds (the last copy is not)


SCEN = """
name = "flowshare"
seed = 5
[[hosts]]
name = "h1"
pcpus = 2
memory_mib = 4096
[[hosts]]
name = "h2"
pcpus = 2
memory_mib = 4096
[[links]]
between = ["h1", "h2"]
rate_mbps = 1000
latency_us = 50
[run]
duration_ms = 120
warmup_ms = 5
[[domains]]
name = "app"
host = "h1"
mode = "pv"
workload = "cpu-int"
memory_mib = 32
[[domains]]
name = "stream"
host = "h1"
mode = "pv"
workload = "STREAM"
memory_mib = 64
PEER
"""
MIG = '[[migrations]]\ndomain = "app"\nto = "h2"\nat_ms = 5\n'


def _run(tmp_path, *, peer=True, migrate=True, workload="ttcp-1500"):
    text = SCEN.replace("STREAM", workload).replace("PEER", 'net_peer = "h2"' if peer else "")
    p = tmp_path / "s.toml"
    p.write_text(text + (MIG if migrate else ""))
    res = build(Scenario.from_toml(p)).run()
    rows = {r["domain"]: r for r in res.rows if r["host"] == "h1"}
    mig = [r for r in res.migration_rows if r["kind"] == "migration"]
    return rows, (mig[0] if mig else None)


def test_a_guest_stream_and_a_migration_share_the_link_fairly(tmp_path):
    rows0, _ = _run(tmp_path, migrate=False)  # the stream alone on the link
    alone = rows0["stream"]["value"]
    assert 850 < alone < 1000  # Mbit/s of payload on a 1 Gbit/s link
    _, m_alone = _run(tmp_path, peer=False)  # the migration alone (the stream goes outside)
    rows, m = _run(tmp_path)
    assert m["state"] == "precopy" and m_alone["state"] == "precopy"  # both still copying at the end
    # from 5 ms on the two flows share the 1 Gbit/s link: each about half
    assert rows["stream"]["value"] == pytest.approx(alone / 2, rel=0.12)
    assert m["bytes"] == pytest.approx(m_alone["bytes"] / 2, rel=0.12)


def test_a_guest_without_network_traffic_changes_nothing(tmp_path):
    _, with_peer = _run(tmp_path, workload="cpu-int")
    _, without = _run(tmp_path, peer=False, workload="cpu-int")
    assert with_peer == without


@pytest.mark.parametrize("peer,msg", [('"h9"', "net_peer"), ('"h1"', "another host"), ('"h3"', "no link joins")])
def test_bad_net_peer(tmp_path, peer, msg):
    text = SCEN.replace("STREAM", "ttcp-1500").replace("PEER", f"net_peer = {peer}")
    text = text.replace('[[links]]', '[[hosts]]\nname = "h3"\npcpus = 1\n[[links]]', 1)
    p = tmp_path / "s.toml"
    p.write_text(text)
    with pytest.raises(ScenarioError) as e:
        Scenario.from_toml(p)
    assert e.value.field == "domains[1].net_peer" and msg in str(e.value)
    r = CliRunner().invoke(app, ["run", str(p)])
    assert r.exit_code == 2 and "domains[1].net_peer" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_example_runs():
    ex = Path(__file__).resolve().parents[2] / "examples" / "migrate_shared_link.toml"
    assert Scenario.from_toml(ex).domains[1].net_peer == "h2"


def test_shared_link_is_deterministic():
    _p, (a, b) = _together(["xen", "postcopy"])
    _p, (c, d) = _together(["xen", "postcopy"])
    assert (a.total_ns, a.bytes, b.total_ns, b.stall_ns) == (c.total_ns, c.bytes, d.total_ns, d.stall_ns)
    assert int((a.receiver != a.sender).sum()) == 0
