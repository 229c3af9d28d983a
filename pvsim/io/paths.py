"""Device paths: how a guest's network and disk I/O reaches the hardware in each mode.

Design note
-----------
* :class:`NativeNet` / :class:`NativeBlk`: the (host or container) kernel drives the NIC and disk.
* :class:`RingNet` / :class:`RingBlk` with ``flavour="xen"``: netfront/netback and
  blkfront/blkback (Linux ``drivers/net/xen-net*``, ``drivers/block/xen-blk*``) over
  :mod:`pvsim.io.ring` rings, connected by :class:`~pvsim.io.xenstore.XenbusDevice`; notifications
  are ``EVTCHNOP_send`` hypercalls decided by ``RING_PUSH_*_AND_CHECK_NOTIFY``; the backend sleeps
  after ``RING_FINAL_CHECK_FOR_REQUESTS``. netback moves data with batched ``GNTTABOP_copy`` (64 ops
  per call, ``COPY_BATCH_SIZE``) or map/unmap; blkback maps the segments (unmaps batched by 32 with
  one flush) or, with ``persistent=True``, keeps them mapped and copies. The backend validates the
  frontend (``RING_REQUEST_PROD_OVERFLOW``, then every request field by :mod:`pvsim.io.protocol`:
  type, range, operation, segment count, sector within the disk, size, ids unique in flight; the
  return code and status of every grant operation) and closes the device on a violation; the
  frontend checks response ids.
* ``flavour="virtio"``: the same ring discipline as a virtio split ring with event-index
  suppression (``vring_need_event`` differs from ring.h only by the offset of the event index);
  a kick is one trapped access (``exit.io_instruction``, ioeventfd) to a vhost thread in the host
  kernel, and completions are injected interrupts (irqfd).
* netback receive by page flipping (``rx_mode="flip"``, the 2003-2006 design): netfront posts
  ``GTF_accept_transfer`` grants and gives its buffer pages away; netback zaps its mapping of
  each received page, maps a replacement and hands the pages over with ``GNTTABOP_transfer``;
  netfront maps each page it got (cause ``io.flip``: validated PTE updates, multicall entries, one
  TLB flush per batch). Otherwise netback grant-copies into the guest's granted buffers.
* Host threads that serve devices (the vhost worker, the device model's I/O thread) pay their
  wake-up (:func:`host_thread_woken`: ``try_to_wake_up`` + the switch to the thread) each time
  they run after sleeping.
* :class:`EmuNet` / :class:`EmuBlk`: an e1000-like NIC and an IDE/AHCI-like disk whose every
  register access traps (VT-x exit or BT callout) and is forwarded to the device model, a thread
  on dom0's vCPU; the vCPU blocks until the device model answers (Xen ioreq semantics).
  Register accesses per operation follow the Linux drivers: e1000 (pre-``xmit_more``) writes TDT
  once per frame, and its interrupt handler reads ICR, masks (IMC) and unmasks (IMS), and writes
  RDT after refilling; IDE issues 7 task-file writes + 3 bus-master writes per command and reads
  status + bus-master status and clears it on completion, one command at a time; AHCI writes PxCI
  once per command and reads/clears IS and PxIS on completion, up to 32 commands in flight.

Simplifications: one queue per device, no GSO/TSO (one frame per MSS), no split event channels,
a frame batch (one socket write) is the unit of event scheduling while per-frame work is
reported per frame; the device model handles one forwarded access sequence per request (its
accesses are priced one by one but scheduled as one dom0 wake-up).
"""

from __future__ import annotations

from collections import deque

from hypercalls import args as A
from hypercalls import ops as O
from hypercalls.ops import DOMID_SELF
from hypercalls.table import HYPERVISOR_event_channel_op, HYPERVISOR_grant_table_op
from hypercalls.trace import PVSIM_RING_KINDS, PVSIM_TRC_RING_NOTIFY
from pvsim.io import gnttab as gt
from pvsim.io.devices import TCPIP_HEADER_BYTES
from pvsim.io.protocol import check_blk_request, check_rx_request, check_tx_request
from pvsim.io.ring import (
    BLKIF_MAX_SEGMENTS_PER_REQUEST,
    BLKIF_SLOT_BYTES,
    SEGS_PER_INDIRECT_FRAME,
    BackRing,
    FrontRing,
    RingError,
    SharedRing,
    ring_size,
)
from pvsim.io.xenstore import XenbusDevice

COPY_BATCH_SIZE = 64  # Linux xen-netback rx.c
NETIF_RSP_OKAY = 0
BLKIF_RSP_OKAY = 0
BLKIF_OP_READ = 0
BLKIF_OP_WRITE = 1
BLKIF_OP_INDIRECT = 6
MAX_INDIRECT_SEGMENTS = 256  # Linux xen-blkback common.h
PAGE = 4096


