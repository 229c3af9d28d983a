"""Workload descriptions: named operations made of OS actions, shared by every mode.

Design note
-----------
An :class:`Op` is what an application asks the OS for, as a tuple of :class:`A` (an action of
:class:`guest_kernels.base.GuestKernel` with its arguments and a repeat count). A workload is either
a single op measured per operation (lmbench, nanobenchmarks) or a *unit of work* of a macro profile
(one compile unit of a kernel build, one OLTP transaction) with an optional I/O wait.

Kernel path lengths: an op may carry ``native_ref`` = (profile, microseconds) -- the op's measured
native latency on that profile. The op's ``fill`` action then stands for the kernel work *not*
otherwise described (file-system code, the scheduler, copying), and is derived once as
``native_ref cycles - native price of the other actions`` on that profile. This uses only native
measurements (the L-UP column), never a virtualized result: every virtualized mode's overhead is a
prediction. The fill is a path length in cycles and is reused unchanged under other profiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class A:
    """One guest-kernel action: ``name(*args)`` repeated ``times`` times."""

    name: str
    args: tuple = ()
    times: float = 1

    def __init__(self, name: str, *args, times: float = 1):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "args", tuple(args))
        object.__setattr__(self, "times", times)


@dataclass(frozen=True)
class Op:
    name: str
    actions: tuple[A, ...]
    metric: str = "us_per_op"  # us_per_op | cycles_per_op | ops_per_s
    native_ref: tuple[str, float] | None = None  # (profile name, native microseconds) -> derive fill
    io_wait_us: float = 0.0  # time blocked on a device per unit, besides disk_io's device time
    description: str = ""
    source: str = ""
    group: str = ""  # lmbench table, nano, macro
    extra: dict = field(default_factory=dict)
