"""Event channels, 2-level ABI (after ``xen/common/event_channel.c`` and ``xen/common/event_2l.c``).

Design note
-----------
:class:`EvtchnDomain` is one domain's ``struct evtchn`` array plus the ``shared_info``
``evtchn_pending[]`` / ``evtchn_mask[]`` bitmaps of the 2-level ABI. Per-vCPU selector and upcall
flags live on :class:`pvsim.hypervisor.domain.VCPU` (``evtchn_pending_sel``,
``evtchn_upcall_pending``, ``evtchn_upcall_mask``), as in ``vcpu_info``.

* :func:`alloc_unbound`, :func:`bind_interdomain`, :func:`bind_virq`, :func:`bind_ipi`,
  :func:`close`, :func:`send`, :func:`status`, :func:`bind_vcpu`, :func:`unmask`, :func:`reset`
  follow ``evtchn_alloc_unbound``, ``evtchn_bind_interdomain`` (the local end is set pending on bind
  so early sends are not lost), ``evtchn_bind_virq``, ``evtchn_bind_ipi``, ``evtchn_close``
  (an interdomain peer goes back to unbound), ``evtchn_send`` (a send on an unbound port is
  silently dropped), ``evtchn_status``, ``evtchn_bind_vcpu``, ``evtchn_unmask``, ``evtchn_reset``.
* :func:`set_pending` is ``evtchn_2l_set_pending``: test-and-set pending (coalesce if already set);
  if unmasked and the selector bit was newly set, ``vcpu_mark_events_pending`` test-and-sets
  ``upcall_pending`` and, if newly set, *kicks* the vCPU through the domain's ``on_kick`` hook
  (the I/O layer wakes the vCPU's behaviour).
* :func:`guest_upcall` is the guest's handler (Linux ``__xen_evtchn_do_upcall``): clear
  ``upcall_pending``, exchange ``pending_sel`` with 0, scan ``pending & ~mask`` word by word, clear
  each pending bit and return the ports in scan order.

Counters (``sent``, ``coalesced``, ``upcalls``, ``kicks``) make coalescing observable.

Simplifications: no FIFO ABI (``init_control``/``expand_array``/``set_priority`` return
``-ENOSYS`` as a 2L-only build would); no PIRQs (``bind_pirq`` returns ``-EPERM`` to domUs and
``-ENOSYS`` otherwise); no XSM; Linux's round-robin resume point in the scan is not kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from hypercalls import args as A
from hypercalls import errno as E
from hypercalls import ops as O
from hypercalls.ops import DOMID_SELF
from hypercalls.trace import PVSIM_TRC_EVTCHN_SEND

# Internal state for port 0 (ECS_RESERVED in event_channel.c): allocated at init, never usable.
ECS_RESERVED = -1


@dataclass
class Channel:
    state: int = O.EVTCHNSTAT_closed
    notify_vcpu: int = 0
    remote_dom: int = -1  # unbound: who may bind; interdomain: peer domain
    remote_port: int = 0  # interdomain: peer port
    virq: int = -1


@dataclass
class EvtchnDomain:
    """One domain's event channels (``d->evtchn``) and its 2-level shared_info bitmaps."""

    domid: int
    nr_channels: int = O.EVTCHN_2L_NR_CHANNELS
    bits_per_word: int = O.BITS_PER_XEN_ULONG_64
    max_port: int | None = None  # xl.cfg max_event_channels - 1 (libxl default 1023)
    on_kick: Callable[[int], None] | None = None  # vcpu_kick hook: called with the vcpu id
    channels: list[Channel] = field(default_factory=list)
    pending: bytearray = field(default_factory=bytearray)
    mask: bytearray = field(default_factory=bytearray)
    virq_to_port: dict = field(default_factory=dict)  # (vcpu, virq) -> port
    sent: int = 0
    coalesced: int = 0
    kicks: int = 0
    upcalls: int = 0

    def __post_init__(self):
        if self.max_port is None:
            self.max_port = self.nr_channels - 1
        self.max_port = min(self.max_port, self.nr_channels - 1)
        if not self.pending:
            self.pending = bytearray(self.nr_channels)
            self.mask = bytearray(self.nr_channels)
        if not self.channels:
            self.channels = [Channel(state=ECS_RESERVED)]

    def port_is_valid(self, port: int) -> bool:
        return isinstance(port, int) and 0 <= port < len(self.channels)

    def get_free_port(self) -> int:
        for p, ch in enumerate(self.channels):
            if ch.state == O.EVTCHNSTAT_closed:
                return p
        p = len(self.channels)
        if p > self.max_port:
            return -E.ENOSPC
        self.channels.append(Channel())
        return p


