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

from dataclasses import fields

from hypercalls.args import (  # noqa: F401, E402  the canonical argument records
    EvtchnAllocUnbound,
    EvtchnBindInterdomain,
    EvtchnBindIpi,
    EvtchnBindVcpu,
    EvtchnBindVirq,
    EvtchnClose,
    EvtchnReset,
    EvtchnSend,
    EvtchnStatus,
    EvtchnUnmask,
    GnttabCopy,
    GnttabCopyPtr,
    GnttabMapGrantRef,
    GnttabQuerySize,
    GnttabSetupTable,
    GnttabSetVersion,
    GnttabUnmapGrantRef,
)

# ---------------------------------------------------------------- event_channel.h
from hypercalls.ops import (  # noqa: F401, E402  the canonical ABI constants (xen/include/public)
    _GTF_PAT,
    _GTF_PCD,
    _GTF_PWT,
    BIND_PIRQ__WILL_SHARE,
    EVTCHN_2L_NR_CHANNELS,
    EVTCHN_2L_NR_CHANNELS_32,
    EVTCHN_FIFO_NR_CHANNELS,
    GNTTAB_NR_RESERVED_ENTRIES,
    GNTTAB_RESERVED_CONSOLE,
    GNTTAB_RESERVED_XENSTORE,
    GNTTAB_UNMAP_BATCH_SIZE,
    GTF_PAT,
    GTF_PCD,
    GTF_PWT,
    NR_VIRQS,
    VIRQ_ARGO,
    VIRQ_CON_RING,
    VIRQ_CONSOLE,
    VIRQ_DEBUG,
    VIRQ_DEBUGGER,
    VIRQ_DOM_EXC,
    VIRQ_ENOMEM,
    VIRQ_MEM_EVENT,
    VIRQ_PCPU_STATE,
    VIRQ_TBUF,
    VIRQ_TIMER,
    VIRQ_XENOPROF,
    VIRQ_XENPMU,
    EVTCHNOP_alloc_unbound,
    EVTCHNOP_bind_interdomain,
    EVTCHNOP_bind_ipi,
    EVTCHNOP_bind_pirq,
    EVTCHNOP_bind_vcpu,
    EVTCHNOP_bind_virq,
    EVTCHNOP_close,
    EVTCHNOP_expand_array,
    EVTCHNOP_init_control,
    EVTCHNOP_reset,
    EVTCHNOP_reset_cont,
    EVTCHNOP_send,
    EVTCHNOP_set_priority,
    EVTCHNOP_status,
    EVTCHNOP_unmask,
    EVTCHNSTAT_closed,
    EVTCHNSTAT_interdomain,
    EVTCHNSTAT_ipi,
    EVTCHNSTAT_pirq,
    EVTCHNSTAT_unbound,
    EVTCHNSTAT_virq,
    GNTCOPY_dest_gref,
    GNTCOPY_source_gref,
    GNTMAP_application_map,
    GNTMAP_contains_pte,
    GNTMAP_device_map,
    GNTMAP_host_map,
    GNTMAP_readonly,
    GNTST_address_too_big,
    GNTST_bad_copy_arg,
    GNTST_bad_dev_addr,
    GNTST_bad_domain,
    GNTST_bad_gntref,
    GNTST_bad_handle,
    GNTST_bad_page,
    GNTST_bad_virt_addr,
    GNTST_eagain,
    GNTST_general_error,
    GNTST_no_device_space,
    GNTST_no_space,
    GNTST_okay,
    GNTST_permission_denied,
    GNTTABOP_cache_flush,
    GNTTABOP_copy,
    GNTTABOP_dump_table,
    GNTTABOP_get_status_frames,
    GNTTABOP_get_version,
    GNTTABOP_map_grant_ref,
    GNTTABOP_query_size,
    GNTTABOP_set_version,
    GNTTABOP_setup_table,
    GNTTABOP_swap_grant_ref,
    GNTTABOP_transfer,
    GNTTABOP_unmap_and_replace,
    GNTTABOP_unmap_grant_ref,
    GTF_accept_transfer,
    GTF_invalid,
    GTF_permit_access,
    GTF_reading,
    GTF_readonly,
    GTF_sub_page,
    GTF_transfer_committed,
    GTF_transfer_completed,
    GTF_transitive,
    GTF_type_mask,
    GTF_writing,
    _GNTCOPY_dest_gref,
    _GNTCOPY_source_gref,
    _GNTMAP_application_map,
    _GNTMAP_contains_pte,
    _GNTMAP_device_map,
    _GNTMAP_host_map,
    _GNTMAP_readonly,
    _GTF_reading,
    _GTF_readonly,
    _GTF_sub_page,
    _GTF_transfer_committed,
    _GTF_transfer_completed,
    _GTF_writing,
)

# EVTCHN_2L_NR_CHANNELS = sizeof(xen_ulong_t) * sizeof(xen_ulong_t) * 64
BITS_PER_XEN_ULONG_64 = 64
BITS_PER_XEN_ULONG_32 = 32

# xen.h VIRQs
# per-vCPU VIRQs (virq_is_global() is false for these; event_channel.c)
VIRQ_PER_VCPU = frozenset({VIRQ_TIMER, VIRQ_DEBUG, VIRQ_XENPMU})



# ---------------------------------------------------------------- grant_table.h





GRANT_ENTRY_V1_BYTES = 8
GRANT_ENTRIES_PER_PAGE_V1 = 4096 // GRANT_ENTRY_V1_BYTES  # 512
# xen/common/grant_table.c
GNTTAB_MAX_FRAMES_DEFAULT = 64  # gnttab_max_frames
GNTTAB_MAX_MAPTRACK_FRAMES_DEFAULT = 1024  # gnttab_max_maptrack_frames
MAPTRACK_PER_PAGE = 4096 // 16  # sizeof(struct grant_mapping) == 16
PAGE_SIZE = 4096
















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
