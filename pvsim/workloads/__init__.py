"""Workloads: lmbench micro-operations, ASPLOS'06 nanobenchmarks and macro profiles.

All are :class:`~pvsim.workloads.base.Op` descriptions shared by every mode. ``get(name)`` finds one
by name (``lmbench.fork``, ``nano.pgfault``, ``kernel-build``); ``workload_names()`` lists them.
"""

from __future__ import annotations

from pvsim.workloads.base import A, Op
from pvsim.workloads.lmbench import LMBENCH
from pvsim.workloads.macro import MACRO
from pvsim.workloads.nanobench import NANO

ALL: dict[str, Op] = {**LMBENCH, **NANO, **MACRO}


def workload_names() -> list[str]:
    """Every workload name: the op mixes, then the split-driver I/O workloads and the memory
    workloads that ``pvsim compare`` runs through their subsystems."""
    from pvsim.mm.runner import MM_WORKLOADS

    names = list(ALL)
    try:
        from pvsim.io.workloads import IO_WORKLOADS
    except ImportError:
        IO_WORKLOADS = ()
    return names + [w for w in (*IO_WORKLOADS, *MM_WORKLOADS) if w not in ALL]


def get(name: str) -> Op:
    try:
        return ALL[name]
    except KeyError:
        raise KeyError(name) from None


__all__ = ["A", "Op", "ALL", "get", "workload_names", "LMBENCH", "NANO", "MACRO"]
