"""Names for the numbers inside trace records, and pvsim's own records where Xen has none.

Design note
-----------
The VM-exit reasons are the VMX basic exit reasons (Intel SDM vol. 3 appendix C, as
``pvsim.hypervisor.traps.EXIT_REASONS`` holds them); the trap vectors are x86's (``#PF`` 14, ...;
``xen/arch/x86/include/asm/processor.h`` ``X86_EXC_*``), with Xen's PV system-call entry (no
vector: 0x80 as Linux's int80) for a bounced x86-64 ``syscall``. Xen traces neither event-channel
sends nor ring notifications, so pvsim writes them in the guest class (``TRC_GUEST``, which
``xenalyze`` passes over; ids in ``hypercalls.trace``): ``PVSIM_TRC_EVTCHN_SEND`` ``{dom, port}``
and ``PVSIM_TRC_RING_NOTIFY`` ``{dom, ring, requests in flight}``.
"""

from __future__ import annotations

from hypercalls.trace import PVSIM_RING_KINDS, PVSIM_TRC_EVTCHN_SEND, PVSIM_TRC_RING_NOTIFY  # noqa: F401
from pvsim.hypervisor.traps import EXIT_REASONS, TRAP_VECTORS

EXIT_REASON_NAMES = {v: k.upper() for k, v in EXIT_REASONS.items()}
TRAP_NAMES = {v: k for k, v in TRAP_VECTORS.items()}
RING_KINDS = PVSIM_RING_KINDS
