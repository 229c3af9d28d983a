"""Hypercall argument records: Python stand-ins for the structures a guest passes in its memory.

Design note
-----------
Each record mirrors one structure of Xen's public headers (``xen/include/public/``: ``xen.h``,
``arch-x86/xen.h``, ``arch-x86/xen-x86_64.h``, ``sched.h``, ``vcpu.h``, ``memory.h``,
``callback.h``, ``version.h``, ``event_channel.h``, ``grant_table.h``), with Xen's field names.
Every field carries ``metadata={"dir": IN|OUT|INOUT, "ctype": ...}``: the direction the header's
``/* IN parameters */`` / ``/* OUT parameters */`` comments give, and the C type, so
:func:`directions` and :func:`check_in` can work on any record. A handler reads IN fields,
writes OUT fields into the same object (the "guest memory"), and returns an ``int``.

How a bad record maps to an errno (the simulator's reading of ``copy_from_guest``):

* an argument that is not a record of the expected class (``None``, an ``int`` used as a
  pointer, another record) cannot be read as guest memory: ``-EFAULT``;
* an IN field that does not hold a value of its C type (not an ``int``, negative in an
  unsigned field, wider than the field) is a malformed structure: ``-EFAULT`` as well, because a
  real guest's memory cannot hold such a value, so the simulated copy fails. Handlers then apply
  Xen's own semantic checks (``-EINVAL``, ``-ESRCH``, ...) to well-formed values.

Strings (``char[]`` outputs of ``xen_version``) are ``bytes``; guest handles to arrays are
Python ``list`` objects (``extent_start``, ``ports``, ``frame_list``).

What the protocol does not guarantee (as Xen's headers state it)
----------------------------------------------------------------
* ``multicall``: after the call the caller may depend only on each entry's ``result``; a
  debug Xen deliberately overwrites the rest of every entry (``xen/common/multicall.c``). Only
  five of the six ``args`` are honoured. A multicall may be preempted and continued; entries
  already run are not re-run.
* OUT fields of an operation that failed are undefined, except ``status`` of per-element grant
  operations and ``result`` of multicall entries.
* ``memory_op`` reservation calls return the number of extents processed, which may be fewer
  than ``nr_extents`` (partial success is not an error); only the first that-many entries of
  ``extent_start`` are meaningful on return.
* ``VCPUOP_down`` may return (and ``VCPUOP_is_up`` may say 0) before the vCPU stops running,
  unless the vCPU downs itself (``vcpu.h``).
* ``VCPU_SSHOTTMR_future`` "can be ignored by the hypervisor" (``vcpu.h``); Xen >= 4.18 ignores
  it and delivers an already-expired timeout at once.
* The runstate area registered with ``VCPUOP_register_runstate_memory_area`` is updated
  non-atomically unless ``VMASST_TYPE_runstate_update_flag`` is enabled, in which case
  ``XEN_RUNSTATE_UPDATE`` is set in ``state_entry_time`` while it is being written.
* ``SCHEDOP_poll`` may return 0 before any of its ports is pending (spurious wake-ups; the guest
  re-checks), and an event sent while its port is already pending is coalesced into one.
* ``set_timer_op``: a timeout more than about 2^50 ns away or negative is replaced by one 100 ms
  from now (``xen/common/sched/core.c``).
* ``shared_info`` "may vary in actual size even within compatible Xen versions" (``xen.h``).
* ``xen_version`` strings are NUL-padded fixed-size arrays and need not be NUL-terminated when
  they fill the array.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from hypercalls import errno as _errno
from hypercalls.ops import DOMID_SELF

IN = "IN"
OUT = "OUT"
INOUT = "INOUT"

# C types and the integer range each holds (x86-64 layout: unsigned long / xen_ulong_t are 64
# bits, xen_pfn_t is 64 bits, domid_t 16, evtchn_port_t and grant_ref_t 32, grant_handle_t 32).
CTYPE_RANGE: dict[str, tuple[int, int]] = {
    "uint8_t": (0, 2**8 - 1),
    "uint16_t": (0, 2**16 - 1),
    "uint32_t": (0, 2**32 - 1),
    "uint64_t": (0, 2**64 - 1),
    "int16_t": (-(2**15), 2**15 - 1),
    "int32_t": (-(2**31), 2**31 - 1),
    "int64_t": (-(2**63), 2**63 - 1),
    "unsigned int": (0, 2**32 - 1),
    "unsigned long": (0, 2**64 - 1),
    "xen_ulong_t": (0, 2**64 - 1),
    "xen_pfn_t": (0, 2**64 - 1),
    "domid_t": (0, 2**16 - 1),
    "evtchn_port_t": (0, 2**32 - 1),
    "grant_ref_t": (0, 2**32 - 1),
    "grant_handle_t": (0, 2**32 - 1),
}


def _f(direction: str, ctype: str, default: Any = 0):
    """A record field with its direction and C type. ``ctype`` ending in ``[]`` is an array
    (a guest handle to an array): a Python ``list``. ``char[]`` is ``bytes``; ``record`` is a
    nested record; ``handle`` is an opaque guest pointer (any object)."""
    md = {"dir": direction, "ctype": ctype}
    if ctype.endswith("[]") and ctype != "char[]":
        return field(default_factory=list if default == 0 else default, metadata=md)
    if ctype == "char[]":
        return field(default=b"", metadata=md)
    if callable(default) and not isinstance(default, int):
        return field(default_factory=default, metadata=md)
    return field(default=default, metadata=md)


def directions(record_cls) -> dict[str, str]:
    """``{field name: "IN" | "OUT" | "INOUT"}`` of a record class (or instance)."""
    return {f.name: f.metadata["dir"] for f in fields(record_cls)}


def ctypes(record_cls) -> dict[str, str]:
    return {f.name: f.metadata["ctype"] for f in fields(record_cls)}


def in_fields(record_cls) -> list[str]:
    return [n for n, d in directions(record_cls).items() if d in (IN, INOUT)]


def out_fields(record_cls) -> list[str]:
    return [n for n, d in directions(record_cls).items() if d in (OUT, INOUT)]


def fits(value: Any, ctype: str) -> bool:
    """Does ``value`` hold a value of C type ``ctype`` (an ``int`` within its range)?"""
    rng = CTYPE_RANGE.get(ctype)
    if rng is None:
        raise KeyError(f"unknown C type {ctype!r}")
    return isinstance(value, int) and rng[0] <= value <= rng[1]


def as_ctype(value: Any, ctype: str) -> int | None:
    """``int(value)`` if it holds a value of ``ctype``, else ``None``."""
    return int(value) if fits(value, ctype) else None


def check_in(record: Any, record_cls) -> int:
    """0 if ``record`` is a readable ``record_cls`` whose IN/INOUT fields hold values of their C
    types, else ``-EFAULT`` (see the module docstring). Arrays are checked element by element;
    nested records recursively; ``handle`` fields are not checked."""
    if not isinstance(record, record_cls):
        return -_errno.EFAULT
    for f in fields(record_cls):
        if f.metadata["dir"] not in (IN, INOUT):
            continue
        ctype = f.metadata["ctype"]
        value = getattr(record, f.name, None)
        if ctype == "handle":
            continue
        if ctype == "record":
            if not is_dataclass(value) or check_in(value, type(value)):
                return -_errno.EFAULT
        elif ctype == "char[]":
            if not isinstance(value, (bytes, bytearray)):
                return -_errno.EFAULT
        elif ctype.endswith("[]"):
            base = ctype[:-2]
            if not isinstance(value, list):
                return -_errno.EFAULT
            if f.metadata["dir"] == IN and not all(fits(v, base) for v in value):
                return -_errno.EFAULT
        elif not fits(value, ctype):
            return -_errno.EFAULT
    return 0


_SHAPES: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _shape(cls: type) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(int field names, copy-pointer field names) of a record class (computed once per class)."""
    sh = _SHAPES.get(cls)
    if sh is None:
        fs = fields(cls)
        sh = _SHAPES[cls] = (tuple(f.name for f in fs if f.type == "int"),
                             tuple(f.name for f in fs if f.type == "GnttabCopyPtr"))
    return sh


