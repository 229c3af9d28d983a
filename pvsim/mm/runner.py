"""Memory workloads as comparison rows: ``gups``, ``stream``, ``ptchurn-mmap``, ``ptchurn-fork``.

Design note
-----------
Each workload builds one domain of the given mode on the structural MMU (:mod:`pvsim.mm`: page
tables as data, the mode's machine side, the profile's TLB and walk caches), sets up its process
unmetered (the benchmark's initialisation: the working set is mapped and touched once, so shadows
and TLBs are warm, as after a benchmark's first pass), then meters one measured pass:

* ``gups`` -- HPCC RandomAccess: ``GUPS_UPDATES`` read-modify-writes of random 8-byte words over a
  ``GUPS_PAGES`` x 4 KiB table (64 MiB). The update's own memory time is one DRAM reference
  (``native.dram_ref_cycles``): a random word in 64 MiB misses every cache. Metric: updates/s.
* ``stream`` -- STREAM triad shape: sequential cache-line accesses over three ``STREAM_PAGES``-page
  arrays, one in three a write. A line's time is one L2-latency reference
  (``native.mem_ref_cycles``): hardware prefetch keeps a sequential sweep close to the cache
  [assumption]. Metric: cache lines/s.
* ``ptchurn-mmap`` -- lat_mmap-like: ``mmap`` of ``CHURN_PAGES`` pages, a write to each (demand
  faults), ``munmap``. Metric: us per loop.
* ``ptchurn-fork`` -- lat_proc-like on a ``CHURN_PROC_PAGES``-page process: ``fork``, switch to the
  child, the child writes its first k pages, k a seeded binomial share (copy-on-write faults),
  ``exit``, the parent writes ``CHURN_PARENT_WRITES`` pages. Metric: us per loop.

Both churn loops are :func:`pvsim.mm.workloads.page_table_churn` lists driven by
:func:`~pvsim.mm.workloads.run_churn`.

Simplifications: the churn loops price the MMU's share only (page-table writes, validation, shadow
work, faults, walks and flushes; the kernel's other work on these paths is not included: use
``lmbench.fork``/``lmbench.mmap`` for whole operations); no data-cache model (walk references at
``native.walk_ref_cycles`` whatever the working set).
"""

from __future__ import annotations

import numpy as np

from pvsim.engine import rng_for
from pvsim.errors import ScenarioError
from pvsim.meter import Meter
from pvsim.mm import workloads as W

GUPS_PAGES = 16384
GUPS_UPDATES = 1_000_000
STREAM_PAGES = 2048  # 8 MiB per array
STREAM_LINES = 1_000_000
CHURN_PAGES = 64
CHURN_LOOPS = 200
CHURN_PROC_PAGES = 300
CHURN_CHILD_TOUCH = 0.03  # share of its pages a lat_proc child writes before exit: ~9 of 300 (stack, data) [estimate, cf. lmbench COW_FAULTS]
CHURN_PARENT_WRITES = 4

MM_WORKLOADS = ("gups", "stream", "ptchurn-mmap", "ptchurn-fork")
DESCRIPTIONS = {
    "gups": f"HPCC RandomAccess: random 8-byte updates over a {GUPS_PAGES * 4 // 1024} MiB table; updates/s "
            "(structural MMU)",
    "stream": f"STREAM triad shape: sequential lines over 3 x {STREAM_PAGES * 4 // 1024} MiB arrays; lines/s "
              "(structural MMU)",
    "ptchurn-mmap": f"page-table churn: mmap {CHURN_PAGES} pages, write each, munmap; MMU work per loop "
                    "(structural MMU)",
    "ptchurn-fork": f"page-table churn: fork a {CHURN_PROC_PAGES}-page process, child writes a few pages and "
                    "exits; MMU work per loop (structural MMU)",
}
METRICS = {"gups": "ops_per_s", "stream": "ops_per_s", "ptchurn-mmap": "us_per_op", "ptchurn-fork": "us_per_op"}


