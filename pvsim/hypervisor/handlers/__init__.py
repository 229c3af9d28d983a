"""Hypercall handlers, one module per family, each function named ``do_<hypercall>``.

Importing this package registers every handler with :func:`pvsim.hypervisor.dispatch.handler`;
the dispatcher then binds each :mod:`hypercalls.table` entry that names a handler to the
registered function of that name (:func:`pvsim.hypervisor.hypervisor.handlers`).
Modules: ``core`` (trap table, stack switch, FPU, timer, sched_op, vcpu_op, console, version,
iret, multicall, callbacks, vm_assist), ``memory`` (memory_op: ballooning), ``mm``
(mmu_update, update_va_mapping, mmuext_op: PV direct paging in :mod:`pvsim.mm`), ``evtchn``
(event_channel_op), ``gnttab`` (grant_table_op).
"""

from pvsim.hypervisor.handlers import core, evtchn, gnttab, memory, mm  # noqa: F401  (registration)