def well_formed(rec) -> bool:
    """True if every ``int`` field of an argument record holds an int (not a bool), and nested
    copy pointers are well formed too: what a real ``copy_from_guest`` of the struct guarantees."""
    ints, ptrs = _shape(type(rec))
    for name in ints:
        v = getattr(rec, name)
        if v.__class__ is not int and (isinstance(v, bool) or not isinstance(v, int)):
            return False
    for name in ptrs:
        v = getattr(rec, name)
        if not (isinstance(v, GnttabCopyPtr) and well_formed(v)):
            return False
    return True


def check_array(value: Any, ctype: str, count: int) -> int:
    """0 if ``value`` is a guest array of at least ``count`` elements of ``ctype`` (the
    simulator's ``guest_handle_okay`` plus the copy), else ``-EFAULT``."""
    if not isinstance(value, list) or count > len(value):
        return -_errno.EFAULT
    if not all(fits(v, ctype) for v in value[:count]):
        return -_errno.EFAULT
    return 0


# ============================================================================================
# xen.h / arch-x86
# ============================================================================================
@dataclass
class TrapInfo:
    """``struct trap_info`` (arch-x86/xen.h): one virtual-IDT entry for ``set_trap_table``. An
    entry with ``address == 0`` terminates the array."""

    vector: int = _f(IN, "uint8_t")
    flags: int = _f(IN, "uint8_t")  # 0-1: DPL; 2: clear event enable (interrupt gate)
    cs: int = _f(IN, "uint16_t")
    address: int = _f(IN, "unsigned long")


