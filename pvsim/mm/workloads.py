"""Memory workloads as access traces (data only): gups, stream, page-table churn.

Design note
-----------
Each function turns a workload's declared working set, locality and write ratio into arrays
``(vas, writes)`` drawn from the seeded generator it is given (``Engine.rng(name)``), outside any
kernel: ``gups`` (HPCC RandomAccess: uniformly random 8-byte read-modify-writes over a large
table), ``stream`` (STREAM: sequential sweeps over arrays, one in three accesses a write, as
copy/scale/add/triad), and page-table churn (lmbench ``lat_mmap``-like mmap/touch/munmap loops and
``lat_proc fork``-like fork/touch/exit loops), described as a sequence of MMU operations for the
guest kernels plus the touches in between.
"""

from __future__ import annotations

import numpy as np


def gups_trace(rng, pages_va: np.ndarray, n: int, *, write_ratio: float = 0.5) -> tuple | np.ndarray:
    """``n`` uniformly random accesses over the mapped pages ``pages_va``; returns the vas only
    (use :func:`gups` for (vas, writes))."""
    idx = rng.integers(0, len(pages_va), size=n)
    return np.asarray(pages_va, np.int64)[idx] + (rng.integers(0, 512, size=n) << 3)


def gups(rng, pages_va: np.ndarray, n: int, *, write_ratio: float = 0.5):
    vas = gups_trace(rng, pages_va, n)
    return vas, rng.random(n) < write_ratio


def stream(rng, base_va: int, nbytes: int, n: int, *, arrays: int = 3, stride: int = 64):
    """Sequential sweeps over ``arrays`` arrays of ``nbytes`` each (a cache line per access):
    reads of arrays 0..k-2, writes of the last (STREAM triad shape)."""
    per = max(1, nbytes // stride)
    k = np.arange(n, dtype=np.int64)
    arr = k % arrays
    off = ((k // arrays) % per) * stride
    vas = np.int64(base_va) + arr * np.int64(nbytes) + off
    offset = int(rng.integers(0, 8)) * 8  # element alignment within the line
    return vas + offset, arr == arrays - 1


def locality_trace(rng, pages_va: np.ndarray, n: int, *, hot_frac: float = 0.1, hot_prob: float = 0.9,
                   write_ratio: float = 0.3):
    """A declared working set with locality: ``hot_prob`` of the accesses go to the hottest
    ``hot_frac`` of the pages."""
    pages_va = np.asarray(pages_va, np.int64)
    nhot = max(1, int(len(pages_va) * hot_frac))
    hot = rng.random(n) < hot_prob
    idx = np.where(hot, rng.integers(0, nhot, size=n), rng.integers(0, len(pages_va), size=n))
    vas = pages_va[idx] + (rng.integers(0, 512, size=n) << 3)
    return vas, rng.random(n) < write_ratio


def page_table_churn(rng, *, kind: str = "mmap", loops: int = 100, pages: int = 64, touch_frac: float = 1.0,
                     parent_writes: int = 0):
    """The operation list of a churn loop, for :func:`run_churn`: ``("mmap", pages)``,
    ``("touch", k)``, ``("munmap", pages)`` per loop (kind "mmap"), or ``("fork", 0)``,
    ``("touch_child", k)``, ``("exit", 0)`` and, if ``parent_writes``, ``("touch", parent_writes)``
    (kind "fork": lat_proc's child writes a few pages and exits, the parent resumes and writes its
    stack and data). ``k`` is drawn: a binomial share of the pages touched."""
    ops = []
    for _ in range(loops):
        k = int(rng.binomial(pages, touch_frac))
        if kind == "mmap":
            ops += [("mmap", pages), ("touch", k), ("munmap", pages)]
        elif kind == "fork":
            ops += [("fork", 0), ("touch_child", k), ("exit", 0)]
            if parent_writes:
                ops.append(("touch", parent_writes))
        else:
            raise ValueError("kind must be 'mmap' or 'fork'")
    return ops


def run_churn(mmu, ops) -> None:
    """Drive a GuestMMU through a :func:`page_table_churn` list. ``fork`` forks the current process
    and switches to the child; ``exit`` ends the child (back to its parent); ``touch``/``touch_child``
    write the first ``k`` pages of the current process's newest mmap region, or of its present pages
    if it has none (demand and copy-on-write faults as they come)."""
    for op, n in ops:
        if op == "mmap":
            mmu.mmap(n)
        elif op == "munmap":
            mmu.munmap(n)
        elif op in ("touch", "touch_child"):
            a = mmu.current
            if a.regions:
                vpns = np.arange(a.regions[-1][0], a.regions[-1][0] + n, dtype=np.int64)
            else:
                vpns = np.fromiter(a.pages.keys(), dtype=np.int64)[:n]
            mmu.access_trace(vpns << 12, np.ones(len(vpns), dtype=bool))
        elif op == "fork":
            mmu.fork(n)
            mmu.context_switch()  # the child runs
        elif op == "exit":
            mmu.exit()
