"""What log-dirty mode costs the guest: the work of its first write to each page per round, per paging.

Design note
-----------
A migrating guest pays for its own dirty-page tracking on its own vCPUs. How it pays is the paging
component's (:data:`pvsim.mm.machine.PAGING`, its ``log_dirty`` attribute), chosen through the mode
table's ``paging`` and ``cpu``, never by mode name:

* ``shadow`` (PV direct paging through shadow log-dirty, ``bt`` and ``hvm-shadow`` through their
  shadows; ``xen/arch/x86/mm/shadow/multi.c`` ``sh_page_fault`` under ``paging_mode_log_dirty``):
  the first write to a page after a ``CLEAN`` hits a read-only shadow L1 entry and faults into Xen,
  which marks the page dirty (``paging_mark_dirty``) and makes the shadow entry writable. The entry
  into Xen is the mode's: a PV #PF (``mmu.logdirty_fault_cycles``, the same price the structural
  :class:`~pvsim.mm.machine.PVMachine` charges), a VT-x #PF exit handled by the shadow code
  (:func:`pvsim.hypervisor.traps.vmexit` ``shadow_fault``), or a binary translator's hidden fault
  (:func:`pvsim.hypervisor.traps.bt_transfer` ``hidden_fault``).
* ``p2m`` with EPT/NPT (``xen/arch/x86/mm/p2m-ept.c``, ``hap/hap.c``): every RAM leaf is
  ``p2m_ram_logdirty`` (read-only); the first write is an ``EPT_VIOLATION`` exit
  (``ept_handle_violation`` -> ``hvm_hap_nested_page_fault``) that changes the entry's type to
  ``p2m_ram_rw`` (``p2m_change_type_one``: a 4-level p2m walk and the entry's write) and marks the
  pfn in the log-dirty trie (``paging_mark_pfn_dirty``: 3 trie levels and the bitmap word).
* ``p2m`` with Intel PML (the profile's ``mmu.pml_count``, only where ``hvm.pml_available_count``
  says the processor has it; ``xen/arch/x86/hvm/vmx/vmcs.c``): the write does not exit; the CPU
  logs the GPA in the vCPU's 512-entry buffer (:data:`PML_ENTITY_NUM`), and the vCPU exits once the
  buffer is full (``EXIT_REASON_PML_FULL``); ``vmx_vcpu_flush_pml_buffer`` then processes each entry
  (``p2m_change_type_one`` + ``paging_mark_pfn_dirty``, as above). Each ``CLEAN`` and ``PEEK``
  first flushes every vCPU's buffer (``paging_log_dirty_op`` -> ``p2m_flush_hardware_cached_dirty``,
  which pauses the domain: one forced exit per vCPU, ``vmx_domain_flush_pml_buffers``).

:func:`model_for` builds the priced work of one event of each kind (a :class:`~pvsim.core.meter.Meter`
per event, so the guest's breakdown shows its causes); :class:`LogDirtyLog` counts the events of a
migration per vCPU -- ``first_writes(n)`` for ``n`` pages newly dirtied, ``flush()`` at a
``CLEAN``/``PEEK`` -- and returns what each vCPU pays, ``(vcpu, work, times)``.

Simplifications: a round's newly dirtied pages are spread evenly over the guest's vCPUs (round
robin of the remainder); the pause of a PML flush is priced as one exit and entry per vCPU (its
deschedule and reschedule are not); superpage splits on the first write (``ept_split_super_page``)
are not priced (after round 1 the p2m's log-dirty leaves are 4 KiB); the KVM-style mode's EPT
log-dirty and PML (``kvm_intel.pml``) are priced by the same rules; the dom0-side ``CLEAN`` cost
stays in :mod:`pvsim.migrate.save`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pvsim.core.meter import Meter
from pvsim.core.profile import Profile
from pvsim.hypervisor import traps
from pvsim.mm.machine import PAGING

PML_ENTITY_NUM = 512  # entries of a vCPU's PML buffer: NR_PML_ENTRIES (xen/include/asm-x86/hvm/vmx/vmcs.h)
P2M_TYPE_CHANGE_REFS = 5  # p2m_change_type_one -> ept_set_entry: 4-level EPT walk + the entry's write [D]
MARK_DIRTY_REFS = 4  # paging_mark_pfn_dirty: map the L4, L3, L2 of the log-dirty trie + the bitmap word
#                      (xen/arch/x86/mm/paging.c) [D]
KINDS = ("shadow", "ept", "pml")


@dataclass(frozen=True)
class LogDirtyModel:
    """The priced work of one log-dirty event of one guest. ``fault``: one first-write fault
    (``shadow``, ``ept``) or, under ``pml``, the processing of one logged entry; ``full_exit`` (pml):
    one PML-full exit, its entries apart; ``flush`` (pml): one vCPU's forced exit at a CLEAN/PEEK."""

    kind: str
    fault: Meter
    fault_ns: float
    full_exit: Meter | None = None
    full_exit_ns: float = 0.0
    flush: Meter | None = None
    flush_ns: float = 0.0


def _ns(m: Meter, prof: Profile) -> float:
    return m.total_cycles(prof) / prof.clock_ghz


def _shadow_pv(m: Meter, prof: Profile) -> None:
    m.add("mmu.log_dirty", "mmu.logdirty_fault_cycles")


def _shadow_vtx(m: Meter, prof: Profile) -> None:
    traps.vmexit(m, prof, "exception_nmi", handling="shadow_fault")


def _shadow_bt(m: Meter, prof: Profile) -> None:
    traps.bt_transfer(m, prof, "hidden_fault")