@dataclass
class MmuUpdate:
    """``struct mmu_update`` (xen.h): ``ptr`` = machine address of the PTE with the
    ``MMU_*`` sub-command in bits 1:0; ``val`` = new PTE contents."""

    ptr: int = _f(IN, "uint64_t")
    val: int = _f(IN, "uint64_t")


@dataclass
class MmuextOp:
    """``struct mmuext_op`` (xen.h). ``arg1`` is the union {mfn, linear_addr}; ``arg2`` the
    union {nr_ents, vcpumask, src_mfn}; the union members are properties aliasing them.
    ``vcpumask`` is a guest pointer to a vCPU bitmap: here an ``int`` bitmap (or a list of
    vCPU ids)."""

    cmd: int = _f(IN, "unsigned int")
    arg1: int = _f(IN, "xen_pfn_t")
    arg2: Any = _f(IN, "handle")

    # arg1 union
    @property
    def mfn(self) -> int:
        return self.arg1

    @mfn.setter
    def mfn(self, v: int) -> None:
        self.arg1 = v

    @property
    def linear_addr(self) -> int:
        return self.arg1

    @linear_addr.setter
    def linear_addr(self, v: int) -> None:
        self.arg1 = v

    # arg2 union
    @property
    def nr_ents(self):
        return self.arg2

    @nr_ents.setter
    def nr_ents(self, v) -> None:
        self.arg2 = v

    @property
    def vcpumask(self):
        return self.arg2

    @vcpumask.setter
    def vcpumask(self, v) -> None:
        self.arg2 = v

    @property
    def src_mfn(self):
        return self.arg2

    @src_mfn.setter
    def src_mfn(self, v) -> None:
        self.arg2 = v


