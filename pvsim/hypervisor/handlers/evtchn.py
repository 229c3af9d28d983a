"""``do_event_channel_op`` (after ``xen/common/event_channel.c``).

Design note
-----------
Dispatches ``EVTCHNOP_*`` (values in :mod:`hypercalls.ops`, records in :mod:`hypercalls.args`)
to :mod:`pvsim.io.evtchn`, writes OUT fields into the argument record and reports the work of
each op to ``hv.meter`` under ``io.evtchn`` (profile key ``io.evtchn_op_cycles``). A wrong
record type is ``-EFAULT`` (the guest pointed at garbage); an unknown command is ``-ENOSYS``.

Simplifications: the FIFO ABI ops and ``bind_pirq`` are not modelled (see :mod:`pvsim.io.evtchn`).
"""

from __future__ import annotations

from hypercalls import args as A
from hypercalls import errno as E
from hypercalls import ops as O
from pvsim.hypervisor.dispatch import handler
from pvsim.io import evtchn as ev

_RECORD = {
    O.EVTCHNOP_alloc_unbound: A.EvtchnAllocUnbound,
    O.EVTCHNOP_bind_interdomain: A.EvtchnBindInterdomain,
    O.EVTCHNOP_bind_virq: A.EvtchnBindVirq,
    O.EVTCHNOP_bind_ipi: A.EvtchnBindIpi,
    O.EVTCHNOP_close: A.EvtchnClose,
    O.EVTCHNOP_send: A.EvtchnSend,
    O.EVTCHNOP_status: A.EvtchnStatus,
    O.EVTCHNOP_bind_vcpu: A.EvtchnBindVcpu,
    O.EVTCHNOP_unmask: A.EvtchnUnmask,
    O.EVTCHNOP_reset: A.EvtchnReset,
}


@handler("event_channel_op")
def do_event_channel_op(hv, vcpu, cmd=None, arg=None, *rest) -> int:
    d = vcpu.domain
    if isinstance(cmd, bool) or not isinstance(cmd, int):
        return -E.ENOSYS
    rec = _RECORD.get(cmd)
    if rec is None:
        if cmd == O.EVTCHNOP_bind_pirq:
            return -E.EPERM if not d.privileged else -E.ENOSYS
        return -E.ENOSYS
    if not isinstance(arg, rec) or not A.well_formed(arg):
        return -E.EFAULT
    hv.meter.add("io.evtchn", "io.evtchn_op_cycles")
    if cmd == O.EVTCHNOP_send:
        hv.meter.count("evtchn.send")
        return ev.send(hv, d, arg.port)
    if cmd == O.EVTCHNOP_alloc_unbound:
        rc = ev.alloc_unbound(hv, d, arg.dom, arg.remote_dom)
        if rc >= 0:
            arg.port, rc = rc, 0
        return rc
    if cmd == O.EVTCHNOP_bind_interdomain:
        rc = ev.bind_interdomain(hv, d, arg.remote_dom, arg.remote_port)
        if rc >= 0:
            arg.local_port, rc = rc, 0
        return rc
    if cmd == O.EVTCHNOP_bind_virq:
        rc = ev.bind_virq(hv, d, arg.virq, arg.vcpu)
        if rc >= 0:
            arg.port, rc = rc, 0
        return rc
    if cmd == O.EVTCHNOP_bind_ipi:
        rc = ev.bind_ipi(hv, d, arg.vcpu)
        if rc >= 0:
            arg.port, rc = rc, 0
        return rc
    if cmd == O.EVTCHNOP_close:
        return ev.close(hv, d, arg.port)
    if cmd == O.EVTCHNOP_status:
        return ev.status(hv, d, arg)
    if cmd == O.EVTCHNOP_bind_vcpu:
        return ev.bind_vcpu(hv, d, arg.port, arg.vcpu)
    if cmd == O.EVTCHNOP_unmask:
        return ev.unmask(hv, d, arg.port)
    if cmd == O.EVTCHNOP_reset:
        return ev.reset(hv, d, arg.dom)
    return -E.ENOSYS  # pragma: no cover