def evtchn_for(dom) -> EvtchnDomain:
    """The domain's event-channel state, created on first use (the builder normally sets it)."""
    if dom.evtchn is None:
        if dom.guest_type == "pv32":
            dom.evtchn = EvtchnDomain(dom.domid, O.EVTCHN_2L_NR_CHANNELS_32, O.BITS_PER_XEN_ULONG_32)
        else:
            dom.evtchn = EvtchnDomain(dom.domid)
    return dom.evtchn


# ----------------------------------------------------------------------------- delivery
def vcpu_mark_events_pending(dom, vcpu_id: int) -> None:
    v = dom.vcpus[vcpu_id]
    if v.evtchn_upcall_pending:
        return
    v.evtchn_upcall_pending = 1
    ed = evtchn_for(dom)
    ed.kicks += 1
    if ed.on_kick is not None:
        ed.on_kick(vcpu_id)


def set_pending(dom, port: int) -> bool:
    """``evtchn_2l_set_pending``. Returns True if the event was newly raised (not coalesced)."""
    ed = evtchn_for(dom)
    if ed.pending[port]:
        ed.coalesced += 1
        return False
    ed.pending[port] = 1
    ch = ed.channels[port]
    v = dom.vcpus[ch.notify_vcpu]
    word = port // ed.bits_per_word
    if not ed.mask[port] and not (v.evtchn_pending_sel >> word) & 1:
        v.evtchn_pending_sel |= 1 << word
        vcpu_mark_events_pending(dom, ch.notify_vcpu)
    if port in v.polling:  # SCHEDOP_poll waiters
        ed.kicks += 1
        if ed.on_kick is not None:
            ed.on_kick(ch.notify_vcpu)
    return True


def guest_upcall(dom, vcpu_id: int) -> list[int]:
    """The guest's upcall handler: returns the ports it handles, in 2-level scan order."""
    ed = evtchn_for(dom)
    v = dom.vcpus[vcpu_id]
    out: list[int] = []
    ed.upcalls += 1
    while v.evtchn_upcall_pending:
        v.evtchn_upcall_pending = 0
        sel, v.evtchn_pending_sel = v.evtchn_pending_sel, 0
        bpw = ed.bits_per_word
        while sel:
            word = (sel & -sel).bit_length() - 1
            sel &= sel - 1
            lo = word * bpw
            hi = min(lo + bpw, len(ed.channels))
            for p in range(lo, hi):
                if ed.pending[p] and not ed.mask[p]:
                    ed.pending[p] = 0
                    out.append(p)
    return out


# ----------------------------------------------------------------------------- operations
def _domain(hv, caller, domid):
    return hv.lookup_domain(caller, domid)


def alloc_unbound(hv, caller, dom_id: int, remote_dom: int) -> int:
    d = _domain(hv, caller, dom_id)
    if d is None:
        return -E.ESRCH
    if d is not caller and not caller.privileged:
        return -E.EPERM
    ed = evtchn_for(d)
    port = ed.get_free_port()
    if port < 0:
        return port
    ch = ed.channels[port]
    ch.state = O.EVTCHNSTAT_unbound
    # evtchn_alloc_unbound_t.remote_dom is a domid_t: the guest can only write 16 bits there
    remote_dom &= 0xFFFF
    ch.remote_dom = d.domid if remote_dom == DOMID_SELF else remote_dom
    ch.notify_vcpu = 0
    return port


