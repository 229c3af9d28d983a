"""Physical devices outside the hypervisor: a disk (rotational or SSD) with a request queue, a NIC
with its link, and the peer host at the other end of the wire.

Design note
-----------
* :class:`Disk`: rotational service = seek + rotational latency + transfer, with
  ``seek(d) = t2t + (full - t2t) * sqrt(d / max_d)`` scaled so random requests average the
  datasheet average seek (the mean of ``sqrt|U1-U2|`` is 8/15); a sequential request (starts where
  the head is) has no seek and no rotational delay. SSD: ``c`` parallel flash channels, service =
  latency + size / bandwidth, ``c = max_iops * latency``. ``kind="exp"`` is an exponential server
  (for the M/M/1 validation). FIFO queue. Bulk service times come from the compiled kernel
  :func:`disk_service_ns` (reference :func:`disk_service_ns_ref`).
* :class:`NIC`: one transmit queue (``txqueuelen`` 1000 packets, Linux default), serialisation at
  the link rate with Ethernet framing overhead (preamble 8 + header 14 + FCS 4 + inter-frame gap 12
  = 38 bytes per frame, IEEE 802.3), then the one-way wire latency to the :class:`Peer`; frames
  from the peer arrive after the same latency and are handed to the NIC's owner (dom0 or the
  native kernel) through ``on_rx``.
* :class:`Peer`: a domain's counterpart beyond the wire: ``sink`` (bulk receiver that returns one
  66-byte ACK per two segments: Linux delayed ACK), ``rr`` (answers each request after
  ``io.peer_turnaround_us``), ``clients`` (closed-loop clients, one per connection);
  :class:`Outside` routes each frame to its domain's peer, :class:`Bridge` each arriving frame to
  its domain's receive path (the software bridge of dom0 or the host kernel).
* :class:`Link`: a link between two ends of a scenario (rate, latency, MTU), one
  :class:`~pvsim.io.flows.Pipe` each way, whose flows share its rate max-min fairly (see
  :mod:`pvsim.io.flows`); :class:`RemoteDisk`: shared storage reached over a link (its requests are
  the link's default FIFO flow). A NIC may sit on a link between hosts instead of the outside link
  (a domain's ``net_peer``): its frames are then one flow on that link's pipe, and the peer's frames
  come back on the other direction's pipe.

Simplifications: no disk cache, no NCQ reordering, no TSO/GRO (a segment is a frame), no loss (but a
failed host's NIC and a cut link, ``dead``, drop everything: :mod:`pvsim.ha.inrun`).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
from numba import njit

from pvsim.core import kernels
from pvsim.core.errors import ScenarioError
from pvsim.io.flows import Pipe

ETH_FRAMING_BYTES = 38
TCPIP_HEADER_BYTES = 40
TXQUEUELEN = 1000  # Linux DEFAULT_TX_QUEUE_LEN (include/linux/netdevice.h), set by ether_setup()
SECTOR = 512
ACK_BYTES = 66


# ---------------------------------------------------------------------------- service-time kernel
def disk_service_ns_ref(head, start, nbytes, u_rot, params, out):
    """params = [t2t_ns, full_ns, max_sectors, rotation_ns, media_bytes_per_ns]; writes ns into out."""
    t2t, full, max_d, rot, bpns = params[0], params[1], params[2], params[3], params[4]
    h = head
    for i in range(len(start)):
        d = abs(start[i] - h)
        if d == 0:
            s = 0.0
        else:
            s = t2t + (full - t2t) * math.sqrt(min(d, max_d) / max_d) + u_rot[i] * rot
        out[i] = s + nbytes[i] / bpns
        h = start[i] + nbytes[i] // SECTOR
    return out


@njit(cache=True)
def _disk_service_ns_kernel(head, start, nbytes, u_rot, params, out):
    t2t = params[0]
    full = params[1]
    max_d = params[2]
    rot = params[3]
    bpns = params[4]
    h = head
    for i in range(start.shape[0]):
        d = start[i] - h
        if d < 0:
            d = -d
        if d == 0:
            s = 0.0
        else:
            dd = d if d < max_d else max_d
            s = t2t + (full - t2t) * math.sqrt(dd / max_d) + u_rot[i] * rot
        out[i] = s + nbytes[i] / bpns
        h = start[i] + nbytes[i] // 512
    return out


def disk_service_ns(head: int, start, nbytes, u_rot, params) -> np.ndarray:
    start = np.asarray(start, dtype=np.int64)
    nbytes = np.asarray(nbytes, dtype=np.int64)
    u_rot = np.asarray(u_rot, dtype=np.float64)
    params = np.asarray(params, dtype=np.float64)
    if not (start.shape == nbytes.shape == u_rot.shape) or params.shape != (5,):
        raise ValueError("disk_service_ns: shape mismatch")
    out = np.empty(start.shape[0], dtype=np.float64)
    return _disk_service_ns_kernel(int(head), start, nbytes, u_rot, params, out)


def _cases(rng):
    p = np.array([400_000.0, 9_000_000.0, 7e7, 6_000_000.0, 0.06])
    for n in (0, 1, 5, 64):
        start = rng.integers(0, 7e7, n).astype(np.int64)
        if n > 2:
            start[1] = start[0] + 8  # a sequential follow-on
        nb = rng.choice([512, 4096, 65536], n).astype(np.int64)
        yield (int(rng.integers(0, 7e7)), start, nb, rng.random(n), p, np.empty(n))


kernels.register("disk_service_ns", kernel=_disk_service_ns_kernel, reference=disk_service_ns_ref, cases=_cases)


# ---------------------------------------------------------------------------- disk
class Disk:
    """A physical disk with a FIFO queue. ``submit(op, sector, nbytes, done)`` calls ``done()``."""

    def __init__(self, engine, pricer, rng, kind: str | None = None, mean_service_ns: float = 0.0):
        self.engine = engine
        self.rng = rng
        v = pricer.value
        if kind is None:
            kind = "ssd" if v("io.disk_is_ssd_count") else "hdd"
        if kind not in ("hdd", "ssd", "exp"):
            raise ScenarioError("io.disk.kind", f"must be hdd, ssd or exp, got {kind!r}")
        self.kind = kind
        self.queue: deque = deque()
        self.busy = 0
        self.completed = 0
        self.busy_ns = 0
        self.head = 0
        if kind == "hdd":
            t2t = pricer.ns("io.disk_track_seek_us")
            avg = pricer.ns("io.disk_avg_seek_us")
            full = t2t + (avg - t2t) / (8.0 / 15.0)
            self.capacity_sectors = int(v("io.disk_capacity_bytes") // SECTOR)
            self.params = np.array([t2t, full, float(self.capacity_sectors),
                                    pricer.ns("io.disk_rotation_us"), v("io.disk_media_mbps") / 8e3])
            self.servers = 1
        elif kind == "ssd":
            self.read_ns = pricer.ns("io.ssd_read_latency_us")
            self.write_ns = pricer.ns("io.ssd_write_latency_us")
            self.bpns = v("io.ssd_bandwidth_mbps") / 8e3
            self.servers = max(1, round(v("io.ssd_max_iops") * self.read_ns / 1e9))
            self.capacity_sectors = int(v("io.disk_capacity_bytes") // SECTOR)
        else:
            if mean_service_ns <= 0:
                raise ScenarioError("io.disk.mean_service_ns", "must be > 0 for an exponential server")
            self.mean = float(mean_service_ns)
            self.servers = 1
            self.capacity_sectors = 1 << 40

    def service_ns(self, op: int, sector: int, nbytes: int) -> int:
        if self.kind == "hdd":
            u = self.rng.random(1)
            out = disk_service_ns(self.head, [sector], [nbytes], u, self.params)
            self.head = sector + nbytes // SECTOR
            return max(1, int(out[0]))
        if self.kind == "ssd":
            lat = self.write_ns if op == 1 else self.read_ns
            return max(1, int(lat + nbytes / self.bpns))
        return max(1, int(self.rng.exponential(self.mean)))

    def submit(self, op: int, sector: int, nbytes: int, done) -> None:
        self.queue.append((op, sector, nbytes, done))
        self._start()

    def _start(self) -> None:
        while self.busy < self.servers and self.queue:
            op, sector, nbytes, done = self.queue.popleft()
            self.busy += 1
            t = self.service_ns(op, sector, nbytes)
            self.busy_ns += t
            ev = self.engine.timeout_ns(t)
            ev.callbacks.append(lambda _e, done=done: self._finish(done))

    def _finish(self, done) -> None:
        self.busy -= 1
        self.completed += 1
        done()
        self._start()


# ---------------------------------------------------------------------------- NIC, wire and peer
class NIC:
    """A NIC port, its link and the peer beyond it (``rate_mbps``/``latency_us`` of a scenario link,
    else the profile's ``io.nic_rate_mbps`` and ``io.wire_latency_us``)."""

    def __init__(self, engine, pricer, peer: "Peer | Outside | None" = None, *, rate_mbps: float | None = None,
                 latency_us: float | None = None, tx_pipe: Pipe | None = None, rx_pipe: Pipe | None = None):
        self.engine = engine
        # on a link between hosts (a domain's net_peer): frames are this NIC's flow on the link's pipes
        self.tx_pipe, self.rx_pipe = tx_pipe, rx_pipe
        rate = pricer.value("io.nic_rate_mbps") if rate_mbps is None else float(rate_mbps)
        self.rate_bits_per_ns = rate / 1e3
        self.latency_ns = int(pricer.ns("io.wire_latency_us")) if latency_us is None else int(latency_us * 1000)
        self.queue: deque = deque()
        self.queued_pkts = 0
        self.busy = False
        self.on_rx = None  # owner callback (npkts, nbytes, meta)
        self.peer = peer
        self._space_waiters: list = []
        self.tx_pkts = self.tx_bytes = self.rx_pkts = self.rx_bytes = 0
        self.wire_busy_ns = 0
        self.dead = False  # the host failed (pvsim.ha.inrun): frames to and from the wire are lost
        if peer is not None:
            peer.nic = self

    def wire_ns(self, npkts: int, nbytes: int) -> int:
        return max(1, int((nbytes + npkts * ETH_FRAMING_BYTES) * 8 / self.rate_bits_per_ns))

    def space(self) -> int:
        return TXQUEUELEN - self.queued_pkts

    def space_event(self, need: int = 1):
        """An event that fires once the transmit queue has room for ``need`` frames."""
        need = min(max(1, need), TXQUEUELEN)
        ev = self.engine.event()
        if self.space() >= need:
            ev.succeed()
        else:
            self._space_waiters.append((need, ev))
        return ev

    def transmit(self, npkts: int, nbytes: int, meta=None) -> None:
        self.queue.append((npkts, nbytes, meta))
        self.queued_pkts += npkts
        if not self.busy:
            self._next()

    def _next(self) -> None:
        if not self.queue:
            self.busy = False
            return
        self.busy = True
        npkts, nbytes, meta = self.queue.popleft()
        if self.tx_pipe is not None:
            tx = self.tx_pipe.send(nbytes + npkts * ETH_FRAMING_BYTES, self._to_peer(npkts, nbytes, meta), flow=self,
                                   serialised=lambda: self._sent(npkts, nbytes, meta))
            self.wire_busy_ns += tx.work
            return
        t = self.wire_ns(npkts, nbytes)
        self.wire_busy_ns += t
        ev = self.engine.timeout_ns(t)
        ev.callbacks.append(lambda _e: self._sent(npkts, nbytes, meta))

    def _to_peer(self, npkts, nbytes, meta):
        return None if self.peer is None else (lambda: self.peer.receive(npkts, nbytes, meta))

    def _sent(self, npkts, nbytes, meta) -> None:
        self.queued_pkts -= npkts
        self.tx_pkts += npkts
        self.tx_bytes += nbytes
        if self._space_waiters:
            keep = []
            for need, w in self._space_waiters:
                if self.space() >= need:
                    w.succeed()
                else:
                    keep.append((need, w))
            self._space_waiters = keep
        if self.peer is not None and self.tx_pipe is None and not self.dead:
            ev = self.engine.timeout_ns(self.latency_ns)
            ev.callbacks.append(lambda _e: self.dead or self.peer.receive(npkts, nbytes, meta))
        self._next()

    def from_peer(self, npkts: int, nbytes: int, meta=None, delay_ns: int = 0) -> None:
        """The peer sends a frame batch: it arrives after its serialisation + the wire latency."""
        if self.rx_pipe is not None:
            if delay_ns > 0:
                self.engine.timeout_ns(delay_ns).callbacks.append(lambda _e: self.from_peer(npkts, nbytes, meta))
                return
            self.rx_pipe.send(nbytes + npkts * ETH_FRAMING_BYTES, lambda: self._arrive(npkts, nbytes, meta), flow=self)
            return
        t = delay_ns + self.wire_ns(npkts, nbytes) + self.latency_ns
        ev = self.engine.timeout_ns(t)
        ev.callbacks.append(lambda _e: self._arrive(npkts, nbytes, meta))

    def _arrive(self, npkts, nbytes, meta) -> None:
        if self.dead:
            return
        self.rx_pkts += npkts
        self.rx_bytes += nbytes
        if self.on_rx is not None:
            self.on_rx(npkts, nbytes, meta)


class Peer:
    """One domain's counterpart at the other end of the wire (``meta[3]`` names the domain).

    ``sink``: a bulk receiver that returns one 66-byte ACK per two segments (Linux delayed ACK);
    ``rr``: answers each request after ``io.peer_turnaround_us``; ``clients``: one closed-loop client
    per connection, which sends its next request ``io.peer_turnaround_us`` after a response ends.
    Frame metadata is ``(kind, conn, last, domid)``."""

    def __init__(self, engine, pricer, kind: str = "sink", resp_bytes: int = 1, mss: int = 1460, domid: int = 1,
                 request_bytes: int = 300):
        if kind not in ("sink", "rr", "clients"):
            raise ScenarioError("io.peer.kind", f"must be sink, rr or clients, got {kind!r}")
        self.engine = engine
        self.kind = kind
        self.turnaround_ns = int(pricer.ns("io.peer_turnaround_us"))
        self.resp_bytes = resp_bytes
        self.request_bytes = request_bytes
        self.mss = mss
        self.domid = domid
        self.nic: NIC | None = None
        self.received_pkts = 0
        self.received_bytes = 0
        self.sent_at: dict = {}  # clients: conn -> when its request left the client
        self._ack_owed = 0

    def send_request(self, conn, delay_ns: int = 0) -> None:
        """A client sends the request of connection ``conn`` (after ``delay_ns``)."""
        n = max(1, -(-self.request_bytes // self.mss))
        self.sent_at[conn] = self.engine.now_ns + delay_ns
        self.nic.from_peer(n, self.request_bytes + n * TCPIP_HEADER_BYTES, ("req", conn, True, self.domid),
                           delay_ns=delay_ns)

    def receive(self, npkts: int, nbytes: int, meta) -> None:
        self.received_pkts += npkts
        self.received_bytes += nbytes
        if self.kind == "sink":
            self._ack_owed += npkts
            acks = self._ack_owed // 2
            if acks:
                self._ack_owed -= 2 * acks
                self.nic.from_peer(acks, acks * ACK_BYTES, ("ack", None, False, self.domid))
        elif self.kind == "rr":
            if meta is not None and meta[0] == "req" and meta[2]:  # last frame of a request
                n = max(1, -(-self.resp_bytes // self.mss))
                self.nic.from_peer(n, self.resp_bytes + n * TCPIP_HEADER_BYTES, ("rsp", meta[1], True, self.domid),
                                   delay_ns=self.turnaround_ns)
        elif meta is not None and meta[0] == "rsp" and meta[2]:
            self.send_request(meta[1], self.turnaround_ns)


class Outside:
    """The network beyond a host's NIC: each domain's :class:`Peer`, found by the frame's domain."""

    def __init__(self):
        self.peers: dict[int, Peer] = {}
        self.dropped = 0
        self.nic: NIC | None = None

    def add(self, peer: Peer) -> Peer:
        self.peers[peer.domid] = peer
        peer.nic = self.nic
        return peer

    def receive(self, npkts: int, nbytes: int, meta) -> None:
        p = self.peers.get(meta[3]) if meta is not None and len(meta) > 3 else None
        if p is None:
            self.dropped += npkts
            return
        p.receive(npkts, nbytes, meta)


class Bridge:
    """The host's software bridge (dom0's, or the host kernel's): frames from the NIC go to the
    receive handler of the domain they are addressed to."""

    def __init__(self, nic: NIC):
        self.handlers: dict[int, object] = {}
        self.dropped = 0
        nic.on_rx = self.rx

    def attach(self, domid: int, handler) -> None:
        self.handlers[domid] = handler

    def rx(self, npkts: int, nbytes: int, meta) -> None:
        h = self.handlers.get(meta[3]) if meta is not None and len(meta) > 3 else None
        if h is None:
            self.dropped += npkts
            return
        h(npkts, nbytes, meta)


# ---------------------------------------------------------------------------- links and remote storage
class Link:
    """A link between two ends (hosts, storage, the outside), one :class:`Pipe` each way."""

    def __init__(self, engine, a: str, b: str, rate_mbps: float, latency_us: float, mtu: int = 1500):
        self.ends = (a, b)
        self.mtu = mtu
        self.pipes = {a: Pipe(engine, rate_mbps, latency_us), b: Pipe(engine, rate_mbps, latency_us)}

    def pipe_from(self, end: str) -> Pipe:
        return self.pipes[end]


STORAGE_REQUEST_BYTES = 128  # NFS/iSCSI request header on the wire [assumption: RPC/iSCSI PDU header]


class RemoteDisk:
    """A disk reached over a link (shared storage, NFS or iSCSI-like): the request crosses the link
    (its header, plus the data of a write), the storage server serves it (``latency_us`` plus the
    transfer at ``throughput_mbps``, up to ``iops x latency`` requests in parallel), and the response
    comes back (plus the data of a read)."""

    def __init__(self, engine, link: Link, host: str, storage: str, *, latency_us: float, throughput_mbps: float,
                 iops: float, capacity_bytes: int = 1 << 44):
        self.engine = engine
        self.to_server = link.pipe_from(host)
        self.to_host = link.pipe_from(storage)
        self.latency_ns = latency_us * 1000.0
        self.bpns = throughput_mbps / 8e3
        self.servers = max(1, round(iops * latency_us / 1e6))
        self.capacity_sectors = capacity_bytes // SECTOR
        self.queue: deque = deque()
        self.busy = 0
        self.completed = 0
        self.busy_ns = 0

    def submit(self, op: int, sector: int, nbytes: int, done) -> None:
        req = STORAGE_REQUEST_BYTES + (nbytes if op == 1 else 0)
        self.to_server.send(req, lambda: self._arrive(op, nbytes, done))

    def _arrive(self, op, nbytes, done) -> None:
        self.queue.append((op, nbytes, done))
        self._start()

    def _start(self) -> None:
        while self.busy < self.servers and self.queue:
            op, nbytes, done = self.queue.popleft()
            self.busy += 1
            t = max(1, int(self.latency_ns + nbytes / self.bpns))
            self.busy_ns += t
            self.engine.timeout_ns(t).callbacks.append(lambda _e, op=op, n=nbytes, d=done: self._served(op, n, d))

    def _served(self, op, nbytes, done) -> None:
        self.busy -= 1
        self.completed += 1
        self.to_host.send(STORAGE_REQUEST_BYTES + (nbytes if op == 0 else 0), done)
        self._start()
