"""Wiring the memory model into a :class:`~pvsim.hypervisor.hypervisor.Hypervisor` (build time).

Design note
-----------
The builder calls :func:`attach_machine_memory` once per host (it sets ``hv.machine_mm``, the
object the ``memory_op`` handler calls ``alloc_domheap_page``/``free_domheap_page`` on) and
:func:`add_domain_memory` per domain (it allocates the domain's frames and sets ``dom.mm``).
"""

from __future__ import annotations

from pvsim.mm.frames import DomainMM, MachineMemory


def attach_machine_memory(hv, nr_frames: int, *, linear_pt: bool = False, preempt_every: int = 0) -> MachineMemory:
    mm = MachineMemory(nr_frames, linear_pt=linear_pt, preempt_every=preempt_every)
    hv.machine_mm = mm
    return mm


def add_domain_memory(hv, dom, nr_pages: int) -> DomainMM:
    if hv.machine_mm is None:
        raise ValueError("attach_machine_memory() first")
    dmm = hv.machine_mm.add_domain(dom.domid, nr_pages, nr_vcpus=dom.nr_vcpus, mode=dom.mode,
                                   privileged=dom.privileged)
    dom.mm = dmm
    if not dom.tot_pages:
        dom.tot_pages = nr_pages
        dom.max_pages = max(dom.max_pages, nr_pages)
    return dmm