def bind_interdomain(hv, ld, remote_dom: int, remote_port: int) -> int:
    rd = _domain(hv, ld, remote_dom)
    if rd is None:
        return -E.ESRCH
    red = evtchn_for(rd)
    if not red.port_is_valid(remote_port):
        return -E.EINVAL
    rch = red.channels[remote_port]
    if rch.state != O.EVTCHNSTAT_unbound or rch.remote_dom != ld.domid:
        return -E.EINVAL
    led = evtchn_for(ld)
    lport = led.get_free_port()
    if lport < 0:
        return lport
    lch = led.channels[lport]
    lch.state = O.EVTCHNSTAT_interdomain
    lch.remote_dom, lch.remote_port = rd.domid, remote_port
    lch.notify_vcpu = 0
    rch.state = O.EVTCHNSTAT_interdomain
    rch.remote_dom, rch.remote_port = ld.domid, lport
    # "We may have lost notifications on the remote unbound port": set the local end pending.
    set_pending(ld, lport)
    return lport


def bind_virq(hv, d, virq: int, vcpu: int) -> int:
    if not isinstance(virq, int) or not (0 <= virq < O.NR_VIRQS):
        return -E.EINVAL
    if virq not in O.VIRQ_PER_VCPU and vcpu != 0:
        return -E.EINVAL
    if not isinstance(vcpu, int) or not (0 <= vcpu < len(d.vcpus)):
        return -E.ENOENT
    ed = evtchn_for(d)
    if (vcpu, virq) in ed.virq_to_port:
        return -E.EEXIST
    port = ed.get_free_port()
    if port < 0:
        return port
    ch = ed.channels[port]
    ch.state, ch.virq, ch.notify_vcpu = O.EVTCHNSTAT_virq, virq, vcpu
    ed.virq_to_port[(vcpu, virq)] = port
    return port


def send_virq(d, virq: int, vcpu: int = 0) -> bool:
    """``send_guest_vcpu_virq`` / ``send_guest_global_virq``: raise a bound VIRQ (no-op if unbound)."""
    ed = evtchn_for(d)
    port = ed.virq_to_port.get((vcpu, virq))
    if port is None:
        return False
    return set_pending(d, port)


def bind_ipi(hv, d, vcpu: int) -> int:
    if not isinstance(vcpu, int) or not (0 <= vcpu < len(d.vcpus)):
        return -E.ENOENT
    ed = evtchn_for(d)
    port = ed.get_free_port()
    if port < 0:
        return port
    ch = ed.channels[port]
    ch.state, ch.notify_vcpu = O.EVTCHNSTAT_ipi, vcpu
    return port


def close(hv, d, port: int) -> int:
    ed = evtchn_for(d)
    if not ed.port_is_valid(port):
        return -E.EINVAL
    ch = ed.channels[port]
    if ch.state == ECS_RESERVED:
        return -E.EINVAL
    if ch.state == O.EVTCHNSTAT_closed:
        return -E.EINVAL
    if ch.state == O.EVTCHNSTAT_virq:
        # evtchn_close, ECS_VIRQ: "for_each_vcpu ... if ( v->virq_to_evtchn[virq] != port ) continue":
        # the binding is found by its port, wherever bind_vcpu has since moved the notification
        for key in [k for k, p in ed.virq_to_port.items() if p == port]:
            del ed.virq_to_port[key]
    elif ch.state == O.EVTCHNSTAT_interdomain:
        rd = hv.domains.get(ch.remote_dom)
        if rd is not None:
            rch = evtchn_for(rd).channels[ch.remote_port]
            if rch.state == O.EVTCHNSTAT_interdomain and rch.remote_dom == d.domid:
                rch.state = O.EVTCHNSTAT_unbound
                rch.remote_dom = d.domid
                rch.remote_port = 0
    ed.channels[port] = Channel()
    ed.pending[port] = 0
    ed.mask[port] = 0
    return 0