@dataclass
class MulticallEntry:
    """``struct multicall_entry`` (xen.h): 64 bytes; ``op`` = hypercall number; ``result`` is
    written by Xen; ``args[6]`` of which Xen uses five. In the simulator an argument may be a
    record (standing for a pointer to it)."""

    op: int = _f(IN, "xen_ulong_t")
    result: int = _f(OUT, "xen_ulong_t")
    args: list = _f(IN, "handle", default=lambda: [0] * 6)


@dataclass
class IretContext:
    """``struct iret_context`` (arch-x86/xen-x86_64.h): the frame the guest pushes before
    jumping to ``HYPERVISOR_iret``. ``flags`` may hold ``VGCF_in_syscall``."""

    rax: int = _f(IN, "uint64_t")
    r11: int = _f(IN, "uint64_t")
    rcx: int = _f(IN, "uint64_t")
    flags: int = _f(IN, "uint64_t")
    rip: int = _f(IN, "uint64_t")
    cs: int = _f(IN, "uint64_t")
    rflags: int = _f(IN, "uint64_t")
    rsp: int = _f(IN, "uint64_t")
    ss: int = _f(IN, "uint64_t")


@dataclass
class VcpuGuestContext:
    """The part of ``struct vcpu_guest_context`` (arch-x86/xen.h) the model uses, for
    ``VCPUOP_initialise``: entry point, stack, page-table base and callbacks."""

    flags: int = _f(IN, "unsigned long")
    rip: int = _f(IN, "uint64_t")
    rsp: int = _f(IN, "uint64_t")
    kernel_ss: int = _f(IN, "unsigned long")
    kernel_sp: int = _f(IN, "unsigned long")
    ctrlreg3: int = _f(IN, "unsigned long")  # ctrlreg[3]: page-table base (xen_pfn_to_cr3)
    event_callback_eip: int = _f(IN, "unsigned long")
    failsafe_callback_eip: int = _f(IN, "unsigned long")
    syscall_callback_eip: int = _f(IN, "unsigned long")
    trap_ctxt: list = _f(IN, "handle")  # list[TrapInfo]


# ============================================================================================
# vcpu.h
# ============================================================================================
@dataclass
class VcpuRunstateInfo:
    """``struct vcpu_runstate_info`` (vcpu.h): ``time[4]`` = ns spent in each RUNSTATE_*."""

    state: int = _f(OUT, "int32_t")
    state_entry_time: int = _f(OUT, "uint64_t")
    time: list = _f(OUT, "uint64_t[]", default=lambda: [0, 0, 0, 0])


@dataclass
class VcpuRegisterRunstateMemoryArea:
    """``struct vcpu_register_runstate_memory_area`` (vcpu.h): ``addr`` is a guest handle to a
    :class:`VcpuRunstateInfo`, which Xen then keeps up to date."""

    addr: Any = _f(IN, "handle", default=None)


@dataclass
class VcpuSetPeriodicTimer:
    """``struct vcpu_set_periodic_timer`` (vcpu.h)."""

    period_ns: int = _f(IN, "uint64_t")


@dataclass
class VcpuSetSingleshotTimer:
    """``struct vcpu_set_singleshot_timer`` (vcpu.h): absolute system time in ns, and
    ``VCPU_SSHOTTMR_*`` flags."""

    timeout_abs_ns: int = _f(IN, "uint64_t")
    flags: int = _f(IN, "uint32_t")


@dataclass
class VcpuRegisterVcpuInfo:
    """``struct vcpu_register_vcpu_info`` (vcpu.h): where to place this vCPU's ``vcpu_info``."""

    mfn: int = _f(IN, "uint64_t")
    offset: int = _f(IN, "uint32_t")
    rsvd: int = _f(IN, "uint32_t")


@dataclass
class VcpuGetPhysid:
    """``struct vcpu_get_physid`` (vcpu.h)."""

    phys_id: int = _f(OUT, "uint64_t")