def _platform(mode: str, profile, pages: int):
    from pvsim.mm.platform import make_platform

    return make_platform(None, None, mode, profile=profile, nr_pages=pages)


def _trace_pass(g, meter: Meter, vas, writes, user_price: str) -> int:
    g.access_trace(vas, writes)
    meter.add("user", user_price, len(vas))
    return len(vas)


def _gups(g, p, rng, meter):
    g.populate(GUPS_PAGES)
    pages = np.fromiter(g.current.pages.keys(), dtype=np.int64)[:GUPS_PAGES] << 12
    vas, _ = W.gups(rng, pages, GUPS_UPDATES)
    writes = np.ones(len(vas), dtype=bool)  # each update is a read-modify-write of its word
    with p.hv.metering(Meter()):
        g.access_trace(vas[: GUPS_UPDATES // 10], writes[: GUPS_UPDATES // 10])  # warm: dirty bits, shadows
    with p.hv.metering(meter):
        return _trace_pass(g, meter, vas, writes, "native.dram_ref_cycles")


def _stream(g, p, rng, meter):
    g.populate(3 * STREAM_PAGES)
    base = min(g.current.pages) << 12
    vas, writes = W.stream(rng, base, STREAM_PAGES * 4096, STREAM_LINES)
    with p.hv.metering(Meter()):
        g.access_trace(vas, writes)  # the first sweep
    with p.hv.metering(meter):
        return _trace_pass(g, meter, vas, writes, "native.mem_ref_cycles")


def _churn(g, p, meter, warm, ops) -> int:
    with p.hv.metering(Meter()):
        W.run_churn(g, warm)  # the benchmark's previous iteration
    with p.hv.metering(meter):
        W.run_churn(g, ops)
    return CHURN_LOOPS


def _churn_mmap(g, p, rng, meter):
    def ops(loops):
        return W.page_table_churn(rng, kind="mmap", loops=loops, pages=CHURN_PAGES)
    return _churn(g, p, meter, ops(1), ops(CHURN_LOOPS))


def _churn_fork(g, p, rng, meter):
    g.populate(CHURN_PROC_PAGES)

    def ops(loops):
        return W.page_table_churn(rng, kind="fork", loops=loops, pages=CHURN_PROC_PAGES,
                                  touch_frac=CHURN_CHILD_TOUCH, parent_writes=CHURN_PARENT_WRITES)
    return _churn(g, p, meter, ops(1), ops(CHURN_LOOPS))


_RUNNERS = {"gups": (_gups, GUPS_PAGES), "stream": (_stream, 3 * STREAM_PAGES),
            "ptchurn-mmap": (_churn_mmap, 4 * CHURN_PAGES), "ptchurn-fork": (_churn_fork, 4 * CHURN_PROC_PAGES)}


def run_mm_workload(workload: str, mode: str, profile, *, seed: int = 0) -> dict:
    """One memory workload in one mode on the structural MMU; one result row (module docstring)."""
    from pvsim.pricing import check_mode

    if workload not in MM_WORKLOADS:
        raise ScenarioError("workload", f"must be one of {', '.join(MM_WORKLOADS)}, got {workload!r}")
    check_mode(mode, profile)
    fn, pages = _RUNNERS[workload]
    p = _platform(mode, profile, pages + 8192)
    meter = Meter()
    units = fn(p.mmu, p, rng_for(seed, f"mm.{workload}"), meter)
    cycles = meter.price(profile)
    breakdown = {k: profile.cycles_to_ns(v) for k, v in sorted(cycles.items()) if v}
    elapsed = sum(breakdown.values())
    metric = METRICS[workload]
    value = units / (elapsed / 1e9) if metric == "ops_per_s" else elapsed / 1000.0 / units
    return {
        "workload": workload, "mode": mode, "profile": profile.name, "metric": metric, "value": float(value),
        "elapsed_ns": int(round(elapsed)), "breakdown_ns": {k: float(v) for k, v in breakdown.items()},
        "counts": {k: int(v) for k, v in sorted(meter.counts.items())}, "units": int(units),
    }
