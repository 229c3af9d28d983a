"""Per-request prices of block and network I/O, measured on the I/O subsystem itself.

Design note
-----------
The guest kernels' ``disk_io`` and ``net_io`` actions (the op mixes of scenario runs: ``oltp``,
``dbench``, ``web``) are priced here from the same device paths ``pvsim compare`` runs
(:mod:`pvsim.io.paths`: blkfront/blkback and netfront/netback over shared rings with notification
suppression, grant copies or maps, event channels, dom0 backends scheduled as vCPUs; emulated IDE /
e1000 through a device model; the native driver), so both ways of running an I/O workload share one
source of per-request cost. Each price is measured once per (mode, profile, request shape) on a
scratch host and cached:

* **block**: a synchronous fio loop (``iodepth`` 1, all reads or all writes of ``nbytes``) on an
  exponential device of ``MEASURE_DEVICE_NS`` mean service time (the device's own time is not part
  of the CPU price: the op mix blocks for the profile's ``native.disk_*_latency_us``, as before).
* **network**: a burst of ``packets`` costs ``packets`` x the per-packet path of bulk transmission
  (``ttcp-1500``: notifications amortised by the rings' event thresholds) plus one unbatched
  round of notification and interrupt per burst (a ``netperf-rr`` transaction's path, one packet
  each way, halved, less one bulk packet).

A request's price is the guest's own causes on the path (the application's work and its system
calls are excluded: the op mix has its own) plus dom0's work for it, all under ``dom0.*`` causes,
divided by the requests completed in the measured window. A scenario run hands the ``dom0.*`` part
to Domain-0's vCPUs (:class:`pvsim.system.Dom0Service`).

Simplifications: a burst's price is linear in its packets; one request size per measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

MEASURE_NS = 30_000_000  # simulated time of each measurement run
MEASURE_DEVICE_NS = 20_000  # mean service time of the measuring disk
EXCLUDE = ("idle", "sched.wait", "user.app", "kernel.syscall", "trap.syscall")
COUNT_PREFIXES = ("exit.", "notify.", "suppressed.", "grant.", "evtchn.", "hypercall.", "device_model.",
                  "trap.io", "io.")


@dataclass(frozen=True)
class RequestPrice:
    """CPU cycles per request by breakdown cause, and event counts per request."""

    cycles: tuple[tuple[str, float], ...]
    counts: tuple[tuple[str, float], ...]

    def scaled(self, k: float) -> "RequestPrice":
        return RequestPrice(tuple((c, v * k) for c, v in self.cycles), tuple((c, v * k) for c, v in self.counts))

    def plus(self, other: "RequestPrice") -> "RequestPrice":
        cyc: dict[str, float] = dict(self.cycles)
        for c, v in other.cycles:
            cyc[c] = cyc.get(c, 0.0) + v
        cnt: dict[str, float] = dict(self.counts)
        for c, v in other.counts:
            cnt[c] = cnt.get(c, 0.0) + v
        return RequestPrice(tuple(sorted(cyc.items())), tuple(sorted(cnt.items())))


def _dom0_key(k: str) -> str:
    """dom0's work for the request, under ``dom0.*`` (``dom0.io.grant``, ``dom0.device.emulation``...)
    so that a scenario run can hand it to Domain-0's vCPUs."""
    return k if k.startswith("dom0.") else f"dom0.{k}"


def _per_request(row: dict, ghz: float, n: int) -> RequestPrice:
    cyc: dict[str, float] = {}
    for k, v in row["guest_breakdown_ns"].items():
        if not k.startswith(EXCLUDE):
            cyc[k] = cyc.get(k, 0.0) + v * ghz / n
    for k, v in row["dom0_breakdown_ns"].items():
        key = _dom0_key(k)
        cyc[key] = cyc.get(key, 0.0) + v * ghz / n
    counts = {k: v / n for k, v in row["counts"].items() if k.startswith(COUNT_PREFIXES)}
    return RequestPrice(tuple(sorted((k, v) for k, v in cyc.items() if v > 0)), tuple(sorted(counts.items())))


def _run(workload: str, mode: str, profile_key: str, **opts) -> tuple[dict, float]:
    from pvsim.io.workloads import run_io_workload
    from pvsim.profile import load_profile

    prof = load_profile(profile_key)
    row = run_io_workload(workload, mode, prof, seed=0, duration_ns=MEASURE_NS, **opts)
    return row, prof.clock_ghz


@lru_cache(maxsize=512)
def block_price(mode: str, profile_key: str, nbytes: int, write: bool) -> RequestPrice:
    """One synchronous block request of ``nbytes`` in ``mode`` (guest and dom0 CPU path)."""
    nbytes = max(512, -(-int(nbytes) // 512) * 512)
    row, ghz = _run("fio-rand4k", mode, profile_key, iodepth=1, read_frac=0.0 if write else 1.0,
                    block_bytes=nbytes, disk_kind="exp", mean_service_ns=float(MEASURE_DEVICE_NS))
    return _per_request(row, ghz, max(1, int(row["completed_ops"])))


@lru_cache(maxsize=512)
def packet_price(mode: str, profile_key: str) -> RequestPrice:
    """One packet of bulk transmission (MTU 1500), notifications amortised by the rings."""
    row, ghz = _run("ttcp-1500", mode, profile_key)
    return _per_request(row, ghz, max(1, int(row["requests"])))


@lru_cache(maxsize=512)
def burst_overhead(mode: str, profile_key: str) -> RequestPrice:
    """The unbatched part of a packet burst: half a netperf-rr transaction's path (one packet each
    way, each with its own notification and interrupt) less one bulk packet; never negative."""
    row, ghz = _run("netperf-rr", mode, profile_key)
    rr = _per_request(row, ghz, max(1, int(row["completed_ops"]))).scaled(0.5)
    bulk = dict(packet_price(mode, profile_key).cycles)
    cyc = tuple((k, max(0.0, v - bulk.get(k, 0.0))) for k, v in rr.cycles)
    return RequestPrice(tuple((k, v) for k, v in cyc if v > 0), rr.counts)


def net_price(mode: str, profile_key: str, packets: float) -> RequestPrice:
    """A burst of ``packets`` packets sent or received."""
    return packet_price(mode, profile_key).scaled(packets).plus(burst_overhead(mode, profile_key))