# ============================================================================================
# sched.h
# ============================================================================================
@dataclass
class SchedShutdown:
    """``struct sched_shutdown`` (sched.h): ``reason`` is a ``SHUTDOWN_*``."""

    reason: int = _f(IN, "unsigned int")


@dataclass
class SchedPoll:
    """``struct sched_poll`` (sched.h): block until one of ``ports`` is pending, or until the
    absolute system time ``timeout`` (0 = none)."""

    ports: list = _f(IN, "evtchn_port_t[]")
    nr_ports: int = _f(IN, "unsigned int")
    timeout: int = _f(IN, "uint64_t")


@dataclass
class SchedRemoteShutdown:
    """``struct sched_remote_shutdown`` (sched.h)."""

    domain_id: int = _f(IN, "domid_t")
    reason: int = _f(IN, "unsigned int")


@dataclass
class SchedWatchdog:
    """``struct sched_watchdog`` (sched.h): id 0 creates; id != 0 with timeout 0 destroys."""

    id: int = _f(IN, "uint32_t")
    timeout: int = _f(IN, "uint32_t")  # seconds


@dataclass
class SchedPinOverride:
    """``struct sched_pin_override`` (sched.h)."""

    pcpu: int = _f(IN, "int32_t")


# ============================================================================================
# memory.h
# ============================================================================================
@dataclass
class XenMemoryReservation:
    """``struct xen_memory_reservation`` (memory.h). ``extent_start``: increase_reservation
    OUT (MFN bases allocated), decrease_reservation IN (GMFN bases to free), populate_physmap
    IN GPFNs / OUT GMFNs."""

    extent_start: list = _f(INOUT, "xen_pfn_t[]")
    nr_extents: int = _f(IN, "xen_ulong_t")
    extent_order: int = _f(IN, "unsigned int")
    mem_flags: int = _f(IN, "unsigned int")
    domid: int = _f(IN, "domid_t", default=DOMID_SELF)


@dataclass
class XenMemoryDomain:
    """``struct xen_memory_domain`` (memory.h): the domid for current/maximum_reservation."""

    domid: int = _f(IN, "domid_t", default=DOMID_SELF)


# ============================================================================================
# callback.h
# ============================================================================================
@dataclass
class CallbackRegister:
    """``struct callback_register`` (callback.h): ``type`` CALLBACKTYPE_*, ``flags``
    CALLBACKF_*, ``address`` the entry point (x86-64: a plain address)."""

    type: int = _f(IN, "uint16_t")
    flags: int = _f(IN, "uint16_t")
    address: int = _f(IN, "unsigned long")


@dataclass
class CallbackUnregister:
    """``struct callback_unregister`` (callback.h)."""

    type: int = _f(IN, "uint16_t")
    _unused: int = _f(IN, "uint16_t")


# ============================================================================================
# event_channel.h
# ============================================================================================
@dataclass
class EvtchnAllocUnbound:
    dom: int = _f(IN, "domid_t", default=DOMID_SELF)
    remote_dom: int = _f(IN, "domid_t")
    port: int = _f(OUT, "evtchn_port_t")


@dataclass
class EvtchnBindInterdomain:
    remote_dom: int = _f(IN, "domid_t")
    remote_port: int = _f(IN, "evtchn_port_t")
    local_port: int = _f(OUT, "evtchn_port_t")


@dataclass
class EvtchnBindVirq:
    virq: int = _f(IN, "uint32_t")
    vcpu: int = _f(IN, "uint32_t")
    port: int = _f(OUT, "evtchn_port_t")


@dataclass
class EvtchnBindPirq:
    pirq: int = _f(IN, "uint32_t")
    flags: int = _f(IN, "uint32_t")  # BIND_PIRQ__*
    port: int = _f(OUT, "evtchn_port_t")


@dataclass
class EvtchnBindIpi:
    vcpu: int = _f(IN, "uint32_t")
    port: int = _f(OUT, "evtchn_port_t")


