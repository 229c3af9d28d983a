"""Hypercall handlers, one module per family, each function named ``do_<hypercall>``.

Importing this package registers every handler with :func:`pvsim.hypervisor.hypervisor.handler`.
Modules: ``core`` (trap table, stack switch, FPU, timer, sched_op, vcpu_op, console, version,
iret, multicall, callbacks, vm_assist), ``memory`` (memory_op: ballooning), ``mm``
(mmu_update, update_va_mapping, mmuext_op: PV direct paging in :mod:`pvsim.mm`), ``evtchn``
(event_channel_op), ``gnttab`` (grant_table_op).
"""

import importlib

for _mod in ("core", "memory", "mm", "evtchn", "gnttab"):
    try:
        importlib.import_module(f"{__name__}.{_mod}")
    except ModuleNotFoundError as e:  # a family not written yet
        if e.name != f"{__name__}.{_mod}":
            raise
