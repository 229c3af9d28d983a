"""I/O workloads and their metrics: the entry point ``run_io_workload`` used by ``pvsim compare``.

Design note
-----------
Each workload is a set of guest threads (generators run by the guest's
:class:`~pvsim.io.cpu.VcpuOS`) issuing socket writes, request/response exchanges and block I/O
through the mode's device path (:mod:`pvsim.io.paths`). Nothing about the result is assumed: the
throughput, latency, notification, exit and grant counts all come out of the simulated protocol.
Application CPU per operation is a profile key (``io.app_*``, ``io.*_op_cycles``), the same for
every mode, so comparisons are like for like.

Workloads (``IO_WORKLOADS``):

* ``ttcp-1500`` / ``ttcp-500``: bulk TCP transmit at MTU 1500 / 500 (ttcp, SOSP'03 §4.3), the
  peer acknowledges every second segment; metric ``mbit_per_s`` of payload.
* ``netperf-rr``: TCP_RR, 1-byte request and response, one transaction in flight; ``trans_per_s``.
* ``fio-rand4k``: random 4 KiB reads (70 %) and writes over the disk, ``iodepth`` synchronous jobs
  (default 16); ``iops``.
* ``dbench``: file-server operations (``threads`` clients, default 4): page-cache work per op, 10 %
  read misses (random 4 KiB), 15 % synchronous 8 KiB log writes; ``ops_per_s``.
* ``oltp``: ``threads`` (default 8) database transactions: engine CPU, 2 random 8 KiB buffer-pool
  misses, one synchronous 4 KiB commit-log write; ``trans_per_s``.
* ``web``: ``clients`` (default 16) closed-loop HTTP clients on the peer host; 70 % static (16 KiB
  response, 10 % of them miss the page cache: one 16 KiB disk read), 30 % dynamic (8 KiB
  response); ``ops_per_s``.

Breakdown: the measured window (after a warm-up of a tenth of the run, at most 50 ms) is split
into the guest vCPU's own work by cause (priced from its meter), ``sched.wait`` (runnable but not
running), the dom0 / host work done on the guest's behalf (``dom0.*``, ``device.emulation``,
``io.grant``...) and ``idle``. Dom0 work runs on another pCPU in parallel with the guest, so it is
charged back into the guest's waiting time; when it exceeds that time it is scaled down to fit
(the unscaled figure is ``dom0_ns_per_request``). The breakdown sums to ``elapsed_ns``.
"""

from __future__ import annotations

import numpy as np

from pvsim.errors import ScenarioError
from pvsim.io.devices import NIC, Disk, Peer
from pvsim.io.paths import (
    DeviceModel,
    EmuBlk,
    EmuNet,
    NativeBlk,
    NativeNet,
    RingBlk,
    RingNet,
    Socket,
)
from pvsim.io.system import EMULATED_MODES, MODES, PV_DRIVER_MODES, IOSystem
from pvsim.meter import Meter

IO_WORKLOADS = ("ttcp-1500", "ttcp-500", "netperf-rr", "fio-rand4k", "dbench", "oltp", "web")
DESCRIPTIONS = {
    "ttcp-1500": "bulk TCP transmit to a peer host at MTU 1500 (ttcp); Mbit/s of payload",
    "ttcp-500": "bulk TCP transmit to a peer host at MTU 500 (ttcp); Mbit/s of payload",
    "netperf-rr": "TCP request/response, 1-byte messages, one in flight (netperf TCP_RR); transactions/s",
    "fio-rand4k": "random 4 KiB reads and writes (70/30), iodepth synchronous jobs (fio); IOPS",
    "dbench": "file-server operation mix, mostly page cache with read misses and sync log writes; ops/s",
    "oltp": "database transactions: engine CPU, random 8 KiB reads, synchronous commit write; transactions/s",
    "web": "closed-loop HTTP clients, static (16 KiB) and dynamic (8 KiB) pages; requests/s",
}
IO_MODES = MODES
WORKLOAD_DESCRIPTIONS = DESCRIPTIONS
CHUNK_NS = 100_000
SECTOR = 512