@dataclass
class EvtchnClose:
    port: int = _f(IN, "evtchn_port_t")


@dataclass
class EvtchnSend:
    port: int = _f(IN, "evtchn_port_t")


@dataclass
class EvtchnStatus:
    """``struct evtchn_status``. The OUT union ``u`` is a dict holding the member that applies:
    ``{"unbound": {"dom": d}}``, ``{"interdomain": {"dom": d, "port": p}}``, ``{"pirq": n}`` or
    ``{"virq": n}`` (empty when closed)."""

    dom: int = _f(IN, "domid_t", default=DOMID_SELF)
    port: int = _f(IN, "evtchn_port_t")
    status: int = _f(OUT, "uint32_t")
    vcpu: int = _f(OUT, "uint32_t")
    u: dict = _f(OUT, "handle", default=dict)


@dataclass
class EvtchnBindVcpu:
    port: int = _f(IN, "evtchn_port_t")
    vcpu: int = _f(IN, "uint32_t")


@dataclass
class EvtchnUnmask:
    port: int = _f(IN, "evtchn_port_t")


@dataclass
class EvtchnReset:
    dom: int = _f(IN, "domid_t", default=DOMID_SELF)


@dataclass
class EvtchnInitControl:
    control_gfn: int = _f(IN, "uint64_t")
    offset: int = _f(IN, "uint32_t")
    vcpu: int = _f(IN, "uint32_t")
    link_bits: int = _f(OUT, "uint8_t")


@dataclass
class EvtchnExpandArray:
    array_gfn: int = _f(IN, "uint64_t")


@dataclass
class EvtchnSetPriority:
    port: int = _f(IN, "evtchn_port_t")
    priority: int = _f(IN, "uint32_t")


# ============================================================================================
# grant_table.h
# ============================================================================================
@dataclass
class GnttabMapGrantRef:
    host_addr: int = _f(IN, "uint64_t")
    flags: int = _f(IN, "uint32_t")  # GNTMAP_*
    ref: int = _f(IN, "grant_ref_t")
    dom: int = _f(IN, "domid_t")
    status: int = _f(OUT, "int16_t")  # GNTST_*
    handle: int = _f(OUT, "grant_handle_t")
    dev_bus_addr: int = _f(OUT, "uint64_t")


@dataclass
class GnttabUnmapGrantRef:
    host_addr: int = _f(IN, "uint64_t")
    dev_bus_addr: int = _f(IN, "uint64_t")
    handle: int = _f(IN, "grant_handle_t")
    status: int = _f(OUT, "int16_t")


@dataclass
class GnttabUnmapAndReplace:
    host_addr: int = _f(IN, "uint64_t")
    new_addr: int = _f(IN, "uint64_t")
    handle: int = _f(IN, "grant_handle_t")
    status: int = _f(OUT, "int16_t")


@dataclass
class GnttabSetupTable:
    """``frame_list`` is a guest array Xen fills with ``nr_frames`` frame numbers."""

    dom: int = _f(IN, "domid_t", default=DOMID_SELF)
    nr_frames: int = _f(IN, "uint32_t")
    status: int = _f(OUT, "int16_t")
    frame_list: list = _f(OUT, "xen_pfn_t[]")


@dataclass
class GnttabDumpTable:
    dom: int = _f(IN, "domid_t", default=DOMID_SELF)
    status: int = _f(OUT, "int16_t")


@dataclass
class GnttabTransfer:
    mfn: int = _f(IN, "xen_pfn_t")
    domid: int = _f(IN, "domid_t")
    ref: int = _f(IN, "grant_ref_t")
    status: int = _f(OUT, "int16_t")


