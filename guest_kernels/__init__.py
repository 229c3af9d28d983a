"""Guest kernels: one :class:`~guest_kernels.base.GuestKernel` interface, one implementation per mode.

A workload asks the OS for things (a system call, a fork, a page fault, a context switch); a guest
kernel turns each request into what its mode makes of it on the simulated machine: plain
instructions, traps bounced by Xen, hypercalls, VM exits, binary-translation callouts and MMU work.
Workloads are shared across kernels, so every comparison is like for like.

Import rule: this package sees the ABI (:mod:`hypercalls`), the engine and the meter; it never
imports hypervisor internals. Everything it needs from the hypervisor arrives through the
``platform`` object the builder hands it (see :class:`guest_kernels.base.Platform`).
"""

from guest_kernels.base import GuestKernel, Platform
from guest_kernels.modes import MODES, ModeSpec

__all__ = ["GuestKernel", "Platform", "MODES", "ModeSpec"]
