"""Guest-side MMU code for every mode (page tables as data).

``make_guest_mmu(paging, platform, *, batch=2048, **options)`` returns a
:class:`guest_kernels.mmu.core.GuestMMU` whose page-table changes reach the machine through the
backend of the mode's paging kind (:mod:`guest_kernels.mmu.backends`: ``direct`` batches validated
updates through hypercalls; every other kind stores directly). ``platform`` must carry ``meter``,
``guest_type``, ``hypercall(name, *args)`` and ``machine_mmu`` (the machine-side object the builder
made), and may carry ``trap``/``vmexit``/``bt``/``sw_mmu``.
"""

from __future__ import annotations

from guest_kernels.mmu.backends import DirectBackend, PVBackend
from guest_kernels.mmu.core import GuestMMU

# Xen's PV direct paging goes through validating hypercalls; every other kind stores directly
BACKENDS = {"direct": PVBackend, "hardware": DirectBackend, "shadow": DirectBackend, "hap": DirectBackend}


def make_guest_mmu(paging: str, platform, *, batch: int = 2048, **options) -> GuestMMU:
    if paging not in BACKENDS:
        raise ValueError(f"unknown paging {paging!r}; allowed: {', '.join(BACKENDS)}")
    if not 1 <= int(batch) <= 1 << 20:
        raise ValueError(f"batch must be 1..1048576, got {batch}")
    machine = getattr(platform, "machine_mmu", None)
    if machine is None:
        raise ValueError("platform.machine_mmu is missing (the builder attaches it)")
    return GuestMMU(paging, platform, BACKENDS[paging](platform, machine, batch), batch=batch, **options)