# how a shadow-mode write fault enters the hypervisor, by the mode table's ``cpu``
SHADOW_ENTRY = {"paravirt": _shadow_pv, "vtx": _shadow_vtx, "translated": _shadow_bt}


def pml_enabled(prof: Profile) -> bool:
    """The profile asks for PML (``mmu.pml_count``) and its processor has it."""
    return (prof.has("mmu.pml_count") and prof.value("mmu.pml_count") >= 1
            and prof.has("hvm.pml_available_count") and prof.value("hvm.pml_available_count") >= 1)


def pml_refusal(prof: Profile) -> str | None:
    """Why the profile's ``mmu.pml_count`` cannot be (it is 0 or 1, and 1 needs PML hardware), or None."""
    if not prof.has("mmu.pml_count"):
        return None
    v = prof.value("mmu.pml_count")
    if v not in (0, 1):
        return f"mmu.pml_count must be 0 or 1, got {v:g}"
    if v == 1 and not (prof.has("hvm.pml_available_count") and prof.value("hvm.pml_available_count") >= 1):
        return (f"mmu.pml_count = 1 asks for Intel PML, which profile {prof.name!r}'s processor lacks "
                "(hvm.pml_available_count is not 1)")
    return None


def model_for(mode, prof: Profile) -> LogDirtyModel | None:
    """The log-dirty work of a guest of ``mode`` (a :class:`guest_kernels.modes.ModeSpec`) on a host of
    profile ``prof``; None where the paging has no hypervisor to track it."""
    how = PAGING[mode.paging].log_dirty
    if how is None:
        return None
    m = Meter()
    if how == "shadow":
        entry = SHADOW_ENTRY.get(mode.cpu)
        if entry is None:
            return None
        entry(m, prof)
        m.count("mmu.log_dirty_fault")
        return LogDirtyModel("shadow", m, _ns(m, prof))
    refs = P2M_TYPE_CHANGE_REFS + MARK_DIRTY_REFS
    if not pml_enabled(prof):
        traps.vmexit(m, prof, "ept_violation", handling="simple")
        m.add("mmu.log_dirty", "native.mem_ref_cycles", refs)
        m.count("mmu.log_dirty_fault")
        return LogDirtyModel("ept", m, _ns(m, prof))
    m.add("mmu.log_dirty", "native.mem_ref_cycles", refs)  # one logged entry, processed at a flush
    full = Meter()  # EXIT_REASON_PML_FULL (62): exit, vmx_vmexit_handler, entry
    for key in ("hvm.vmexit_cycles", "hvm.vmentry_cycles", "hvm.exit_handling_cycles"):
        full.add("exit.pml_full", key)
    full.count("exit.pml_full")
    flush = Meter()  # domain_pause's IPI forces the running vCPU out; it re-enters after the flush
    traps.vmexit(flush, prof, "external_interrupt", handling="simple")
    flush.count("mmu.pml_flush")
    return LogDirtyModel("pml", m, _ns(m, prof), full, _ns(full, prof), flush, _ns(flush, prof))


class LogDirtyLog:
    """The log-dirty events of one migrating guest, per vCPU, and their tallies since the last
    :meth:`take` (one round's)."""

    def __init__(self, model: LogDirtyModel, vcpus: int):
        self.model = model
        self.vcpus = max(1, int(vcpus))
        self.fill = [0] * self.vcpus  # PML: entries in each vCPU's buffer
        self._next = 0  # the vCPU that takes the next page of a remainder
        self.faults = 0  # shadow / EPT first-write faults
        self.pml_exits = 0  # PML-full exits
        self.pml_flushes = 0  # vCPU flushes at CLEAN/PEEK
        self.ns = 0.0  # the guest's time on all of them

    def _spread(self, n: int) -> list[int]:
        base, rem = divmod(int(n), self.vcpus)
        per = [base] * self.vcpus
        for k in range(rem):
            per[(self._next + k) % self.vcpus] += 1
        self._next = (self._next + rem) % self.vcpus
        return per

    def first_writes(self, n: int) -> list[tuple[int, Meter, int]]:
        """``n`` pages written for the first time since the last CLEAN: what each vCPU pays."""
        if n <= 0:
            return []
        md, out = self.model, []
        for v, k in enumerate(self._spread(n)):
            if not k:
                continue
            if md.kind != "pml":
                out.append((v, md.fault, k))
                self.faults += k
                self.ns += k * md.fault_ns
                continue
            exits, self.fill[v] = divmod(self.fill[v] + k, PML_ENTITY_NUM)
            if exits:
                out.append((v, md.full_exit, exits))
                out.append((v, md.fault, exits * PML_ENTITY_NUM))
                self.pml_exits += exits
                self.ns += exits * (md.full_exit_ns + PML_ENTITY_NUM * md.fault_ns)
        return out

    def flush(self) -> list[tuple[int, Meter, int]]:
        """A CLEAN or PEEK: under PML every vCPU is paused and its buffer processed; else nothing."""
        md, out = self.model, []
        if md.kind != "pml":
            return out
        for v in range(self.vcpus):
            out.append((v, md.flush, 1))
            if self.fill[v]:
                out.append((v, md.fault, self.fill[v]))
            self.ns += md.flush_ns + self.fill[v] * md.fault_ns
            self.fill[v] = 0
        self.pml_flushes += self.vcpus
        return out

    def take(self) -> tuple[int, int, int, float]:
        """(faults, PML-full exits, PML flushes, guest ns) since the last take; the tallies restart."""
        t = (self.faults, self.pml_exits, self.pml_flushes, self.ns)
        self.faults = self.pml_exits = self.pml_flushes = 0
        self.ns = 0.0
        return t
