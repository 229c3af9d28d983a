"""Event-channel and grant-table ABI: sub-op numbers, status codes and argument records.

Design note
-----------
Values and names are verbatim from ``xen/include/public/event_channel.h``,
``xen/include/public/grant_table.h`` and ``xen/include/public/xen.h`` (VIRQs). The argument
records stand for the guest-memory structures (``struct evtchn_*``, ``struct gnttab_*``); every
field is marked IN or OUT as the header does. The ABI engineer will re-export these from
``hypercalls.ops`` / ``hypercalls.args``; until then they live here.

Simplifications: guest handles are Python lists of records; no compat (32-bit) layout translation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

# ---------------------------------------------------------------- event_channel.h
EVTCHNOP_bind_interdomain = 0
EVTCHNOP_bind_virq = 1
EVTCHNOP_bind_pirq = 2
EVTCHNOP_close = 3
EVTCHNOP_send = 4
EVTCHNOP_status = 5
EVTCHNOP_alloc_unbound = 6
EVTCHNOP_bind_ipi = 7
EVTCHNOP_bind_vcpu = 8
EVTCHNOP_unmask = 9
EVTCHNOP_reset = 10
EVTCHNOP_init_control = 11
EVTCHNOP_expand_array = 12
EVTCHNOP_set_priority = 13
EVTCHNOP_reset_cont = 14  # __XEN__ only

EVTCHNSTAT_closed = 0
EVTCHNSTAT_unbound = 1
EVTCHNSTAT_interdomain = 2
EVTCHNSTAT_pirq = 3
EVTCHNSTAT_virq = 4
EVTCHNSTAT_ipi = 5

BIND_PIRQ__WILL_SHARE = 1

# EVTCHN_2L_NR_CHANNELS = sizeof(xen_ulong_t) * sizeof(xen_ulong_t) * 64
BITS_PER_XEN_ULONG_64 = 64
BITS_PER_XEN_ULONG_32 = 32
EVTCHN_2L_NR_CHANNELS = 8 * 8 * 64  # 4096 for a 64-bit guest
EVTCHN_2L_NR_CHANNELS_32 = 4 * 4 * 64  # 1024 for a 32-bit guest (compat shared_info)
EVTCHN_FIFO_NR_CHANNELS = 1 << 17

# xen.h VIRQs
VIRQ_TIMER = 0
VIRQ_DEBUG = 1
VIRQ_CONSOLE = 2
VIRQ_DOM_EXC = 3
VIRQ_TBUF = 4
VIRQ_DEBUGGER = 6
VIRQ_XENOPROF = 7
VIRQ_CON_RING = 8
VIRQ_PCPU_STATE = 9
VIRQ_MEM_EVENT = 10
VIRQ_ARGO = 11
VIRQ_ENOMEM = 12
VIRQ_XENPMU = 13
NR_VIRQS = 24
# per-vCPU VIRQs (virq_is_global() is false for these; event_channel.c)
VIRQ_PER_VCPU = frozenset({VIRQ_TIMER, VIRQ_DEBUG, VIRQ_XENPMU})


@dataclass
class EvtchnAllocUnbound:
    dom: int  # IN
    remote_dom: int  # IN
    port: int = 0  # OUT


@dataclass
class EvtchnBindInterdomain:
    remote_dom: int  # IN
    remote_port: int  # IN
    local_port: int = 0  # OUT


@dataclass
class EvtchnBindVirq:
    virq: int  # IN
    vcpu: int  # IN
    port: int = 0  # OUT


@dataclass
class EvtchnBindIpi:
    vcpu: int  # IN
    port: int = 0  # OUT


@dataclass
class EvtchnClose:
    port: int  # IN


@dataclass
class EvtchnSend:
    port: int  # IN


@dataclass
class EvtchnStatus:
    dom: int  # IN
    port: int  # IN
    status: int = EVTCHNSTAT_closed  # OUT
    vcpu: int = 0  # OUT
    u: dict = field(default_factory=dict)  # OUT: unbound.dom / interdomain.{dom,port} / pirq / virq


@dataclass
class EvtchnBindVcpu:
    port: int  # IN
    vcpu: int  # IN


@dataclass
class EvtchnUnmask:
    port: int  # IN


@dataclass
class EvtchnReset:
    dom: int  # IN


# ---------------------------------------------------------------- grant_table.h
GNTTABOP_map_grant_ref = 0
GNTTABOP_unmap_grant_ref = 1
GNTTABOP_setup_table = 2
GNTTABOP_dump_table = 3
GNTTABOP_transfer = 4
GNTTABOP_copy = 5
GNTTABOP_query_size = 6
GNTTABOP_unmap_and_replace = 7
GNTTABOP_set_version = 8
GNTTABOP_get_status_frames = 9
GNTTABOP_get_version = 10
GNTTABOP_swap_grant_ref = 11
GNTTABOP_cache_flush = 12

GTF_invalid = 0 << 0
GTF_permit_access = 1 << 0
GTF_accept_transfer = 2 << 0
GTF_transitive = 3 << 0
GTF_type_mask = 3 << 0
_GTF_readonly = 2
GTF_readonly = 1 << _GTF_readonly
_GTF_reading = 3
GTF_reading = 1 << _GTF_reading
_GTF_writing = 4
GTF_writing = 1 << _GTF_writing
_GTF_PWT = 5
GTF_PWT = 1 << _GTF_PWT
_GTF_PCD = 6
GTF_PCD = 1 << _GTF_PCD
_GTF_PAT = 7
GTF_PAT = 1 << _GTF_PAT
_GTF_sub_page = 8
GTF_sub_page = 1 << _GTF_sub_page
_GTF_transfer_committed = 2
GTF_transfer_committed = 1 << _GTF_transfer_committed
_GTF_transfer_completed = 3
GTF_transfer_completed = 1 << _GTF_transfer_completed

_GNTMAP_device_map = 0
GNTMAP_device_map = 1 << _GNTMAP_device_map
_GNTMAP_host_map = 1
GNTMAP_host_map = 1 << _GNTMAP_host_map
_GNTMAP_readonly = 2
GNTMAP_readonly = 1 << _GNTMAP_readonly
_GNTMAP_application_map = 3
GNTMAP_application_map = 1 << _GNTMAP_application_map
_GNTMAP_contains_pte = 4
GNTMAP_contains_pte = 1 << _GNTMAP_contains_pte

_GNTCOPY_source_gref = 0
GNTCOPY_source_gref = 1 << _GNTCOPY_source_gref
_GNTCOPY_dest_gref = 1
GNTCOPY_dest_gref = 1 << _GNTCOPY_dest_gref

GNTST_okay = 0
GNTST_general_error = -1
GNTST_bad_domain = -2
GNTST_bad_gntref = -3
GNTST_bad_handle = -4
GNTST_bad_virt_addr = -5
GNTST_bad_dev_addr = -6
GNTST_no_device_space = -7
GNTST_permission_denied = -8
GNTST_bad_page = -9
GNTST_bad_copy_arg = -10
GNTST_address_too_big = -11
GNTST_eagain = -12
GNTST_no_space = -13

GNTTAB_NR_RESERVED_ENTRIES = 8
GNTTAB_RESERVED_CONSOLE = 0
GNTTAB_RESERVED_XENSTORE = 1
GRANT_ENTRY_V1_BYTES = 8
GRANT_ENTRIES_PER_PAGE_V1 = 4096 // GRANT_ENTRY_V1_BYTES  # 512
# xen/common/grant_table.c
GNTTAB_MAX_FRAMES_DEFAULT = 64  # gnttab_max_frames
GNTTAB_MAX_MAPTRACK_FRAMES_DEFAULT = 1024  # gnttab_max_maptrack_frames
MAPTRACK_PER_PAGE = 4096 // 16  # sizeof(struct grant_mapping) == 16
GNTTAB_UNMAP_BATCH_SIZE = 32
PAGE_SIZE = 4096


@dataclass
class GnttabMapGrantRef:
    host_addr: int  # IN
    flags: int  # IN: GNTMAP_*
    ref: int  # IN
    dom: int  # IN
    status: int = GNTST_okay  # OUT
    handle: int = -1  # OUT
    dev_bus_addr: int = 0  # OUT


@dataclass
class GnttabUnmapGrantRef:
    host_addr: int  # IN
    dev_bus_addr: int  # IN
    handle: int  # IN
    status: int = GNTST_okay  # OUT


@dataclass
class GnttabCopyPtr:
    """One side of a copy: ``u.ref`` (if the GNTCOPY_*_gref flag is set) or ``u.gmfn``."""

    ref: int = 0
    gmfn: int = 0
    domid: int = 0
    offset: int = 0


@dataclass
class GnttabCopy:
    source: GnttabCopyPtr  # IN
    dest: GnttabCopyPtr  # IN
    len: int  # IN
    flags: int  # IN: GNTCOPY_*
    status: int = GNTST_okay  # OUT


@dataclass
class GnttabSetupTable:
    dom: int  # IN
    nr_frames: int  # IN
    status: int = GNTST_okay  # OUT
    frame_list: list = field(default_factory=list)  # OUT


@dataclass
class GnttabQuerySize:
    dom: int  # IN
    nr_frames: int = 0  # OUT
    max_nr_frames: int = 0  # OUT
    status: int = GNTST_okay  # OUT


@dataclass
class GnttabSetVersion:
    version: int  # IN (OUT: the version in force)


def well_formed(rec) -> bool:
    """True if every ``int`` field of an argument record holds an int (not a bool), and nested
    copy pointers are well formed too: what a real ``copy_from_guest`` of the struct guarantees."""
    for f in fields(rec):
        v = getattr(rec, f.name)
        if f.type == "int" and (isinstance(v, bool) or not isinstance(v, int)):
            return False
        if f.type == "GnttabCopyPtr" and not (isinstance(v, GnttabCopyPtr) and well_formed(v)):
            return False
    return True
