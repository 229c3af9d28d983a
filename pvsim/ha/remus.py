"""Remus-style continuous checkpointing of a primary guest to a backup host, epoch by epoch.

Design note
-----------
Models ``xl remus`` (``tools/xl/xl_migrate.c``, ``tools/libs/light/libxl_remus.c``) over the save
engine's checkpoint stream (``tools/libs/guest/xg_sr_save.c`` with ``XC_STREAM_REMUS``; Cully et al.,
"Remus: High Availability via Asynchronous Virtual Machine Replication", NSDI'08):

1. an initial live migration to the backup (run by :class:`pvsim.migrate.save.Migration`, Xen's
   stream-v2 loop), whose final stop-and-copy is checkpoint 0; the backup keeps the image and does
   not start the guest;
2. then forever: the guest runs for ``interval`` (``xl remus -i``, default 200 ms; libxl re-arms the
   checkpoint timer relative, after each checkpoint's stream is done), is suspended, the pages it
   dirtied since the last ``XEN_DOMCTL_SHADOW_OP_CLEAN`` are sent in ``PAGE_DATA`` batches with the
   vCPU / state records and a ``CHECKPOINT`` record, and it resumes (the ``postcopy`` callback);
3. the backup holds an incoming checkpoint in a staging buffer and applies it only once complete,
   then acknowledges it; a partial checkpoint is discarded;
4. outbound packets of each epoch are held in the primary's network buffer (``remus-netbuf-setup``,
   an IFB qdisc plug) and released when the backup's acknowledgement of the checkpoint that
   contains them arrives;
5. disk writes are replicated as they happen (DRBD protocol / blktap2 ``remus`` tapdisk): the backup
   buffers each epoch's writes and applies them with the epoch's checkpoint;
6. on primary failure the backup detects the silence of the checkpoint stream, resumes the guest
   from the last checkpoint it applied and takes over its address; the guest's TCP stack, restored
   with it, retransmits what its socket queues hold and the clients have not received (packets are
   numbered; a client's view is the sequence it was delivered).

Simplifications: packets are produced at a constant rate while the guest runs, one stream, numbered
in order (a network-bound server's responses); the checkpoint is sent while the primary is
suspended (as the stream-v2 Remus loop does) on a FIFO link shared with the disk replication; the
clients are one hop from the primary and the backup (no client-side latency).

COLO (``xl remus -c``; ``docs/misc``/``libxl_colo_*.c``, stream type ``COLO``; Dong et al., "COLO:
COarse-grained LOck-stepping Virtual Machines for Non-stop Service", SoCC'13) is the option
``colo``: the secondary runs in lockstep on the same inputs; the colo-proxy on the primary compares
each outbound packet with the secondary's (forwarded over the link) and releases it as soon as they
match, so a packet's added latency is the forward plus the comparison, not half an interval. A
checkpoint is taken only when a pair diverges (a seeded per-packet Bernoulli process of rate
``divergence``): the guest is suspended at that packet, the pages dirtied since the last checkpoint
plus the secondary's dirty list (``CHECKPOINT_DIRTY_PFN_LIST``) are sent, and the divergent packet
(the primary's version) is released at the acknowledgement. On failover the secondary continues
from its own state: every packet it matched, and the divergent one only if its checkpoint was
applied. Simplifications: the secondary dirties the same pages as the primary (its list adds only
its record), the divergence rate is an assumption, and the secondary's own running is not costed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pvsim.core.engine import Engine
from pvsim.io.devices import Pipe
from pvsim.migrate.dirty import PAGE_SIZE, GuestMemory, WriteModel, copy_pages
from pvsim.migrate.save import (
    COPY_BYTE_NS,
    HVM_CONTEXT_BYTES,
    HVM_PARAMS_BYTES,
    LOGDIRTY_CLEAN_PAGE_NS,
    MAP_BATCH_NS,
    MAX_BATCH_SIZE,
    PAGE_DATA_HDR_BYTES,
    PFN_ENTRY_BYTES,
    RESUME_NS,
    RHDR_BYTES,
    TSC_INFO_BYTES,
    VCPU_CONTEXT_BYTES,
    Migration,
    MigrationOptions,
)

DEFAULT_INTERVAL_MS = 200  # xl remus -i default (tools/xl/xl_cmdtable.c, xl_migrate.c: "interval = 200")
REC_CHECKPOINT = 0xE  # REC_TYPE_CHECKPOINT (tools/libs/guest/xg_sr_stream_format.h)
BLOCK_SIZE = 4096  # DRBD / tapdisk replicate 4 KiB blocks (drbd BM_BLOCK_SIZE)
REMUS_SUSPEND_NS = 150_000  # suspend through the guest's suspend event channel, not xenstore
#                             (xc_evtchn suspend, libxl__domain_suspend_device_model; NSDI'08 §3.2 "under a ms") [assumption]
NETBUF_RELEASE_NS = 10_000  # IFB plug released by a netlink qdisc command (remus-netbuf-setup) [assumption]
DRBD_HDR_BYTES = 48  # p_data header per replicated write (drbd_protocol.h, ~48 bytes) [assumption]
REC_CHECKPOINT_DIRTY_PFN_LIST = 0xF  # REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST (xg_sr_stream_format.h)
COLO_COMPARE_NS = 5_000  # colo-proxy compares a packet pair's payload (net/colo-compare.c, a memcmp of
#                           ~1.5 KB plus a hash lookup) [assumption]
COLO_DIVERGENCE = 1e-4  # per-packet chance the secondary's packet differs (a mostly deterministic server;
#                         SoCC'13 reports workload-dependent checkpoint rates) [assumption]
DETECT_TIMEOUT_MS = 1000  # backup declares the primary dead after this silence beyond an interval
#                           (libxl checkpoint stream timeout) [assumption]


@dataclass(frozen=True)
class RemusOptions:
    interval_ms: float = DEFAULT_INTERVAL_MS
    pps: float = 20000.0  # outbound packets per second of the guest's running time (its responses)
    link_mbps: float = 10000.0
    latency_us: float = 20.0
    pv: bool = True
    vcpus: int = 1
    detect_timeout_ms: float = DETECT_TIMEOUT_MS
    release_early: bool = False  # MUTANT: release buffered packets before the ack (the test must catch it)
    colo: bool = False  # COLO (xl remus -c): lockstep, checkpoint only on divergence
    divergence: float = COLO_DIVERGENCE  # COLO: per-packet divergence probability
    colo_release_diverged: bool = False  # MUTANT: release a divergent packet before its checkpoint's ack
    keep_snapshots: bool = False  # keep the primary's image at each checkpoint (for the property test)


@dataclass
class Checkpoint:
    index: int
    suspend_ns: int
    pages: int
    disk_blocks: int
    bytes: int
    sent_ns: int  # last byte left the primary
    commit_ns: int  # the backup applied it and acknowledged
    ack_ns: int  # the acknowledgement reached the primary (its epoch's packets released)
    resume_ns: int
    seq_end: int  # packets produced before this checkpoint


@dataclass
class RemusRun:
    checkpoints: list = field(default_factory=list)
    initial_ns: int = 0  # end of the initial copy (checkpoint 0)
    delivered: list = field(default_factory=list)  # (seq, time_ns, by) as the clients saw them
    produced_ns: np.ndarray | None = None  # production time of every packet of the primary
    released_ns: np.ndarray | None = None  # release time (-1: never released by the primary)
    failed_at: int | None = None
    committed: int = 0  # index of the checkpoint the backup holds
    detect_ns: int = 0
    failover_ns: int = 0  # the backup's guest resumes
    backup_mem: np.ndarray | None = None
    backup_disk: np.ndarray | None = None
    primary_mem_at: np.ndarray | None = None  # the primary's image at the committed checkpoint
    primary_disk_at: np.ndarray | None = None
    colo: bool = False
    colo_pending_ns: int | None = None  # COLO: a divergent packet whose checkpoint was not applied at failure
    run_ns: int = 0  # guest running time
    paused_ns: int = 0
    end_ns: int = 0


class Remus:
    """The primary's guest (``mem``, ``disk``) protected by checkpoints to a backup."""

    def __init__(self, mem_model: WriteModel, disk_model: WriteModel, seed: int, o: RemusOptions):
        self.o = o
        self.mem = GuestMemory(mem_model, seed)
        self.disk = GuestMemory(disk_model, seed ^ 0x5DEECE66D)
        self.rate = o.link_mbps / 1e3 / 8  # bytes per ns
        self.lat = int(o.latency_us * 1000)
        self.seed = seed

    # -------------------------------------------------------------- pieces
    def _ser(self, nbytes: int) -> int:
        return max(1, int(math.ceil(nbytes / self.rate)))

    def _state_bytes(self) -> int:
        o = self.o
        v = o.vcpus * (RHDR_BYTES + 8 + VCPU_CONTEXT_BYTES)
        st = (RHDR_BYTES + PAGE_SIZE + RHDR_BYTES + TSC_INFO_BYTES) if o.pv else \
            (RHDR_BYTES + HVM_CONTEXT_BYTES + RHDR_BYTES + HVM_PARAMS_BYTES + RHDR_BYTES + TSC_INFO_BYTES)
        return v + st + RHDR_BYTES  # ... CHECKPOINT

    def _initial(self) -> tuple[int, np.ndarray]:
        """Checkpoint 0: Xen's live migration to the backup, on its own engine."""
        eng = Engine(seed=0)
        pipe = Pipe(eng, self.o.link_mbps, self.o.latency_us)
        m = Migration(eng, pipe, self.mem, MigrationOptions(policy="xen", pv=self.o.pv, vcpus=self.o.vcpus))
        eng.process(m.process())
        eng.run()
        out = m.out
        # the backup does not start the guest: the primary resumes instead of the target's reconnect
        return out.end_ns - out.reconnect_ns - out.resume_ns + RESUME_NS, out.receiver

    # -------------------------------------------------------------- the run
    def run(self, duration_ms: float, fail_at_ms: float | None = None, tail_ms: float = 50.0) -> RemusRun:
        """Protect the guest for ``duration_ms`` after the initial copy; with ``fail_at_ms`` (from the
        end of the initial copy) the primary crashes then and the backup takes over."""
        o, mem, disk = self.o, self.mem, self.disk
        r = RemusRun()
        t, backup = self._initial()
        r.initial_ns = t
        mem.clean()  # the final CLEAN of the initial copy was taken; the bitmap restarts at resume
        bdisk = disk.version.copy()  # the disks start in sync (DRBD's initial sync)
        disk.clean()
        snap_mem = mem.version.copy() if o.keep_snapshots else None
        snap_disk = disk.version.copy() if o.keep_snapshots else None
        end = t + int(duration_ms * 1e6)
        tf = None if fail_at_ms is None else t + int(fail_at_ms * 1e6)
        link_free = t
        seq, carry = 0, 0.0
        prod, rel = [], []  # per packet
        committed, last_commit = 0, t
        k = 0
        r.colo = o.colo
        rng = np.random.default_rng([self.seed, 0xC010])  # the COLO divergence process
        r.checkpoints.append(Checkpoint(0, t, int(mem.model.n_pages), 0, 0, t, t, t, t, 0))
        while t < end and (tf is None or t < tf):
            k += 1
            diverged = True
            if o.colo:  # run until the next divergent packet (geometric gap), or the end of the run
                gap = int(rng.geometric(o.divergence)) if o.pps > 0 and o.divergence > 0 else 0
                need = gap - carry
                if gap and t + int(math.ceil(need * 1e9 / o.pps)) < end:
                    te = t + int(math.ceil(need * 1e9 / o.pps))
                else:
                    te, diverged = end, False
            else:
                te = t + int(o.interval_ms * 1e6)
            stop = min(te, tf) if tf is not None else te
            run_ns = stop - t
            mem.write_for(run_ns)
            writes0 = disk.writes
            disk.write_for(run_ns)
            dwrites = disk.writes - writes0
            x = carry + o.pps * run_ns / 1e9
            n = int(math.floor(x + 1e-9)) if o.colo and stop == te and diverged else int(math.floor(x))
            carry = max(0.0, x - n)
            times = t + ((np.arange(n) + 1) * (run_ns / max(1, n))).astype(np.int64) if n else np.zeros(0, np.int64)
            prod.append(times)
            if o.colo:  # matched pairs leave at once; the divergent one (the last) waits for its checkpoint
                r_ = times + self.lat + COLO_COMPARE_NS
                if n and diverged and stop == te and not o.colo_release_diverged:
                    r_[-1] = -1
                rel.append(r_)
            else:
                rel.append(times.copy() if o.release_early else np.full(n, -1, np.int64))
            seq += n
            r.run_ns += run_ns
            # disk replication streams during the epoch
            if dwrites:
                link_free = max(link_free, t) + self._ser(dwrites * (BLOCK_SIZE + DRBD_HDR_BYTES))
            if tf is not None and tf <= te:
                r.end_ns = tf
                if o.colo and diverged and stop == te and n:
                    r.colo_pending_ns = int(times[-1])
                break
            if not diverged:
                r.end_ns = te
                break
            # the checkpoint: suspend, CLEAN, send, resume
            ts = te + REMUS_SUSPEND_NS
            pfns = mem.clean()
            blocks = disk.clean()
            pages = len(pfns)
            batches = -(-pages // MAX_BATCH_SIZE)
            nbytes = pages * (PAGE_SIZE + PFN_ENTRY_BYTES) + batches * (RHDR_BYTES + PAGE_DATA_HDR_BYTES) \
                + self._state_bytes()
            if o.colo:  # the secondary's dirty list, merged by the primary (CHECKPOINT_DIRTY_PFN_LIST)
                nbytes += RHDR_BYTES + pages * PFN_ENTRY_BYTES
            cpu = int(batches * MAP_BATCH_NS + nbytes * COPY_BYTE_NS + mem.model.n_pages * LOGDIRTY_CLEAN_PAGE_NS)
            sent = max(link_free, ts + cpu) + self._ser(nbytes)
            link_free = sent
            commit = sent + self.lat
            ack = commit + self.lat
            resume = sent + RESUME_NS
            cp = Checkpoint(k, te, pages, len(blocks), nbytes, sent, commit, ack, resume, seq)
            if tf is not None and tf < sent:  # died mid-checkpoint: the backup discards the partial one
                r.end_ns = tf
                if o.colo and n:
                    r.colo_pending_ns = int(times[-1])
                break
            # the backup applies the staged checkpoint (pages and the epoch's disk writes)
            copy_pages(pfns, mem.version, backup)
            copy_pages(blocks, disk.version, bdisk)
            committed, last_commit = k, commit
            if o.keep_snapshots:
                snap_mem = mem.version.copy()
                snap_disk = disk.version.copy()
            if o.colo:
                if n and not o.colo_release_diverged and (tf is None or ack <= tf):
                    rel[-1][-1] = ack + NETBUF_RELEASE_NS
            elif not o.release_early and (tf is None or ack <= tf):
                rel[-1][:] = ack + NETBUF_RELEASE_NS
            r.checkpoints.append(cp)
            r.paused_ns += resume - te
            t = resume
        else:
            r.end_ns = t
        r.produced_ns = np.concatenate(prod) if prod else np.zeros(0, np.int64)
        r.released_ns = np.concatenate(rel) if rel else np.zeros(0, np.int64)
        if tf is not None:  # released only while the primary lives
            r.released_ns[r.released_ns > tf] = -1
        r.committed = committed
        r.backup_mem, r.backup_disk = backup, bdisk
        r.primary_mem_at, r.primary_disk_at = snap_mem, snap_disk
        seq_k = r.checkpoints[committed].seq_end
        if o.colo:  # the secondary holds every packet produced, less a divergent one not checkpointed
            seq_k = len(r.produced_ns) - (1 if r.colo_pending_ns is not None else 0)
        ok = r.released_ns >= 0
        order = np.argsort(r.released_ns[ok], kind="stable")
        seqs = np.nonzero(ok)[0][order]
        r.delivered = [(int(s), int(r.released_ns[s]), "primary") for s in seqs]
        if tf is not None:
            r.failed_at = tf
            # COLO's secondary is in lockstep: the silence counts from the failure itself
            since = tf if o.colo else max(tf, last_commit + int(o.interval_ms * 1e6))
            r.detect_ns = since + int(o.detect_timeout_ms * 1e6)
            r.failover_ns = r.detect_ns + RESUME_NS
            # the restored guest's TCP retransmits what the clients lack of its checkpointed send queue
            have = {s for s, _, _ in r.delivered}
            nxt = 0
            while nxt in have:
                nxt += 1
            t2 = r.failover_ns
            for s in range(nxt, seq_k):
                r.delivered.append((s, t2, "backup-retransmit"))
            # then the backup runs on, unprotected, from packet seq_k
            n_new = int(o.pps * tail_ms / 1e3)
            for i in range(n_new):
                r.delivered.append((seq_k + i, t2 + int((i + 1) * 1e9 / o.pps), "backup"))
        return r


def overhead(r: RemusRun, pps: float) -> dict:
    """Client-visible cost of checkpointing over a run without failure."""
    rel, prod = r.released_ns, r.produced_ns
    ok = rel >= 0
    lat = (rel[ok] - prod[ok]) / 1e6
    span = max(1, r.end_ns - r.initial_ns)
    cps = r.checkpoints[1:]
    extra = {"divergence_per_packet": len(cps) / max(1, len(prod)),
             "checkpoints_per_s": len(cps) / (span / 1e9)} if r.colo else {}
    return {
        "checkpoints": len(cps),
        "added_latency_ms_mean": float(lat.mean()) if len(lat) else 0.0,
        "added_latency_ms_p99": float(np.percentile(lat, 99)) if len(lat) else 0.0,
        "throughput_pps": float(len(prod) / (span / 1e9)),
        "throughput_loss": float(1.0 - len(prod) / (span / 1e9) / pps),
        "pause_ms_mean": float(np.mean([(c.resume_ns - c.suspend_ns) / 1e6 for c in cps])) if cps else 0.0,
        "pages_per_checkpoint": float(np.mean([c.pages for c in cps])) if cps else 0.0,
        "mib_per_checkpoint": float(np.mean([c.bytes for c in cps]) / 2**20) if cps else 0.0,
        **extra,
    }