@dataclass
class GnttabCopyPtr:
    """``struct gnttab_copy_ptr``: the union ``u`` {ref, gmfn} is given as two fields; the
    copy's ``GNTCOPY_source_gref`` / ``GNTCOPY_dest_gref`` flag says which one Xen reads."""

    ref: int = _f(IN, "grant_ref_t")
    gmfn: int = _f(IN, "xen_pfn_t")
    domid: int = _f(IN, "domid_t", default=DOMID_SELF)
    offset: int = _f(IN, "uint16_t")


@dataclass
class GnttabCopy:
    source: GnttabCopyPtr = _f(IN, "record", default=GnttabCopyPtr)
    dest: GnttabCopyPtr = _f(IN, "record", default=GnttabCopyPtr)
    len: int = _f(IN, "uint16_t")
    flags: int = _f(IN, "uint16_t")  # GNTCOPY_*
    status: int = _f(OUT, "int16_t")


@dataclass
class GnttabQuerySize:
    dom: int = _f(IN, "domid_t", default=DOMID_SELF)
    nr_frames: int = _f(OUT, "uint32_t")
    max_nr_frames: int = _f(OUT, "uint32_t")
    status: int = _f(OUT, "int16_t")


@dataclass
class GnttabSetVersion:
    version: int = _f(INOUT, "uint32_t")


@dataclass
class GnttabGetVersion:
    dom: int = _f(IN, "domid_t", default=DOMID_SELF)
    pad: int = _f(IN, "uint16_t")
    version: int = _f(OUT, "uint32_t")


# ============================================================================================
# version.h (xen_version outputs)
# ============================================================================================
@dataclass
class XenExtraversion:
    """``xen_extraversion_t``: ``char[16]``."""

    extraversion: bytes = _f(OUT, "char[]")


@dataclass
class XenCompileInfo:
    """``struct xen_compile_info``: char[64], char[16], char[32], char[32]."""

    compiler: bytes = _f(OUT, "char[]")
    compile_by: bytes = _f(OUT, "char[]")
    compile_domain: bytes = _f(OUT, "char[]")
    compile_date: bytes = _f(OUT, "char[]")


@dataclass
class XenCapabilitiesInfo:
    """``xen_capabilities_info_t``: ``char[1024]``, e.g. ``b"xen-3.0-x86_64 hvm-3.0-x86_64"``."""

    info: bytes = _f(OUT, "char[]")


@dataclass
class XenChangesetInfo:
    """``xen_changeset_info_t``: ``char[64]``."""

    info: bytes = _f(OUT, "char[]")


@dataclass
class XenPlatformParameters:
    """``struct xen_platform_parameters``: start of the hypervisor hole."""

    virt_start: int = _f(OUT, "xen_ulong_t")


@dataclass
class XenFeatureInfo:
    """``struct xen_feature_info``: which 32-bit submap (IN) and its bits (OUT, XENFEAT_*)."""

    submap_idx: int = _f(IN, "uint32_t")
    submap: int = _f(OUT, "uint32_t")


@dataclass
class XenCommandline:
    """``xen_commandline_t`` (``char[1024]``), output of ``XENVER_commandline``."""

    cmdline: bytes = _f(OUT, "char[]")


@dataclass
class XenDomainHandle:
    """``xen_domain_handle_t`` (``uint8_t[16]``), output of ``XENVER_guest_handle``."""

    handle: bytes = _f(OUT, "char[]")


@dataclass
class XenVarbuf:
    """``struct xen_varbuf`` (``XENVER_*2`` and ``build_id``): ``len`` IN = size of ``buf``."""

    len: int = _f(IN, "uint32_t")
    buf: bytes = _f(OUT, "char[]")


RECORDS: dict[str, type] = {
    name: obj
    for name, obj in dict(globals()).items()
    if isinstance(obj, type) and is_dataclass(obj) and obj.__module__ == __name__
}

__all__ = [
    "IN", "OUT", "INOUT", "CTYPE_RANGE", "directions", "ctypes", "in_fields", "out_fields",
    "fits", "as_ctype", "check_in", "check_array", "RECORDS", *RECORDS,
]

