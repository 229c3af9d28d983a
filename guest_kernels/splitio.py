"""Split-driver I/O as a guest kernel sees it, for kernels with PV drivers (pv, pv32, pvhvm, pvh).

Design note
-----------
The simple per-request model used by scenario runs (``disk_io``/``net_io`` actions): the frontend
pushes a request and, when the ring says so, notifies the backend with ``EVTCHNOP_send``; blkback or
netback in dom0 maps or copies the granted pages and drives the real device; the response comes back
with an event-channel upcall. The full protocol (rings with notification suppression, grant tables,
backends scheduled as dom0 vCPUs) lives in :mod:`pvsim.io` and runs the I/O workloads of
``pvsim compare``. Kernels differ only in how the response event arrives (``_response_upcall``).

Simplifications: one notification per request (no suppression) and no dom0 scheduling delay in this
per-request model.
"""

from __future__ import annotations


class SplitDriverIO:
    def _notify(self) -> None:
        """Frontend pushes requests and the ring says notify: EVTCHNOP_send on the device's port."""
        from hypercalls import args as A
        from hypercalls import ops as O

        self._add("io.evtchn", "xen.evtchn_send_cycles")
        self.meter.count("io.notify")
        self.p.hypercall("event_channel_op", O.EVTCHNOP_send, A.EvtchnSend(port=self._device_port()))

    def _device_port(self) -> int:
        """The frontend's event channel, set up once as the xenbus handshake does (alloc_unbound,
        then the peer's bind_interdomain). In this per-request model the backend end is the
        domain itself: a loopback interdomain channel."""
        port = getattr(self, "_evtchn_port", None)
        if port is None:
            from hypercalls import args as A
            from hypercalls import ops as O

            DOMID_SELF = 0x7FF0
            au = A.EvtchnAllocUnbound(dom=DOMID_SELF, remote_dom=DOMID_SELF)
            if self.p.hypercall("event_channel_op", O.EVTCHNOP_alloc_unbound, au) == 0:
                bi = A.EvtchnBindInterdomain(remote_dom=DOMID_SELF, remote_port=au.port)
                if self.p.hypercall("event_channel_op", O.EVTCHNOP_bind_interdomain, bi) == 0:
                    port = bi.local_port
            self._evtchn_port = port = port if port is not None else 0
        return port


    def disk_io(self, nbytes: int, write: bool) -> None:
        self._add("kernel.block", "native.blk_request_cycles")  # guest block layer + blkfront
        self._notify()
        pages = max(1, -(-nbytes // 4096))
        self._add("io.grant", "xen.grant_map_cycles", pages)  # blkback maps the granted pages
        self._add("dom0.backend", "xen.backend_request_cycles")
        self._add("dom0.backend", "native.blk_request_cycles")  # dom0's real driver
        self._add("dom0.backend", "native.interrupt_cycles")
        self._add("io.evtchn", "xen.evtchn_send_cycles")  # blkback's response notification
        self._response_upcall()
        self._device_wait(write)
        self.meter.count("disk_io")

    def net_io(self, packets: int, tx: bool) -> None:
        self._add("kernel.net", "native.net_packet_cycles", packets)  # guest stack + netfront
        if tx:
            self._notify()
        self._add("io.grant", "xen.grant_copy_cycles", packets)  # netback copies to/from granted buffers
        self._add("dom0.backend", "xen.backend_request_cycles", packets / 2)
        self._add("dom0.backend", "native.net_packet_cycles", packets)  # bridge + physical NIC in dom0
        self._add("dom0.backend", "native.interrupt_cycles")
        self._add("io.evtchn", "xen.evtchn_send_cycles")
        self._response_upcall()
        self.meter.count("net_packets", packets)


    def _response_upcall(self) -> None:
        """The backend's response event reaches the guest (a PV bounce frame by default)."""
        self._add("io.evtchn", "xen.event_upcall_cycles")
