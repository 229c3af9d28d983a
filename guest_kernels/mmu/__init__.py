"""Guest-side MMU code for every mode (issue 3).

``make_guest_mmu(mode, platform, *, batch=2048, **options)`` returns a
:class:`guest_kernels.mmu.core.GuestMMU` whose page-table changes reach the machine through the
mode's backend (:mod:`guest_kernels.mmu.backends`). ``platform`` must carry ``meter``,
``guest_type``, ``hypercall(name, *args)`` and ``machine_mmu`` (the machine-side object built by
:func:`pvsim.mm.platform.attach_mmu`), and may carry ``trap``/``vmexit``/``bt``/``sw_mmu``.
"""

from __future__ import annotations

from guest_kernels.mmu.backends import DirectBackend, PVBackend
from guest_kernels.mmu.core import GuestMMU

MODES = ("native", "container", "pv", "pv32", "bt", "hvm-shadow", "hvm", "pvhvm", "pvh")


def make_guest_mmu(mode: str, platform, *, batch: int = 2048, **options) -> GuestMMU:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    if not 1 <= int(batch) <= 1 << 20:
        raise ValueError(f"batch must be 1..1048576, got {batch}")
    machine = getattr(platform, "machine_mmu", None)
    if machine is None:
        raise ValueError("platform.machine_mmu is missing (build it with pvsim.mm.platform.attach_mmu)")
    backend = (PVBackend if mode in ("pv", "pv32") else DirectBackend)(platform, machine, batch)
    return GuestMMU(mode, platform, backend, batch=batch, **options)