def _cpu(sys, os_, cause: str, key: str, units: float = 1.0):
    """App CPU work, handed to the dispatcher in chunks of at most 100 us."""
    ns = units * sys.pricer.cycles(key) / sys.pricer.ghz
    k = max(1, int(-(-ns // CHUNK_NS)))
    for _ in range(k):
        os_.work(cause, key, units / k)
        yield os_.flush()


class _Run:
    """One workload run: builds the system, the device paths and the threads."""

    def __init__(self, workload, mode, profile, seed, duration_ns, dom0_weight, neighbours, scheduler, opts):
        self.w = workload
        self.opts = opts
        n_pcpus = int(opts.pop("n_pcpus", 2))
        self.sys = sys = IOSystem(mode, profile, seed=seed, scheduler=scheduler, n_pcpus=n_pcpus,
                                  dom0_weight=dom0_weight, neighbours=neighbours,
                                  guest_weight=int(opts.pop("guest_weight", 256)))
        self.rng = sys.engine.rng(f"io/{workload}")
        self.lat: list[float] = []
        self.done = 0
        self.duration = duration_ns
        self.warm = min(duration_ns // 10, 50_000_000)
        self.net = self.blk = None
        self.sock = Socket(sys.engine)
        net_w = workload in ("ttcp-1500", "ttcp-500", "netperf-rr", "web")
        blk_w = workload in ("fio-rand4k", "dbench", "oltp", "web")
        mtu = 500 if workload == "ttcp-500" else int(opts.pop("mtu", 1500))
        self.mss = mtu - 40
        dm = DeviceModel(sys) if mode in EMULATED_MODES else None
        if net_w:
            kind = {"netperf-rr": "rr", "web": "clients"}.get(workload, "sink")
            self.peer = Peer(sys.engine, sys.pricer, kind, resp_bytes=1, mss=self.mss)
            self.nic = NIC(sys.engine, sys.pricer, self.peer)
            if mode in ("native", "container"):
                self.net = NativeNet(sys, self.nic, self.sock, self.mss)
            elif mode in PV_DRIVER_MODES:
                self.net = RingNet(sys, self.nic, self.sock, self.mss, "xen", opts.pop("grant_mode", "copy"))
            elif mode == "kvm-virtio":
                self.net = RingNet(sys, self.nic, self.sock, self.mss, "virtio")
            else:
                self.net = EmuNet(sys, self.nic, self.sock, self.mss, dm)
        if blk_w:
            self.disk = Disk(sys.engine, sys.pricer, sys.engine.rng("io/disk"), opts.pop("disk_kind", None),
                             float(opts.pop("mean_service_ns", 0.0)))
            if mode in ("native", "container"):
                self.blk = NativeBlk(sys, self.disk)
            elif mode in PV_DRIVER_MODES:
                self.blk = RingBlk(sys, self.disk, "xen", persistent=bool(opts.pop("persistent", False)),
                                   indirect=bool(opts.pop("indirect", False)), ring_pages=int(opts.pop("ring_pages", 1)))
            elif mode == "kvm-virtio":
                self.blk = RingBlk(sys, self.disk, "virtio")
            else:
                self.blk = EmuBlk(sys, self.disk, dm, opts.pop("emulated_disk", "ide"))
        getattr(self, "_setup_" + workload.split("-")[0])()
        if opts:
            raise ScenarioError("io.opts", f"unknown options for {workload}: {sorted(opts)}")

    # ------------------------------------------------------------------ helpers
    def record(self, t0: int) -> None:
        now = self.sys.engine.now_ns
        if now >= self.warm:
            self.done += 1
            self.lat.append((now - t0) / 1000.0)

    def blk_io(self, op, sector, nbytes):
        box = []
        yield from self.blk.submit_gen(op, sector, nbytes, box)
        yield ("wait", box[0].ev)

    def rand_sector(self, align_bytes=4096, span_bytes=None):
        cap = self.disk.capacity_sectors * SECTOR
        span = min(cap, span_bytes or cap)
        return int(self.rng.integers(0, span // align_bytes)) * (align_bytes // SECTOR)

    # ------------------------------------------------------------------ workloads
    def _setup_ttcp(self):
        wb = int(self.opts.pop("write_bytes", 16384))
        if not 1 <= wb <= 262144:
            raise ScenarioError("io.opts.write_bytes", f"must be 1..262144, got {wb}")
        self.write_bytes = wb
        g, sys = self.sys.gos, self.sys

        def sender():
            while True:
                t0 = sys.engine.now_ns
                yield from self.net.send(wb, ("bulk", None, False))
                self.record(t0)
        g.spawn(sender())

    def _setup_netperf(self):
        g, sys = self.sys.gos, self.sys

        def rr():
            i = 0
            while True:
                i += 1
                t0 = sys.engine.now_ns
                yield from _cpu(sys, g, "user.app", "io.app_rr_cycles")
                ev = self.sock.expect(i)
                yield from self.net.send(1, ("req", i, True))
                yield ("wait", ev)
                sys.syscall(g)  # recv
                self.record(t0)
        g.spawn(rr())

    def _setup_fio(self):
        depth = int(self.opts.pop("iodepth", 16))
        rfrac = float(self.opts.pop("read_frac", 0.7))
        bb = int(self.opts.pop("block_bytes", 4096))
        if not 1 <= depth <= 1024:
            raise ScenarioError("io.opts.iodepth", f"must be 1..1024, got {depth}")
        if not (512 <= bb <= 1 << 20 and bb % 512 == 0):
            raise ScenarioError("io.opts.block_bytes", f"must be a multiple of 512 in 512..1048576, got {bb}")
        g, sys = self.sys.gos, self.sys
        span = int(self.opts.pop("span_bytes", 8 << 30))

        def job(j):
            while True:
                t0 = sys.engine.now_ns
                yield from _cpu(sys, g, "user.app", "io.app_fio_cycles")
                sys.syscall(g)
                op = 0 if self.rng.random() < rfrac else 1
                yield from self.blk_io(op, self.rand_sector(max(4096, bb), span), bb)
                self.record(t0)
        for j in range(depth):
            g.spawn(job(j))

    def _setup_dbench(self):
        n = int(self.opts.pop("threads", 4))
        g, sys = self.sys.gos, self.sys
        self.log_sector = 0

        def client():
            while True:
                t0 = sys.engine.now_ns
                sys.syscall(g, 2)
                yield from _cpu(sys, g, "user.app", "io.dbench_op_cycles")
                u = self.rng.random()
                if u < 0.10:
                    yield from self.blk_io(0, self.rand_sector(4096, 8 << 30), 4096)
                elif u < 0.25:
                    self.log_sector += 16
                    yield from self.blk_io(1, (1 << 24) + self.log_sector % (1 << 20), 8192)
                self.record(t0)
        for _ in range(n):
            g.spawn(client())

    def _setup_oltp(self):
        n = int(self.opts.pop("threads", 8))
        g, sys = self.sys.gos, self.sys
        self.log_sector = 0

        def txn():
            while True:
                t0 = sys.engine.now_ns
                sys.syscall(g, 4)
                yield from _cpu(sys, g, "user.app", "io.oltp_txn_cycles")
                for _ in range(2):
                    yield from self.blk_io(0, self.rand_sector(8192, 16 << 30), 8192)
                self.log_sector += 8
                yield from self.blk_io(1, (1 << 25) + self.log_sector % (1 << 20), 4096)
                self.record(t0)
        for _ in range(n):
            g.spawn(txn())

    def _setup_web(self):
        n = int(self.opts.pop("clients", 16))
        g, sys = self.sys.gos, self.sys
        nic, peer = self.nic, self.peer
        starts = {}

        def next_request(conn):
            starts[conn] = sys.engine.now_ns + peer.turnaround_ns
            nic.from_peer(1, 300 + 40, ("req", conn, True), delay_ns=peer.turnaround_ns)
        peer.on_message = next_request

        def server(conn):
            while True:
                yield ("wait", self.sock.expect(("req", conn)))
                t0 = starts.get(conn, sys.engine.now_ns)
                sys.syscall(g, 3)
                if self.rng.random() < 0.7:
                    yield from _cpu(sys, g, "user.app", "io.web_static_cycles")
                    if self.rng.random() < 0.1:
                        yield from self.blk_io(0, self.rand_sector(4096, 4 << 30), 16384)
                    size = 16384
                else:
                    yield from _cpu(sys, g, "user.app", "io.web_dynamic_cycles")
                    size = 8192
                yield from self.net.send(size, ("rsp", conn, True))
                self.record(t0)
        for c in range(n):
            g.spawn(server(c))
            next_request(c)

    # ------------------------------------------------------------------ run and report
    def snapshot(self):
        sys = self.sys
        oses = [sys.gos] if sys.native else [sys.gos, sys.d0os]
        gunit = next(u for u in sys.runner.units if u.dom.domid == (0 if sys.native else 1))
        snap = {
            "t": sys.engine.now_ns,
            "meters": [Meter(work=o.meter.work.copy(), counts=o.meter.counts.copy()) for o in oses],
            "rs": sys.runner.runstate_ns(gunit),
            "peer": (self.peer.received_pkts, self.peer.received_bytes) if self.net else (0, 0),
            "ring": self._ring_requests(),
        }
        return snap

    def _ring_requests(self) -> int:
        n = 0
        if isinstance(self.net, RingNet):
            n += self.net.tx_requests + self.net.rx_requests
        if isinstance(self.blk, RingBlk):
            n += self.blk.requests
        return n

    def run(self) -> dict:
        sys = self.sys
        sys.start()
        sys.run(self.warm)
        a = self.snapshot()
        sys.run(self.duration)
        b = self.snapshot()
        return self.report(a, b)

    def report(self, a, b) -> dict:
        sys = self.sys
        ghz = sys.pricer.ghz
        E = b["t"] - a["t"]

        def delta(i):
            m = Meter()
            m.merge(b["meters"][i])
            m.merge(a["meters"][i], -1)
            return m
        gm = delta(0)
        dm = delta(1) if len(b["meters"]) > 1 else Meter()
        gcause = {k: v / ghz for k, v in gm.price(sys.profile).items() if abs(v) > 1e-9}
        dcause = {k: v / ghz for k, v in dm.price(sys.profile).items() if abs(v) > 1e-9}
        rs = [y - x for x, y in zip(a["rs"], b["rs"])]
        # the meter includes work whose Run straddles a snapshot: scale to the dispatcher's
        # running time, which is what the guest's pCPU actually gave it in the window
        mbusy = sum(gcause.values())
        if mbusy > 0:
            f = rs[0] / mbusy
            gcause = {k: v * f for k, v in gcause.items()}
        busy = float(rs[0])
        runnable = float(rs[1])
        room = max(0.0, E - busy - runnable)
        dtot = sum(dcause.values())
        scale = 1.0 if dtot <= room or dtot == 0 else room / dtot
        breakdown: dict[str, float] = dict(gcause)
        for k, v in dcause.items():
            key = k if k.split(".")[0] in ("dom0", "device", "io") else f"dom0.{k}"
            breakdown[key] = breakdown.get(key, 0.0) + v * scale
        if runnable:
            breakdown["sched.wait"] = runnable
        breakdown["idle"] = max(0.0, E - sum(breakdown.values()))
        counts = {k: int(round(v)) for k, v in (gm.counts + dm.counts).items() if v}
        n = max(self.done, 1)
        secs = E / 1e9
        if self.w.startswith("ttcp"):
            pk = b["peer"][0] - a["peer"][0]
            by = b["peer"][1] - a["peer"][1]
            metric, value = "mbit_per_s", (by - 40 * pk) * 8 / secs / 1e6
            requests = max(pk, 1)
        else:
            metric = {"netperf-rr": "trans_per_s", "fio-rand4k": "iops", "oltp": "trans_per_s"}.get(self.w, "ops_per_s")
            value = self.done / secs
            requests = n
        ring_reqs = b["ring"] - a["ring"]
        kicks = sum(v for k, v in counts.items() if k in ("notify.tx_req", "notify.rx_req", "notify.blk_req"))
        irqs = sum(v for k, v in counts.items() if k in ("notify.tx_rsp", "notify.rx_rsp", "notify.blk_rsp"))
        suppressed = sum(v for k, v in counts.items() if k.startswith("suppressed."))
        exits = sum(v for k, v in counts.items() if k.startswith("exit."))
        traps = sum(v for k, v in counts.items() if k.startswith("trap."))
        lat = np.asarray(self.lat) if self.lat else np.zeros(1)
        dom0_ns = dtot
        row = {
            "workload": self.w, "mode": sys.mode, "profile": sys.profile.name, "metric": metric,
            "value": float(value), "elapsed_ns": int(E),
            "breakdown_ns": {k: float(v) for k, v in sorted(breakdown.items())},
            "counts": dict(sorted(counts.items())),
            "latency_us": {"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)),
                           "p99": float(np.percentile(lat, 99)), "mean": float(lat.mean())},
            "requests": int(requests), "completed_ops": int(self.done),
            "ring_requests": int(ring_reqs),
            "notifications_per_request": (kicks + irqs) / (2 * ring_reqs) if ring_reqs else None,
            "kicks_per_request": kicks / ring_reqs if ring_reqs else None,
            "interrupts_per_request": irqs / ring_reqs if ring_reqs else None,
            "suppressed_per_request": suppressed / ring_reqs if ring_reqs else None,
            "exits_per_request": exits / requests, "traps_per_request": traps / requests,
            "grant_ops_per_request": sum(counts.get(k, 0) for k in ("grant.copy", "grant.map", "grant.unmap")) / requests,
            "dom0_ns_per_request": dom0_ns / requests,
            "dom0_breakdown_ns": {k: float(v) for k, v in sorted(dcause.items())},
            "guest_breakdown_ns": {k: float(v) for k, v in sorted(gcause.items())},
            "guest_cpu_ns_per_request": busy / requests,
            "dom0_weight": sys.dom0.weight, "neighbours": len(sys.spinners),
        }
        for dev in (self.net, self.blk):
            if getattr(dev, "error", None):
                row["device_error"] = dev.error
        return row


def run_io_workload(workload: str, mode: str, profile, *, seed: int, duration_ns: int, dom0_weight: int = 256,
                    neighbours: int = 0, scheduler: str = "credit", **opts) -> dict:
    """Run one I/O workload in one mode; returns one result row (see module docstring)."""
    if workload not in IO_WORKLOADS:
        raise ScenarioError("workload", f"must be one of {', '.join(IO_WORKLOADS)}, got {workload!r}")
    if mode not in MODES:
        raise ScenarioError("mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
    if isinstance(duration_ns, bool) or not isinstance(duration_ns, int) or duration_ns <= 0:
        raise ScenarioError("duration_ns", f"must be a positive integer, got {duration_ns!r}")
    if not isinstance(dom0_weight, int) or not 1 <= dom0_weight <= 65535:
        raise ScenarioError("dom0_weight", f"must be 1..65535, got {dom0_weight!r}")
    return _Run(workload, mode, profile, seed, duration_ns, dom0_weight, neighbours, scheduler, dict(opts)).run()
