"""Helpers for the built-in op-mix workloads written in Python (lmbench, nanobench, macro mixes).

Design note
-----------
:func:`op_mix` builds a :class:`~pvsim.workloads.spec.WorkloadSpec` whose unit is one step of OS
actions, from :func:`act` tuples. It is the same spec a user writes in TOML as
``steps = [{actions = [["fork", 300], ["syscall", {times = 2}]]}]``; Python is used where the
built-ins are generated (lmbench's context-switch sizes) or derived (process sizes).

Kernel path lengths: an op may carry ``native_ref`` = (profile, microseconds), the op's measured
native latency on that profile. Its ``fill`` action then stands for the kernel work *not*
otherwise described (file-system code, the scheduler, copying), derived once as ``native_ref cycles
- native price of the other actions`` on that profile (:func:`pvsim.pricing.fill_cycles`). Only
native measurements (the L-UP column) are used, never a virtualized result: every virtualized
mode's overhead is a prediction. The fill is a path length in cycles, reused under other profiles.
"""

from __future__ import annotations

from pvsim.workloads.spec import WorkloadSpec


def act(name: str, *args, times: float = 1) -> list:
    """One action as a workload file writes it: ``[name, *args]`` (``{times = n}`` if not 1)."""
    return [name, *args, {"times": times}] if times != 1 else [name, *args]


def op_mix(name: str, actions, *, metric: str = "us_per_op", native_ref=None, group: str = "",
           description: str = "", source: str = "", peer: str = "none", threads="vcpus", extra_steps=(),
           measure: dict | None = None, writable: dict | None = None, footprint: dict | None = None) -> WorkloadSpec:
    steps = [{"actions": list(actions)}, *extra_steps]
    return WorkloadSpec(name=name, description=description, source=source, group=group, metric=metric,
                        native_ref=native_ref, steps=steps, peer=peer, threads=threads, measure=measure,
                        writable=writable, footprint=footprint)