def send(hv, ld, lport: int) -> int:
    led = evtchn_for(ld)
    if not led.port_is_valid(lport):
        return -E.EINVAL
    ch = led.channels[lport]
    if ch.state in (O.EVTCHNSTAT_interdomain, O.EVTCHNSTAT_ipi):
        led.sent += 1
        hv.trace_dom(ld, PVSIM_TRC_EVTCHN_SEND, ld.domid, lport)
    if ch.state == O.EVTCHNSTAT_interdomain:
        rd = hv.domains.get(ch.remote_dom)
        if rd is None:
            return -E.EINVAL
        set_pending(rd, ch.remote_port)
        return 0
    if ch.state == O.EVTCHNSTAT_ipi:
        set_pending(ld, lport)
        return 0
    if ch.state == O.EVTCHNSTAT_unbound:
        return 0  # silently drop
    return -E.EINVAL


def status(hv, caller, arg: A.EvtchnStatus) -> int:
    d = _domain(hv, caller, arg.dom)
    if d is None:
        return -E.ESRCH
    if d is not caller and not caller.privileged:
        return -E.EPERM
    ed = evtchn_for(d)
    if not ed.port_is_valid(arg.port):
        return -E.EINVAL
    ch = ed.channels[arg.port]
    st = O.EVTCHNSTAT_closed if ch.state == ECS_RESERVED else ch.state
    arg.status, arg.vcpu = st, ch.notify_vcpu
    if st == O.EVTCHNSTAT_unbound:
        arg.u = {"unbound": {"dom": ch.remote_dom}}
    elif st == O.EVTCHNSTAT_interdomain:
        arg.u = {"interdomain": {"dom": ch.remote_dom, "port": ch.remote_port}}
    elif st == O.EVTCHNSTAT_virq:
        arg.u = {"virq": ch.virq}
    else:
        arg.u = {}
    return 0


def bind_vcpu(hv, d, port: int, vcpu: int) -> int:
    ed = evtchn_for(d)
    if not isinstance(vcpu, int) or not (0 <= vcpu < len(d.vcpus)):
        return -E.ENOENT
    if not ed.port_is_valid(port):
        return -E.EINVAL
    ch = ed.channels[port]
    if ch.state == O.EVTCHNSTAT_virq and ch.virq in O.VIRQ_PER_VCPU:
        return -E.EINVAL
    if ch.state not in (O.EVTCHNSTAT_unbound, O.EVTCHNSTAT_interdomain, O.EVTCHNSTAT_virq, O.EVTCHNSTAT_pirq):
        return -E.EINVAL
    ch.notify_vcpu = vcpu
    return 0


def mask(d, port: int) -> None:
    """Guest-side masking (a plain bit set in shared_info, no hypercall)."""
    evtchn_for(d).mask[port] = 1


def unmask(hv, d, port: int) -> int:
    """``evtchn_2l_unmask``: clear the mask; re-raise the upcall if the port is pending."""
    ed = evtchn_for(d)
    if not ed.port_is_valid(port):
        return -E.EINVAL
    ed.mask[port] = 0
    if ed.pending[port]:
        ch = ed.channels[port]
        v = d.vcpus[ch.notify_vcpu]
        word = port // ed.bits_per_word
        if not (v.evtchn_pending_sel >> word) & 1:
            v.evtchn_pending_sel |= 1 << word
            vcpu_mark_events_pending(d, ch.notify_vcpu)
    return 0


def reset(hv, caller, dom_id: int) -> int:
    d = _domain(hv, caller, dom_id)
    if d is None:
        return -E.ESRCH
    if d is not caller and not caller.privileged:
        return -E.EPERM
    ed = evtchn_for(d)
    for p in range(1, len(ed.channels)):
        if ed.channels[p].state != O.EVTCHNSTAT_closed:
            close(hv, d, p)
    return 0
