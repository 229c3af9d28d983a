"""Migration speed: the dirty-page kernels against their plain-Python references (each at least 50x),
and a 16 GiB guest with a 1 GiB hot set over 10 Gbit/s under Xen's policy (wall seconds printed; the
issue's target is under 10).

    make bench
    .venv/bin/python benchmarks/bench_migrate.py
"""

from __future__ import annotations

import time
from types import SimpleNamespace as S

import numpy as np
import pytest

from pvsim.core.engine import Engine
from pvsim.io.devices import Pipe
from pvsim.migrate import dirty as D
from pvsim.migrate.save import Migration, MigrationOptions


def _mem(compiled, pattern="hot", mib=1024):
    w = S(mib=256, ram_frac=None, mb_per_s=100, pattern=pattern, hot_frac=0.1, hot_share=0.9, free_frac=0.1)
    return D.GuestMemory(D.WriteModel.of(w, mib, seed_offset=7), 7, compiled=compiled)


def _seconds(fn, reps=1):
    """The shortest of ``reps`` timed calls (the machine is shared: the minimum is the least disturbed)."""
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _rate(fn, n, reps=1):
    fn(min(n, 1000))  # compile / warm
    return n / _seconds(lambda: fn(n), reps)


def kernel_speedups() -> list[tuple[str, float, float, float]]:
    rows = []
    for pattern in ("uniform", "hot", "sequential"):
        fast, slow = _mem(True, pattern), _mem(False, pattern)
        a, b = _rate(fast.write, 2_000_000, reps=3), _rate(slow.write, 100_000)
        rows.append((f"write/{pattern}", a, b, a / b))
    for label in ("clean",):
        f, s = _mem(True, mib=256), _mem(False, mib=256)
        f.clean()  # compile / warm
        f.write(100_000)
        s.write(100_000)
        bitmap = f.dirty.copy()  # each timed CLEAN starts from the same bitmap

        def again():
            f.dirty[:] = bitmap
            f.clean()
        n = f.model.n_pages
        a = n / min(_seconds(again) for _ in range(5))
        b = n / _seconds(s.clean)
        rows.append((label, a, b, a / b))
    pfns = np.arange(0, 1 << 18, dtype=np.int64)
    src, dst = np.arange(1 << 18, dtype=np.int64), np.zeros(1 << 18, dtype=np.int64)
    D.copy_pages(pfns, src, dst)  # compile / warm, and fault in ``dst`` (the reference finds it resident too)
    a = len(pfns) / _seconds(lambda: D.copy_pages(pfns, src, dst), reps=5)
    b = len(pfns) / _seconds(lambda: D.copy_pages(pfns, src, dst, compiled=False))
    rows.append(("copy", a, b, a / b))
    return rows


def big_migration() -> tuple[float, object]:
    e = Engine(seed=1)
    w = S(mib=1024, ram_frac=None, mb_per_s=200, pattern="hot", hot_frac=0.1, hot_share=0.9, free_frac=0.0)
    mem = D.GuestMemory(D.WriteModel.of(w, 16384, seed_offset=1), 1)
    m = Migration(e, Pipe(e, 10000, 20), mem, MigrationOptions(policy="xen"))
    t = time.perf_counter()
    e.run_until(e.process(m.process()))
    return time.perf_counter() - t, m.out


@pytest.mark.benchmark
def test_dirty_kernels_and_a_big_migration():
    rows = kernel_speedups()
    for name, a, b, x in rows:
        print(f"{name:20s} kernel {a / 1e6:8.2f} M/s  reference {b / 1e6:7.3f} M/s  x{x:7.0f}")
    wall, out = big_migration()
    print(f"16 GiB, 1 GiB hot set, 10 Gbit/s: {out.total_ns / 1e9:.2f} s simulated, downtime "
          f"{out.downtime_ns / 1e6:.2f} ms, {wall:.2f} s wall")
    assert out.total_ns > 0 and all(a > 0 and b > 0 for _n, a, b, _x in rows)  # ran; speeds are reported, not asserted


if __name__ == "__main__":
    test_dirty_kernels_and_a_big_migration()