def nsegs(nbytes: int, mss: int) -> int:
    return max(1, -(-nbytes // mss))


class Socket:
    """The guest's socket layer: routes delivered messages to whoever waits for them."""

    def __init__(self, engine):
        self.engine = engine
        self.waiters: dict = {}
        self.early: set = set()
        self.on_request = None  # server side: callback(conn)

    def expect(self, conn):
        ev = self.engine.event()
        if conn in self.early:
            self.early.discard(conn)
            ev.succeed()
        else:
            self.waiters[conn] = ev
        return ev

    def deliver(self, meta) -> None:
        """A message is complete when its last frame arrives; keys: ``conn`` for responses,
        ``("req", conn)`` for requests arriving at a server."""
        if not meta or not meta[2]:
            return
        key = meta[1] if meta[0] == "rsp" else (meta[0], meta[1])
        ev = self.waiters.pop(key, None)
        if ev is not None:
            ev.succeed()
        else:
            self.early.add(key)


class Completion:
    """A block request's completion as the app sees it (fires when all parts completed)."""

    __slots__ = ("ev", "parts", "t0", "error")

    def __init__(self, engine, parts: int):
        self.ev = engine.event()
        self.parts = parts
        self.t0 = engine.now_ns
        self.error = False

    def part_done(self, error: bool = False) -> None:
        self.error |= error
        self.parts -= 1
        if self.parts == 0 and not self.ev.triggered:
            self.ev.succeed(not self.error)


def host_thread_woken(os_) -> None:
    """A host thread serving a device (the vhost worker, the device model's I/O thread) woken
    from its sleep: ``try_to_wake_up`` (``io.thread_wake_cycles``) and the switch to it
    (``native.context_switch_cycles``, unless the OS already switched from another thread: then
    it charged that switch), both under ``wake.host_thread``. The wait for its (v)CPU is the
    simulated schedulers' and the IPI to an idle CPU is its vCPU's ``wake``."""
    os_.work("wake.host_thread", "io.thread_wake_cycles")
    if not os_.switched_in:
        os_.work("wake.host_thread", "native.context_switch_cycles")
    os_.count("wake.host_thread")


def charge_calls(os_, names) -> None:
    """One hypercall entry of each of ``names`` made by ``os_`` on a counted path (priced and
    counted for its guest type by the hypervisor)."""
    hv = os_.hv
    prev, hv.meter = hv.meter, os_.meter
    try:
        for name in names:
            os_.kernel.p.charge_hypercall(name)
    finally:
        hv.meter = prev


def flip_pte_updates(os_, ptes: int, entries: int) -> None:
    """Page flipping's page-table work in ``os_``: ``ptes`` validated PTE updates
    (``xen.pte_validate_cycles``) in ``entries`` multicall entries, under ``io.flip``."""
    os_.work("io.flip", "xen.pte_validate_cycles", ptes)
    os_.work("io.flip", "xen.multicall_entry_cycles", entries)
    os_.count("flip.pte_update", ptes)


def flip_flush(os_, calls) -> None:
    """The hypercalls that carry a flip batch and the TLB flush its last entry asks for
    (``UVMF_TLB_FLUSH``), under ``io.flip``."""
    charge_calls(os_, calls)
    os_.work("io.flip", "io.grant_tlb_flush_cycles")
    os_.count("flip.tlb_flush")


class _Base:
    def __init__(self, sys, gdom=None, gos=None):
        self.sys = sys
        self.engine = sys.engine
        self.gdom = gdom if gdom is not None else sys.gdom
        self.g = gos if gos is not None else sys.g
        self.d = sys.d

    def stack_tx(self, n: int, payload: int) -> None:
        """The guest's TCP/IP stack for ``n`` segments sent: the kernel's ``net_stack`` (the same
        in every mode: a native characterization, per segment and per byte, with its netfilter
        hooks)."""
        self.g.k("net_stack", n, payload)

    def stack_rx(self, n: int, payload: int) -> None:
        self.g.k("net_stack", n, payload)


# =============================================================================== native
class NativeNet(_Base):
    def __init__(self, sys, nic, sock, mss):
        super().__init__(sys)
        self.nic, self.sock, self.mss = nic, sock, mss
        self.backlog: deque = deque()
        self.irq_pending = False
        sys.bridge_rx(self.on_rx)

    def send(self, nbytes: int, meta):
        g = self.g
        n = nsegs(nbytes, self.mss)
        self.sys.syscall(g)
        self.stack_tx(n, nbytes)
        g.k("nic_packets", n)
        yield g.flush()
        while self.nic.space() < n:
            yield ("wait", self.nic.space_event(n))
        self.nic.transmit(n, nbytes + n * TCPIP_HEADER_BYTES, meta)

    def on_rx(self, n, nbytes, meta):
        self.backlog.append((n, nbytes, meta))
        if not self.irq_pending:
            self.irq_pending = True
            self.g.raise_irq(self.isr)

    def isr(self):
        g = self.g
        self.sys.dom0_irq_entry(g)
        self.irq_pending = False
        metas = []
        while self.backlog:
            n, nb, meta = self.backlog.popleft()
            g.k("nic_packets", n)
            self.stack_rx(n, max(0, nb - n * TCPIP_HEADER_BYTES))
            metas.append(meta)
        yield g.flush()
        for m in metas:
            self.sock.deliver(m)


class NativeBlk(_Base):
    def __init__(self, sys, disk):
        super().__init__(sys)
        self.disk = disk
        self.done: deque = deque()
        self.irq_pending = False

    def submit_gen(self, op: int, sector: int, nbytes: int, comp_box: list):
        c = Completion(self.engine, 1)
        comp_box.append(c)
        g = self.g
        g.work("kernel.block", "io.block_layer_request_cycles")
        g.work("kernel.blk_driver", "io.native_blk_request_cycles")
        yield g.flush()
        self.disk.submit(op, sector, nbytes, lambda: self._irq(c))

    def _irq(self, c):
        self.done.append(c)
        if not self.irq_pending:
            self.irq_pending = True
            self.g.raise_irq(self.isr)

    def isr(self):
        self.sys.dom0_irq_entry(self.g)
        self.irq_pending = False
        cs = list(self.done)
        self.done.clear()
        yield self.g.flush()
        for c in cs:
            c.part_done()


# =============================================================================== split rings
class _RingDev(_Base):
    """Shared machinery of the Xen split drivers and the virtio rings."""

    def __init__(self, sys, kind: str, flavour: str, ring_pages: int = 1, gdom=None, gos=None):
        super().__init__(sys, gdom, gos)
        self.flavour = flavour
        self.kind = kind
        self.closed = False
        self.front_error = None
        self.error = None
        self.wake = None
        self.wake_pending = False
        self.slept = False
        self.irq_pending = False
        self.xdev = None
        self.front_port = self.back_port = 0
        if flavour == "xen":
            self.xdev = XenbusDevice(sys.xs, sys.hv, kind, self.gdom, sys.bdom, 0, self.g, self.d,
                                     ring_pages=ring_pages, features=self.features())
            if not self.xdev.connect():
                raise RuntimeError(f"{kind}: xenbus handshake failed")
            self.front_port, self.back_port = self.xdev.front_port, self.xdev.back_port
            sys.bind_port(self.gdom, self.front_port, self.front_event)
            sys.bind_port(sys.bdom, self.back_port, self.wake_backend)
        self.fgt = gt.gnttab_for(self.gdom)
        sys.spawn_backend(self.backend())

    def features(self) -> dict:
        return {}

    # ------------------------------------------------------------ notifications
    def _push_and_notify(self, ring, name: str):
        """RING_PUSH_REQUESTS_AND_CHECK_NOTIFY, then EVTCHNOP_send only if the backend asked for it."""
        notify = ring.push_requests_and_check_notify()
        hv = self.sys.hv
        if getattr(hv.engine, "_subscribers", None):
            hv.trace_dom(self.gdom, PVSIM_TRC_RING_NOTIFY, self.gdom.domid, PVSIM_RING_KINDS.get(name, 0xFF),
                         ring.nr_ents - ring.free_requests())
        if notify:
            yield self.g.flush()
            self.front_notify(name)
        else:
            self.g.count(f"suppressed.{name}")

    def front_notify(self, name: str) -> None:
        g = self.g
        g.count(f"notify.{name}")
        if self.flavour == "xen":
            g.hypercall(HYPERVISOR_event_channel_op, O.EVTCHNOP_send, A.EvtchnSend(self.front_port))
        else:
            self.sys.trapped_access(g, 1, "io_instruction")  # virtio kick -> ioeventfd
            self.wake_backend()

    def back_notify(self, name: str) -> None:
        d = self.d
        d.count(f"notify.{name}")
        if self.flavour == "xen":
            d.hypercall(HYPERVISOR_event_channel_op, O.EVTCHNOP_send, A.EvtchnSend(self.back_port))
        else:
            d.work("io.evtchn", "io.virq_inject_cycles")  # irqfd -> posted interrupt
            self.g.raise_irq(self._virtio_irq, source="event")  # irqfd -> kvm_vcpu_kick

    def _virtio_irq(self):
        self.sys.guest_irq_entry(self.g)
        self.front_event()
        yield self.g.flush()

    def wake_backend(self) -> None:
        """Wake the backend thread; a wake while it is running is remembered, as blkback's
        ``waiting_reqs`` flag is (``blkif_notify_work``), so it cannot be lost."""
        if self.wake is not None and not self.wake.triggered:
            self.wake.succeed()
        else:
            self.wake_pending = True

    def backend_irq(self) -> None:
        """The physical device interrupts dom0 (the host kernel for virtio); one pending handler
        at a time, which wakes the backend thread to collect everything done so far."""
        if not self.irq_pending:
            self.irq_pending = True
            self.d.raise_irq(self._backend_isr, self.sys.account)

    def _backend_isr(self):
        self.sys.dom0_irq_entry(self.d)
        self.irq_pending = False
        self.wake_backend()
        yield self.d.flush()

    def backend_sleep(self):
        self.wake = self.engine.event()
        self.slept = not self.wake_pending
        if self.wake_pending:
            self.wake_pending = False
            self.wake.succeed()
        return ("wait", self.wake)

    def thread_woken(self) -> None:
        """The backend thread runs again after sleeping: for vhost (a host kernel thread), the
        wake-up (:func:`host_thread_woken`). netback/blkback's wake-up is Domain-0's event-channel
        path (its vCPU's ``wake``), their thread switch the OS's own."""
        if self.flavour == "virtio" and self.slept:
            host_thread_woken(self.d)

    def fail(self, reason: str) -> None:
        """The backend found the frontend misbehaving: close the device (Closing -> Closed)."""
        if self.closed:
            return
        self.closed = True
        self.error = reason
        self.d.count("io.device_error")
        if self.xdev is not None:
            self.xdev.close(reason)

    def grant_entry(self, n: int) -> None:
        if self.flavour == "xen" and n:
            self.g.work("io.grant", "io.grant_entry_cycles", n)


class RingNet(_RingDev):
    """netfront/netback (``flavour="xen"``) or virtio-net + vhost-net (``flavour="virtio"``)."""

    def __init__(self, sys, nic, sock, mss, flavour="xen", grant_mode="copy", rx_mode=None):
        self.nic, self.sock, self.mss = nic, sock, mss
        if grant_mode not in ("copy", "map", "persistent"):
            raise ValueError(f"grant_mode must be copy, map or persistent, got {grant_mode!r}")
        if rx_mode not in (None, "copy", "flip"):
            raise ValueError(f"netback_rx must be copy or flip, got {rx_mode!r}")
        self.grant_mode = grant_mode
        # netback receive by page flipping (GNTTABOP_transfer, Xen 1.0-3.0) or by grant copy; the
        # profile's era default unless the domain says
        if rx_mode is None:
            rx_mode = "flip" if sys.hv.profile.value("io.netback_rx_flip_count") else "copy"
        # only a PV guest can take flipped pages (it remaps them with update_va_mapping); PV drivers
        # in an HVM guest always ask for the receive copy (Linux-2.6.18-xen netfront)
        self.flip = flavour == "xen" and rx_mode == "flip" and sys.gdom.is_pv
        self.next_mfn = 0x700000
        self.tx_s = SharedRing(ring_size(12))
        self.rx_s = SharedRing(ring_size(8))
        self.txf, self.txb = FrontRing(self.tx_s), BackRing(self.tx_s)
        self.rxf, self.rxb = FrontRing(self.rx_s), BackRing(self.rx_s)
        self.tx_out: dict[int, int] = {}
        self.rx_out: dict[int, int] = {}
        self.next_id = 0
        self.rx_backlog: deque = deque()
        self.tx_waiters: list = []
        self.tx_requests = self.rx_requests = 0
        self.persist: dict[int, int] = {}
        super().__init__(sys, "vif", flavour, ring_pages=2)
        sys.bridge_rx(self.dom0_rx)
        self._post_rx(self.rxf.free_requests())
        self.rxf.push_requests()

    def features(self):
        return {"feature-rx-copy": int(not self.flip), "feature-rx-flip": int(self.flip), "feature-rx-notify": 1,
                "feature-split-event-channels": 0}

    # ------------------------------------------------------------ frontend
    def _post_rx(self, k: int) -> None:
        bdom = self.sys.bdom.domid
        for _ in range(k):
            rid = self.next_id & 0xFFFF  # netif_*_request.id is a uint16_t (netif.h)
            self.next_id += 1
            if self.flip:  # gnttab_grant_foreign_transfer_ref: accept a page from the backend
                ref = self.fgt.grant_foreign_transfer(bdom, 0x20000 + (rid & 0xFFFF))
            elif self.flavour == "xen":
                ref = self.fgt.grant_access(0, 0x20000 + (rid & 0xFFFF))
            else:
                ref = rid
            self.rx_out[rid] = ref
            self.rxf.put_request((rid, ref))
        self.grant_entry(k)
        self.g.work("io.ring", "io.ring_slot_cycles", k)
        if self.flip and k:
            # network_alloc_rx_buffers (flipping receiver): each buffer page is given up -- its
            # PTE zapped in a multicall of update_va_mapping, its P2M entry invalidated -- and
            # returned with one XENMEM_decrease_reservation; the last entry flushes the TLB
            flip_pte_updates(self.g, k, entries=k)
            flip_flush(self.g, ("multicall", "memory_op"))

    def send(self, nbytes: int, meta):
        g = self.g
        n = nsegs(nbytes, self.mss)
        self.sys.syscall(g)
        self.stack_tx(n, nbytes)
        yield g.flush()
        sizes = [self.mss + TCPIP_HEADER_BYTES] * (n - 1) + [nbytes - self.mss * (n - 1) + TCPIP_HEADER_BYTES]
        i = 0
        while i < n:
            if self.closed:
                return
            free = self.txf.free_requests()
            if free == 0:
                ev = self.engine.event()
                self.tx_waiters.append(ev)
                yield ("wait", ev)
                continue
            k = min(free, n - i)
            for j in range(i, i + k):
                rid = self.next_id & 0xFFFF  # netif_*_request.id is a uint16_t (netif.h)
                self.next_id += 1
                ref = self.fgt.grant_access(0, 0x10000 + (rid & 0xFFFF)) if self.flavour == "xen" else rid
                self.tx_out[rid] = ref
                self.txf.put_request((rid, ref, sizes[j], meta if j == n - 1 else None))
            self.tx_requests += k
            self.grant_entry(k)
            g.work("io.ring", "io.ring_slot_cycles", k)
            drv = "io.netfront_packet_cycles" if self.flavour == "xen" else "io.virtio_driver_packet_cycles"
            g.work("kernel.netfront", drv, k)
            i += k
            yield from self._push_and_notify(self.txf, "tx_req")
        yield g.flush()

    def front_event(self) -> None:
        """netfront's interrupt work: TX completions, RX packets, RX refill (no yields)."""
        g = self.g
        freed = 0
        while True:
            for _ in range(self.txf.has_unconsumed_responses()):
                rid, st = self.txf.get_response()
                ref = self.tx_out.pop(rid, None)
                if ref is None:
                    self.front_error = f"tx response id {rid} never issued"
                    g.count("io.frontend_error")
                    continue
                if self.flavour == "xen":
                    self.fgt.end_access(ref)
                freed += 1
            if not self.txf.final_check_for_responses():
                break
        if freed:
            g.work("io.ring", "io.ring_slot_cycles", freed)
            self.grant_entry(freed)
            ws, self.tx_waiters = self.tx_waiters, []
            for w in ws:
                w.succeed()
        got = payload = flipped = 0
        metas = []
        while True:
            for _ in range(self.rxf.has_unconsumed_responses()):
                rid, size, meta = self.rxf.get_response()
                ref = self.rx_out.pop(rid, None)
                if ref is None:
                    self.front_error = f"rx response id {rid} never issued"
                    g.count("io.frontend_error")
                    continue
                if self.flip:
                    if self.fgt.end_transfer(ref) < 0:  # no page came with this response
                        self.front_error = f"rx response id {rid}: no page transferred"
                        g.count("io.frontend_error")
                        continue
                    flipped += 1
                elif self.flavour == "xen":
                    self.fgt.end_access(ref)
                got += 1
                payload += max(0, size - TCPIP_HEADER_BYTES)
                if meta is not None:
                    metas.append(meta)
            if not self.rxf.final_check_for_responses():
                break
        if flipped:
            # netif_poll (flipping receiver): per page, set the P2M, MMU_MACHPHYS_UPDATE and map it
            # at the buffer's address (update_va_mapping): two multicall entries, one validated PTE
            flip_pte_updates(g, flipped, entries=2 * flipped)
            charge_calls(g, ("multicall",))
        if got:
            g.work("io.ring", "io.ring_slot_cycles", got)
            drv = "io.netfront_packet_cycles" if self.flavour == "xen" else "io.virtio_driver_packet_cycles"
            g.work("kernel.netfront", drv, got)
            self.stack_rx(got, payload)
            self.grant_entry(got)
            for m in metas:
                self.sock.deliver(m)
            self._post_rx(min(got, self.rxf.free_requests()))
            if self.rxf.push_requests_and_check_notify():
                self.front_notify("rx_req")
            else:
                g.count("suppressed.rx_req")

    # ------------------------------------------------------------ backend (dom0 / host thread)
    def dom0_rx(self, n, nbytes, meta) -> None:
        self.rx_backlog.append([n, nbytes, meta])
        self.backend_irq()

    def _move(self, n: int, nbytes: int, ops) -> bool:
        """Data movement for ``n`` frames: grant copy / map+unmap / persistent memcpy / vhost copy."""
        d = self.d
        if self.flavour == "virtio":
            d.work("io.ring", "io.memcpy_byte_cycles", nbytes)
            d.work("dom0.backend", "io.vhost_packet_cycles", n)
            return True
        if self.grant_mode == "copy":
            ok = True
            for s in range(0, len(ops), COPY_BATCH_SIZE):
                batch = ops[s:s + COPY_BATCH_SIZE]
                ok &= d.hypercall(HYPERVISOR_grant_table_op, O.GNTTABOP_copy, batch, len(batch)) == 0
            ok = ok and all(o.status == O.GNTST_okay for o in ops)
        else:
            ok = True
            maps = [A.GnttabMapGrantRef(0x6000_0000 + 0x1000 * i, O.GNTMAP_host_map,
                                          o.source.ref if o.flags & O.GNTCOPY_source_gref else o.dest.ref, self.gdom.domid)
                    for i, o in enumerate(ops)]
            if self.grant_mode == "persistent":
                maps = [m for m in maps if m.ref not in self.persist]
            if maps:
                rc = d.hypercall(HYPERVISOR_grant_table_op, O.GNTTABOP_map_grant_ref, maps, len(maps))
                ok = rc == 0 and all(m.status == O.GNTST_okay for m in maps)
            if ok and self.grant_mode == "map":
                un = [A.GnttabUnmapGrantRef(m.host_addr, 0, m.handle) for m in maps]
                d.hypercall(HYPERVISOR_grant_table_op, O.GNTTABOP_unmap_grant_ref, un, len(un))
            elif ok:
                for m in maps:
                    self.persist[m.ref] = m.handle
                d.work("io.grant", "io.memcpy_byte_cycles", nbytes)
        d.work("dom0.backend", "io.netback_packet_cycles", n)
        return ok

    def _flip(self, ops) -> bool:
        """netback's flipping receive (Linux 2.6.18-xen ``net_rx_action``): per packet its page's
        dom0 mapping is zapped and a fresh page mapped in its place (two validated PTE updates in
        a multicall, the last flushing the TLB), then one ``GNTTABOP_transfer`` batch gives the
        pages to the guest; no data is copied."""
        d = self.d
        flip_pte_updates(d, 2 * len(ops), entries=2 * len(ops))
        flip_flush(d, ("multicall",))
        rc = d.hypercall(HYPERVISOR_grant_table_op, O.GNTTABOP_transfer, ops, len(ops))
        d.work("dom0.backend", "io.netback_packet_cycles", len(ops))
        return rc == 0 and all(o.status == O.GNTST_okay for o in ops)

    def backend(self):
        d, nic = self.d, self.nic
        guest = self.gdom.domid
        P = A.GnttabCopyPtr
        while not self.closed:
            did = False
            try:
                avail = min(self.txb.checked_requests(), self.txb.has_unconsumed_requests())
            except RingError as e:
                self.fail(f"tx ring: {e}")
                return
            if avail:
                k = min(avail, COPY_BATCH_SIZE)
                if nic.space() < k:
                    yield d.flush()
                    yield ("wait", nic.space_event(k))
                    continue
                reqs = [self.txb.get_request() for _ in range(k)]
                why = next((w for w in map(check_tx_request, reqs) if w is not None), None)
                if why is not None:
                    self.fail(why)
                    return
                nbytes = sum(r[2] for r in reqs)
                ops = [A.GnttabCopy(P(ref=r[1], domid=guest), P(gmfn=0x500 + i, domid=DOMID_SELF),
                                      min(r[2], PAGE), O.GNTCOPY_source_gref) for i, r in enumerate(reqs)]
                d.work("io.ring", "io.ring_slot_cycles", k)
                if not self._move(k, nbytes, ops):
                    self.fail("tx request with a grant reference the frontend did not grant")
                    return
                d.work("dom0.backend", "io.dom0_net_packet_cycles", k)
                yield d.flush()
                meta = next((r[3] for r in reversed(reqs) if r[3] is not None), None)
                nic.transmit(k, nbytes, meta)
                for r in reqs:
                    self.txb.put_response((r[0], NETIF_RSP_OKAY))
                d.work("io.ring", "io.ring_slot_cycles", k)
                if self.txb.push_responses_and_check_notify():
                    self.back_notify("tx_rsp")
                else:
                    d.count("suppressed.tx_rsp")
                did = True
            if self.rx_backlog:
                try:
                    self.rxb.checked_requests()
                except RingError as e:
                    self.fail(f"rx ring: {e}")
                    return
                avail = self.rxb.has_unconsumed_requests()
                if avail:
                    moved = 0
                    ops, sizes = [], []
                    while self.rx_backlog and moved < avail:
                        batch = self.rx_backlog[0]
                        take = min(batch[0], avail - moved)
                        per = batch[1] // batch[0]
                        for j in range(take):
                            rq = self.rxb.get_request()
                            why = check_rx_request(rq)
                            if why is not None:
                                self.fail(why)
                                return
                            rid, ref = rq
                            last = (take == batch[0]) and j == take - 1
                            if self.flip:
                                ops.append(A.GnttabTransfer(self.next_mfn, guest, ref))
                                self.next_mfn += 1
                            else:
                                ops.append(A.GnttabCopy(P(gmfn=0x900 + j, domid=DOMID_SELF), P(ref=ref, domid=guest),
                                                          min(per, PAGE), O.GNTCOPY_dest_gref))
                            sizes.append((rid, per, batch[2] if last else None))
                        moved += take
                        batch[0] -= take
                        batch[1] -= per * take
                        if batch[0] == 0:
                            self.rx_backlog.popleft()
                    d.work("io.ring", "io.ring_slot_cycles", moved)
                    d.work("dom0.backend", "io.dom0_net_packet_cycles", moved)
                    if self.flip:
                        ok = self._flip(ops)
                    else:
                        ok = self._move(moved, sum(s[1] for s in sizes), ops)
                    if not ok:
                        self.fail("rx request with a grant reference the frontend did not grant")
                        return
                    self.rx_requests += moved
                    yield d.flush()
                    for rid, size, meta in sizes:
                        self.rxb.put_response((rid, size, meta))
                    d.work("io.ring", "io.ring_slot_cycles", moved)
                    if self.rxb.push_responses_and_check_notify():
                        self.back_notify("rx_rsp")
                    else:
                        d.count("suppressed.rx_rsp")
                    did = True
                elif self.rxb.final_check_for_requests():
                    did = True
            if did:
                continue
            if self.txb.final_check_for_requests():
                continue
            yield d.flush()
            yield self.backend_sleep()
            self.thread_woken()


class RingBlk(_RingDev):
    """blkfront/blkback (``flavour="xen"``) or virtio-blk with a host backend (``"virtio"``)."""

    def __init__(self, sys, disk, flavour="xen", persistent=False, indirect=False, ring_pages=1, gdom=None, gos=None):
        self.disk = disk
        self.persistent = persistent
        self.indirect = indirect
        self.s = SharedRing(ring_size(BLKIF_SLOT_BYTES, ring_pages) if flavour == "xen" else 128 * ring_pages)
        self.f, self.b = FrontRing(self.s), BackRing(self.s)
        self.out: dict[int, tuple] = {}
        self.inflight_ids: set = set()
        self.next_id = 0
        self.waiters: list = []
        self.done: deque = deque()
        self.requests = 0
        self.persist: dict[int, int] = {}
        self.pool: list[int] = []
        self.pool_all: set[int] = set()
        self.max_segs = MAX_INDIRECT_SEGMENTS if indirect else BLKIF_MAX_SEGMENTS_PER_REQUEST
        super().__init__(sys, "vbd", flavour, ring_pages=ring_pages, gdom=gdom, gos=gos)

    def features(self):
        f = {"feature-flush-cache": 1, "feature-persistent": int(self.persistent), "sectors": self.disk.capacity_sectors}
        if self.indirect:
            f["feature-max-indirect-segments"] = MAX_INDIRECT_SEGMENTS
        return f

    # ------------------------------------------------------------ frontend
    def submit_gen(self, op: int, sector: int, nbytes: int, comp_box: list):
        """Generator (thread context): queue the request(s), notify if needed; puts the
        :class:`Completion` in ``comp_box``."""
        g = self.g
        segs = max(1, -(-nbytes // PAGE))
        per_req = self.max_segs
        parts = -(-segs // per_req)
        c = Completion(self.engine, parts)
        comp_box.append(c)
        g.work("kernel.block", "io.block_layer_request_cycles")
        left, sec = segs, sector
        while left:
            if self.closed:
                c.part_done(error=True)
                left = 0
                break
            if self.f.free_requests() == 0:
                ev = self.engine.event()
                self.waiters.append(ev)
                yield g.flush()
                yield ("wait", ev)
                continue
            k = min(left, per_req)
            rid = self.next_id
            self.next_id += 1
            if self.flavour != "xen":
                refs = list(range(k))
            elif self.persistent:
                # feature-persistent: a pool of pages granted once (read-write) and reused; the data
                # is copied through them (Linux blkfront keeps them LIFO)
                refs = [self.pool.pop() if self.pool else self.fgt.grant_access(0, 0x38000 + len(self.pool_all))
                        for _ in range(k)]
                self.pool_all.update(refs)
                g.work("io.grant", "io.memcpy_byte_cycles", min(nbytes, k * PAGE))
            else:
                refs = [self.fgt.grant_access(0, 0x30000 + ((rid * 16 + i) & 0xFFFF), readonly=(op == BLKIF_OP_WRITE))
                        for i in range(k)]
            ind = 0
            if k > BLKIF_MAX_SEGMENTS_PER_REQUEST:
                ind = -(-k // SEGS_PER_INDIRECT_FRAME)
                refs_ind = [self.fgt.grant_access(0, 0x40000 + rid * 8 + i, readonly=True) for i in range(ind)]
                refs = refs + refs_ind
            self.out[rid] = (c, refs)
            self.f.put_request({"id": rid, "operation": BLKIF_OP_INDIRECT if ind else op, "indirect_op": op,
                                "nr_segments": k, "sector_number": sec, "grefs": refs[:k], "nbytes": min(nbytes, k * PAGE)})
            self.requests += 1
            self.grant_entry(len(refs))
            g.work("io.ring", "io.ring_slot_cycles")
            drv = "io.blkfront_request_cycles" if self.flavour == "xen" else "io.virtio_driver_packet_cycles"
            g.work("kernel.blkfront", drv)
            left -= k
            sec += k * 8
            yield from self._push_and_notify(self.f, "blk_req")
        yield g.flush()

    def front_event(self) -> None:
        g = self.g
        n = 0
        comps = []
        while True:
            for _ in range(self.f.has_unconsumed_responses()):
                rsp = self.f.get_response()
                ent = self.out.pop(rsp["id"], None)
                if ent is None:
                    self.front_error = f"response id {rsp['id']} never issued"
                    g.count("io.frontend_error")
                    continue
                c, refs = ent
                if self.flavour == "xen":
                    for r in refs:
                        if r in self.pool_all:
                            self.pool.append(r)
                        else:
                            self.fgt.end_access(r)
                    self.grant_entry(len(refs))
                comps.append((c, rsp["status"] != BLKIF_RSP_OKAY))
                n += 1
            if not self.f.final_check_for_responses():
                break
        if n:
            g.work("io.ring", "io.ring_slot_cycles", n)
            g.work("kernel.block", "io.block_layer_request_cycles", 0.5 * n)  # bio completion
            ws, self.waiters = self.waiters, []
            for w in ws:
                w.succeed()
            for c, err in comps:
                c.part_done(err)

    # ------------------------------------------------------------ backend
    def _disk_done(self, req) -> None:
        self.done.append(req)
        self.backend_irq()

    def backend(self):
        d = self.d
        guest = self.gdom.domid
        while not self.closed:
            did = False
            try:
                avail = min(self.b.checked_requests(), self.b.has_unconsumed_requests())
            except RingError as e:
                self.fail(f"blkif ring: {e}")
                return
            if avail:
                # copy out of the shared slot (the frontend may rewrite it), then distrust every field
                reqs = [self.b.get_request() for _ in range(avail)]
                reqs = [dict(r) if isinstance(r, dict) else r for r in reqs]
                maps = []
                for r in reqs:
                    why = check_blk_request(r, max_segs=self.max_segs, indirect=self.indirect,
                                            capacity_sectors=self.disk.capacity_sectors, inflight=self.inflight_ids)
                    if why is not None:
                        self.fail(why)
                        return
                    self.inflight_ids.add(r["id"])
                    if self.flavour == "xen":
                        ro = r["indirect_op"] == BLKIF_OP_WRITE and not self.persistent
                        for ref in r["grefs"]:
                            if self.persistent and ref in self.persist:
                                continue
                            maps.append(A.GnttabMapGrantRef(0x5000_0000 + 0x1000 * len(maps),
                                                              O.GNTMAP_host_map | (O.GNTMAP_readonly if ro else 0),
                                                              ref, guest))
                d.work("io.ring", "io.ring_slot_cycles", len(reqs))
                if maps:
                    rc = d.hypercall(HYPERVISOR_grant_table_op, O.GNTTABOP_map_grant_ref, maps, len(maps))
                    if rc != 0:
                        self.fail(f"GNTTABOP_map_grant_ref returned {rc}")
                        return
                    if any(m.status != O.GNTST_okay for m in maps):
                        self.fail("request with a grant reference the frontend did not grant")
                        return
                    for r in reqs:
                        r["handles"] = []
                    hi = {m.ref: m.handle for m in maps}
                    for r in reqs:
                        if self.persistent:
                            for ref in r["grefs"]:
                                if ref in hi:
                                    self.persist[ref] = hi[ref]
                        else:
                            r["handles"] = [hi[ref] for ref in r["grefs"]]
                key = "io.blkback_request_cycles" if self.flavour == "xen" else "io.vhost_request_cycles"
                d.work("dom0.backend", key, len(reqs))
                d.work("dom0.backend", "io.native_blk_request_cycles", len(reqs))
                yield d.flush()
                for r in reqs:
                    self.disk.submit(r["indirect_op"], r["sector_number"], r["nbytes"], lambda r=r: self._disk_done(r))
                did = True
            if self.done:
                fin = list(self.done)
                self.done.clear()
                if self.flavour == "xen":
                    if self.persistent:
                        d.work("io.grant", "io.memcpy_byte_cycles", sum(r["nbytes"] for r in fin))
                    else:
                        un = [A.GnttabUnmapGrantRef(0, 0, h) for r in fin for h in r.get("handles", [])]
                        if un:
                            d.hypercall(HYPERVISOR_grant_table_op, O.GNTTABOP_unmap_grant_ref, un, len(un))
                else:
                    d.work("io.ring", "io.memcpy_byte_cycles", 0)
                for r in fin:
                    self.inflight_ids.discard(r["id"])
                    self.b.put_response({"id": r["id"], "operation": r["operation"], "status": BLKIF_RSP_OKAY})
                d.work("io.ring", "io.ring_slot_cycles", len(fin))
                if self.b.push_responses_and_check_notify():
                    self.back_notify("blk_rsp")
                else:
                    d.count("suppressed.blk_rsp")
                did = True
            if did:
                continue
            if self.b.final_check_for_requests():
                continue
            yield d.flush()
            yield self.backend_sleep()
            self.thread_woken()


# =============================================================================== emulated devices
class DeviceModel:
    """The device model (QEMU) as a thread on dom0's vCPU: serves forwarded accesses in order."""

    def __init__(self, sys):
        self.sys = sys
        self.d = sys.d
        self.q: deque = deque()
        self.wake = None
        sys.spawn_backend(self.loop())

    def request(self, accesses: int, action=None):
        done = self.sys.engine.event()
        self.q.append((accesses, action, done))
        if self.wake is not None and not self.wake.triggered:
            self.wake.succeed()
        return done

    def loop(self):
        d = self.d
        while True:
            while self.q:
                n, action, done = self.q.popleft()
                self.sys.dm_access(d, n)
                if action is not None:
                    yield from action
                yield d.flush()
                done.succeed()
            self.wake = self.sys.engine.event()
            yield ("wait", self.wake)
            host_thread_woken(d)  # QEMU's I/O thread: woken by the ioreq event, then scheduled


class EmuNet(_Base):
    """e1000-like NIC emulated by the device model."""

    def __init__(self, sys, nic, sock, mss, dm: DeviceModel):
        super().__init__(sys)
        self.nic, self.sock, self.mss, self.dm = nic, sock, mss, dm
        self.reason = "ept_violation"  # e1000 registers are MMIO (a BT VMM's callout, an EPT/shadow fault under VT-x)
        self.rx_backlog: deque = deque()  # frames already DMA'd into guest memory
        self.irq_pending = False
        self.d0_irq_pending = False
        self.d0_backlog: deque = deque()
        sys.bridge_rx(self.dom0_rx)

    def send(self, nbytes: int, meta):
        g = self.g
        n = nsegs(nbytes, self.mss)
        self.sys.syscall(g)
        self.stack_tx(n, nbytes)
        g.work("kernel.nic_driver", "io.native_nic_packet_cycles", n)
        yield g.flush()
        self.sys.trapped_access(g, n, self.reason)  # one TDT write per frame
        yield g.flush()
        yield ("bwait", self.dm.request(n, self._dm_tx(n, nbytes + n * TCPIP_HEADER_BYTES, meta)))

    def _dm_tx(self, n, wire, meta):
        d = self.d
        d.work("device.emulation", "io.device_model_packet_cycles", n)
        d.work("device.emulation", "io.memcpy_byte_cycles", wire)
        d.work("dom0.backend", "io.dom0_net_packet_cycles", n)
        yield d.flush()
        while self.nic.space() < n:
            yield ("wait", self.nic.space_event(n))
        self.nic.transmit(n, wire, meta)
        self._guest_irq()  # TXDW

    def dom0_rx(self, n, nbytes, meta):
        self.d0_backlog.append((n, nbytes, meta))
        if not self.d0_irq_pending:
            self.d0_irq_pending = True
            self.d.raise_irq(self._d0_isr, self.sys.account)

    def _d0_isr(self):
        self.sys.dom0_irq_entry(self.d)
        self.d0_irq_pending = False
        batch = list(self.d0_backlog)
        self.d0_backlog.clear()
        self.dm.request(0, self._dm_rx(batch))
        yield self.d.flush()

    def _dm_rx(self, batch):
        d = self.d
        for n, nb, meta in batch:
            d.work("device.emulation", "io.device_model_packet_cycles", n)
            d.work("device.emulation", "io.memcpy_byte_cycles", nb)
            d.work("dom0.backend", "io.dom0_net_packet_cycles", n)
        yield d.flush()
        self.rx_backlog.extend(batch)
        self._guest_irq()

    def _guest_irq(self):
        if not self.irq_pending:
            self.irq_pending = True
            self.g.raise_irq(self.isr, source="event")  # the device model's interrupt: vcpu_kick

    def isr(self):
        g, sys = self.g, self.sys
        sys.guest_irq_entry(g)
        sys.trapped_access(g, 2, self.reason)  # read ICR, write IMC
        yield g.flush()
        yield ("bwait", self.dm.request(2))
        self.irq_pending = False
        metas = []
        frames = 0
        while self.rx_backlog:
            n, nb, meta = self.rx_backlog.popleft()
            frames += n
            g.work("kernel.nic_driver", "io.native_nic_packet_cycles", n)
            self.stack_rx(n, max(0, nb - n * TCPIP_HEADER_BYTES))
            metas.append(meta)
        sys.trapped_access(g, 1 + (1 if frames else 0), self.reason)  # IMS (+ RDT after refill)
        yield g.flush()
        yield ("bwait", self.dm.request(1 + (1 if frames else 0)))
        for m in metas:
            self.sock.deliver(m)


class EmuBlk(_Base):
    """IDE-like (one command at a time) or AHCI-like (32 in flight) disk emulated by the DM."""

    SUBMIT = {"ide": 10, "ahci": 1}
    COMPLETE = {"ide": 3, "ahci": 4}
    DEPTH = {"ide": 1, "ahci": 32}

    def __init__(self, sys, disk, dm: DeviceModel, kind: str = "ide"):
        super().__init__(sys)
        if kind not in self.SUBMIT:
            raise ValueError(f"emulated disk must be ide or ahci, got {kind!r}")
        self.disk, self.dm, self.kind = disk, dm, kind
        self.reason = "io_instruction" if kind == "ide" else "ept_violation"  # IDE ports; AHCI is MMIO
        self.inflight = 0
        self.pending: deque = deque()
        self.done: deque = deque()
        self.irq_pending = False

    def submit_gen(self, op, sector, nbytes, comp_box):
        g = self.g
        c = Completion(self.engine, 1)
        comp_box.append(c)
        g.work("kernel.block", "io.block_layer_request_cycles")
        g.work("kernel.blk_driver", "io.native_blk_request_cycles")
        if self.inflight >= self.DEPTH[self.kind]:
            self.pending.append((op, sector, nbytes, c))
            yield g.flush()
            return
        yield from self._issue(op, sector, nbytes, c)

    def _issue(self, op, sector, nbytes, c):
        g = self.g
        self.inflight += 1
        n = self.SUBMIT[self.kind]
        self.sys.trapped_access(g, n, self.reason)
        yield g.flush()
        yield ("bwait", self.dm.request(n, self._dm_submit(op, sector, nbytes, c)))

    def _dm_submit(self, op, sector, nbytes, c):
        d = self.d
        d.work("device.emulation", "io.device_model_request_cycles")
        d.work("dom0.backend", "io.native_blk_request_cycles")
        yield d.flush()
        self.disk.submit(op, sector, nbytes, lambda: self.dm.request(0, self._dm_complete(nbytes, c)))

    def _dm_complete(self, nbytes, c):
        d = self.d
        self.sys.dom0_irq_entry(d)
        d.work("device.emulation", "io.memcpy_byte_cycles", nbytes)
        yield d.flush()
        self.done.append(c)
        if not self.irq_pending:
            self.irq_pending = True
            self.g.raise_irq(self.isr, source="event")  # the device model's interrupt: vcpu_kick

    def isr(self):
        g = self.g
        self.sys.guest_irq_entry(g)
        n = self.COMPLETE[self.kind]
        self.sys.trapped_access(g, n, self.reason)
        yield g.flush()
        yield ("bwait", self.dm.request(n))
        self.irq_pending = False
        fin = list(self.done)
        self.done.clear()
        g.work("kernel.block", "io.block_layer_request_cycles", 0.5 * len(fin))
        self.inflight -= len(fin)
        for c in fin:
            c.part_done()
        while self.pending and self.inflight < self.DEPTH[self.kind]:
            op, sector, nbytes, c = self.pending.popleft()
            yield from self._issue(op, sector, nbytes, c)
        yield g.flush()


# =============================================================================== the registry
class DevicePath:
    """How the devices of one device kind (the mode table's ``devices``) are made."""

    def __init__(self, blk, net, needs_device_model: bool = False):
        self.blk = blk  # (attachment, disk, device model, options) -> block path
        self.net = net  # (attachment, nic, socket, mss, device model, options) -> network path
        self.needs_device_model = needs_device_model


DEVICE_PATHS = {
    "host": DevicePath(lambda att, disk, dm, o: NativeBlk(att, disk),
                       lambda att, nic, sock, mss, dm, o: NativeNet(att, nic, sock, mss)),
    "split": DevicePath(lambda att, disk, dm, o: RingBlk(att, disk, "xen", persistent=o.persistent,
                                                         indirect=o.indirect, ring_pages=o.ring_pages),
                        lambda att, nic, sock, mss, dm, o: RingNet(att, nic, sock, mss, "xen", o.grant_mode,
                                                                   o.netback_rx)),
    "virtio": DevicePath(lambda att, disk, dm, o: RingBlk(att, disk, "virtio"),
                         lambda att, nic, sock, mss, dm, o: RingNet(att, nic, sock, mss, "virtio")),
    "emulated": DevicePath(lambda att, disk, dm, o: EmuBlk(att, disk, dm, o.emulated_disk),
                           lambda att, nic, sock, mss, dm, o: EmuNet(att, nic, sock, mss, dm), needs_device_model=True),
}
