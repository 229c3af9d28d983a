"""Remus: nothing lost or duplicated when the primary fails at a random instant; the mutant that
releases buffered packets before the acknowledgement is caught; the overhead curve's directions."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pvsim.ha.remus import Remus, RemusOptions, overhead
from pvsim.migrate.dirty import WriteModel
from pvsim.workloads.spec import WritableSpec


def remus(seed=1, interval_ms=50.0, mb_per_s=100.0, disk_mb_per_s=10.0, ram_mib=16, release_early=False,
          pps=5000.0, link_mbps=1000.0):
    m = WriteModel.of(WritableSpec(mib=4, mb_per_s=mb_per_s, pattern="hot"), ram_mib, seed_offset=seed)
    d = WriteModel.of(WritableSpec(mib=8, mb_per_s=disk_mb_per_s), 64, seed_offset=seed + 1)
    return Remus(m, d, seed, RemusOptions(interval_ms=interval_ms, pps=pps, link_mbps=link_mbps,
                                          release_early=release_early, keep_snapshots=True))


def problems(r) -> list[str]:
    out = []
    if not np.array_equal(r.backup_mem, r.primary_mem_at):
        out.append("backup memory differs from the primary's at the last acknowledged checkpoint")
    if not np.array_equal(r.backup_disk, r.primary_disk_at):
        out.append("backup disk differs")
    seqs = [s for s, _, _ in r.delivered]
    if len(set(seqs)) != len(seqs):
        out.append("a packet repeated")
    if sorted(set(seqs)) != list(range(len(set(seqs)))):
        out.append("a packet missing")
    return out


cases = st.fixed_dictionaries({
    "seed": st.integers(0, 2**30),
    "interval_ms": st.sampled_from([10.0, 25.0, 50.0, 200.0]),
    "mb_per_s": st.floats(0, 400),
    "disk_mb_per_s": st.floats(0, 50),
    "link_mbps": st.sampled_from([300.0, 1000.0, 10000.0]),
})


@settings(max_examples=40, deadline=None)
@given(cases, st.floats(0.0, 600.0))
def test_nothing_lost_or_duplicated(kw, fail_at):
    r = remus(**kw).run(800, fail_at_ms=fail_at)
    assert problems(r) == []
    assert r.failover_ns >= r.failed_at
    assert any(by == "backup" for _, _, by in r.delivered)


@settings(max_examples=20, deadline=None)
@given(cases, st.floats(5.0, 600.0))
def test_the_early_release_mutant_is_caught(kw, fail_at):
    honest = remus(**kw).run(800, fail_at_ms=fail_at)
    assert problems(honest) == []
    # the mutant fails whenever the primary emitted a packet after the checkpoint the backup holds
    after = honest.produced_ns > honest.checkpoints[honest.committed].suspend_ns
    mutant = remus(**kw, release_early=True).run(800, fail_at_ms=fail_at)
    if after.any():
        assert "a packet repeated" in problems(mutant)


def test_mutant_caught_on_a_fixed_case():
    assert "a packet repeated" in problems(remus(release_early=True).run(500, fail_at_ms=333))
    assert problems(remus().run(500, fail_at_ms=333)) == []


def test_overhead_directions():
    rows = [overhead(remus(interval_ms=iv, mb_per_s=200).run(1000), 5000.0) for iv in (25, 100, 500)]
    lat = [x["added_latency_ms_mean"] for x in rows]
    loss = [x["throughput_loss"] for x in rows]
    assert lat[0] < lat[1] < lat[2]
    assert loss[0] > loss[1] > loss[2] > 0
    assert lat[2] > 250  # about half an interval plus the pause and the acknowledgement


def test_deterministic():
    a, b = remus(seed=9).run(400, fail_at_ms=123), remus(seed=9).run(400, fail_at_ms=123)
    assert a.delivered == b.delivered and np.array_equal(a.backup_mem, b.backup_mem)
