"""Names for the numbers inside trace records, and pvsim's own records where Xen has none.

Design note
-----------
The VM-exit reasons are the VMX basic exit reasons (Intel SDM vol. 3 appendix C, as
``pvsim.hypervisor.traps.EXIT_REASONS`` holds them); the trap vectors are x86's (``#PF`` 14, ...;
``xen/arch/x86/include/asm/processor.h`` ``X86_EXC_*``), with Xen's PV system-call entry (no
vector: 0x80 as Linux's int80) for a bounced x86-64 ``syscall``. Xen traces neither event-channel
sends nor ring notifications, so pvsim writes them in the guest class (``TRC_GUEST``, which
``xenalyze`` passes over): :data:`PVSIM_TRC_EVTCHN_SEND` ``{dom, port}`` and
:data:`PVSIM_TRC_RING_NOTIFY` ``{dom, ring, requests in flight}``.
"""

from __future__ import annotations

from hypercalls.trace import TRC_GUEST
from pvsim.hypervisor.traps import EXIT_REASONS

EXIT_REASON_NAMES = {v: k.upper() for k, v in EXIT_REASONS.items()}
TRAP_VECTORS = {"exception": 13, "page_fault": 14, "syscall": 0x80, "device_not_available": 7}
TRAP_NAMES = {v: k for k, v in TRAP_VECTORS.items()}

_GUEST_BASE = TRC_GUEST - 0xF000 + 0x1000  # 0x08001000
PVSIM_TRC_EVTCHN_SEND = _GUEST_BASE + 0xF10
PVSIM_TRC_RING_NOTIFY = _GUEST_BASE + 0xF11
RING_KINDS = {"tx": 0, "rx": 1, "blk": 2}
