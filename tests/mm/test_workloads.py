"""gups / stream / page-table churn traces: deterministic, shaped as declared, runnable per mode."""

import numpy as np
import pytest

from pvsim.core.engine import rng_for
from pvsim.core.meter import Meter
from pvsim.core.profile import load_profile
from pvsim.mm import workloads
from pvsim.wiring import scratch_platform


def test_traces_are_deterministic_and_shaped():
    pages = (np.arange(1000, dtype=np.int64) << 12) + 0x400000
    a = workloads.gups(rng_for(1, "g"), pages, 5000)
    b = workloads.gups(rng_for(1, "g"), pages, 5000)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert set(np.unique(a[0] >> 12)) <= set(pages >> 12)
    assert 0.45 < a[1].mean() < 0.55
    vas, w = workloads.stream(rng_for(1, "s"), 0x400000, 1 << 20, 3000)
    assert np.all(np.diff(vas[::3]) >= 0) and abs(w.mean() - 1 / 3) < 0.01
    vas, w = workloads.locality_trace(rng_for(1, "l"), pages, 10000, hot_frac=0.1, hot_prob=0.9)
    hot = (vas >> 12) < (pages[100] >> 12)
    assert 0.88 < hot.mean() < 0.95
    ops = workloads.page_table_churn(rng_for(1, "c"), kind="fork", loops=3)
    assert [o for o, _ in ops] == ["fork", "touch_child", "exit"] * 3


@pytest.mark.parametrize("mode", ["native", "pv", "hvm-shadow", "hvm"])
def test_churn_and_gups_run_in_every_mode(mode):
    p = scratch_platform(mode, profile=load_profile("p4-2006" if mode != "hvm" else "modern"),
                      nr_pages=8192)
    g = p.mmu
    m = Meter()
    with p.hv.metering(m):
        workloads.run_churn(g, workloads.page_table_churn(rng_for(2, mode), kind="mmap", loops=3, pages=32))
        workloads.run_churn(g, workloads.page_table_churn(rng_for(2, mode), kind="fork", loops=2, pages=8))
        pages = (np.arange(256, dtype=np.int64) << 12) + 0x10000000
        vas, w = workloads.gups(rng_for(3, mode), pages, 2000)
        out = g.access_trace(vas, w)
    assert out[1] == 2000
    assert m.counts["page_fault"] >= 256  # every gups page was demand-faulted once
    assert m.counts["mmu.walk_refs"] > 0
