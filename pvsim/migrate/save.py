"""The save engines of live migration, page by page, as processes on the simulation engine.

Design note
-----------
``xen`` models migration stream v2 (``tools/libs/guest/xg_sr_save.c``: ``send_memory_live``,
``simple_precopy_policy``, ``suspend_and_send_dirty``; records from ``xg_sr_stream_format.h``):
round 1 sends every pfn, each later round the set the last ``CLEAN`` returned, in ``PAGE_DATA``
records of at most ``MAX_BATCH_SIZE`` pfns, while the guest runs; the policy stops below
``SPP_TARGET_DIRTY_COUNT`` dirty pages or at ``SPP_MAX_ITERATIONS``; then the guest is suspended
(``SHUTDOWN_suspend``), a final ``CLEAN`` with ``XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL`` gives the last
set, which is sent with the vCPU, shared-info, TSC and HVM records and ``END``; the receiver restores,
the frontends reconnect through xenstore and the guest resumes on the target. ``xen-legacy`` models
``tools/libxc/xc_domain_save.c`` (Xen <= 4.5, at ``b15bc4345e^``): ``DEF_MAX_ITERS``,
``DEF_MAX_FACTOR``, the 50-page rule, the ``to_skip`` peek before each batch, and, off by default as
in shipped Xen, the ``ADAPTIVE_SAVE`` rate limit of the NSDI'05 paper (Clark et al.). ``qemu`` models
QEMU's RAM migration (``migration/migration.c``, ``migration/ram.c``, ``migration/options.c``):
rounds of the dirty bitmap at ``max-bandwidth``, zero pages sent as a flag, stop once the pending
bytes fit in ``downtime-limit`` at the measured bandwidth, and auto-converge throttling as an
option. ``simgrid`` models SimGrid's ``VmLiveMigration.cpp`` (``src/plugins/vm``): stage 1 sends
all RAM, stage 2 repeats while the remaining bytes exceed measured bandwidth x ``max_downtime``,
stage 3 sends the rest with the VM suspended; raw page bytes, no records, no CPU.

``postcopy`` and ``hybrid`` are **extensions** (upstream Xen has no post-copy: an RFC on xenpaging was
never merged; QEMU/KVM has it, ``migration/postcopy-ram.c``, ``migration/ram.c``). ``postcopy``
suspends the guest at once, sends the vCPU / shared-info / TSC (or HVM) records and ``END``, the
frontends reconnect and the guest resumes on the target with every page still on the source; its
first touch of each page faults (userfaultfd in QEMU: ``postcopy_ram_fault_thread`` asks the source
with ``MIG_RP_MSG_REQ_PAGES`` on the return path, ``ram_save_queue_pages`` sends it, ``UFFDIO_COPY``
places it), the guest stalled for: the request's link latency + waiting for the batch on the link +
the page's serialisation + the latency back + :data:`POSTCOPY_FAULT_NS`. Meanwhile the source pushes
the remaining pages in pfn order (QEMU's background ``ram_find_and_save_block``), in batches of
:data:`POSTCOPY_PUSH_PAGES`, skipping pages already on the target. ``hybrid`` first runs
``precopy_rounds`` pre-copy rounds (round 1 every pfn, then the dirty sets, as ``xen``), then
switches over: only the pages dirtied since the last round are remote. Page touches are the
workload's writable-working-set *writes* (:mod:`pvsim.migrate.dirty`); reads are assumed to fall on
the same pages (a page is read where it is written) and pages outside the writable working set are
assumed untouched while the guest runs degraded, so they arrive by the push. Simplifications: the
request crosses the reverse direction as latency only (a 16-byte message); a fetched page queues
behind the push batch on the link (no postcopy-preempt channel); one push batch in flight.

The guest's own log-dirty work -- each page newly dirtied while log-dirty is on is one first-write
event; each ``CLEAN``/``PEEK`` flushes PML buffers -- is counted per vCPU by
:class:`pvsim.hypervisor.logdirty.LogDirtyLog` (its price is the mode's paging's,
``MigrationOptions.logdirty``), reported per round, and handed to ``on_logdirty`` (a run charges it to
the guest's vCPUs: :mod:`pvsim.migrate.inrun`).

The stream is one flow on the hosts' link (:class:`pvsim.io.flows.Pipe`: flows sharing a direction
get max-min fair shares, so concurrent migrations and guest streams crossing the link each get their
share; the end of a batch on the link is re-read while the stream waits for it, as a flow arriving
later slows it) and costs Domain-0 CPU on both hosts (mapping foreign frames, normalising PV page
tables, copying into the socket; the ``XEN_DOMCTL_SHADOW_OP_CLEAN`` walk), priced by one cost function
(:func:`batch_cost`, :func:`clean_cost`, by cause) and run by the sender's and receiver's CPU object:
in ``pvsim run`` a kernel thread on each host's Domain-0 vCPUs (:class:`pvsim.migrate.inrun.Dom0Thread`),
scheduled with the backends under Domain-0's OS and the host scheduler's weight and cap, which is
given a batch's work when the batch lands; without a run (``pvsim migrate``, ``xl save``, Remus) a FIFO
server per host (:class:`_Server`) scaled by the share of a pCPU Domain-0's cap gives it, whose
completions are computed ahead and recomputed when the link moves an arrival. The sender waits for
each batch's work before queueing it on the link; the stream waits for the receiver at each round's
end. Simplifications: one batch in flight per stream (the next batch is prepared while the previous
serialises); the receiver's CPU and the sender's overlap the link; no TCP slow start; guest writes
arrive at a constant rate (see :mod:`pvsim.migrate.dirty`); under post-copy a batch's or a fetched
page's arrival is taken as the link predicted it when it was sent (exact unless another flow starts
sharing the link meanwhile), and in a run a post-copy page is placed at its link arrival (the
receiver's work for it still runs on its Domain-0, and the degraded window ends only when it has).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pvsim.hypervisor.logdirty import LogDirtyLog, LogDirtyModel
from pvsim.migrate.dirty import (
    PAGE_SIZE,
    GuestMemory,
    _deliver_kernel,
    _next_remote_kernel,
    _touch_kernel,
    copy_pages,
    deliver_ref,
    next_remote_ref,
    touch_ref,
)

# ---------------------------------------------------------------- Xen constants, verbatim
MAX_BATCH_SIZE = 1024  # pfns per PAGE_DATA record (tools/libs/guest/xg_save_restore.h)
SPP_TARGET_DIRTY_COUNT = 50  # simple_precopy_policy (tools/libs/guest/xg_sr_save.c)
SPP_MAX_ITERATIONS = 5  # simple_precopy_policy (tools/libs/guest/xg_sr_save.c)
DEF_MAX_ITERS = 29  # "limit us to 30 times round loop" (tools/libxc/xc_domain_save.c @ b15bc4345e^)
DEF_MAX_FACTOR = 3  # "never send more than 3x p2m_size" (xc_domain_save.c @ b15bc4345e^)
LEGACY_MIN_PAGES = 50  # sent_this_iter + skip_this_iter < 50 (xc_domain_save.c @ b15bc4345e^)
START_MBIT_RATE = 100  # ADAPTIVE_SAVE (xc_domain_save.c, removed in e611ad5b31)
MAX_MBIT_RATE = 500  # ADAPTIVE_SAVE (xc_domain_save.c, removed in e611ad5b31)
RATE_INCREMENT_MBIT = 50  # "mbit_rate = dirty rate + 50" (xc_domain_save.c ADAPTIVE_SAVE; NSDI'05 §5)
# record types (tools/libs/guest/xg_sr_stream_format.h)
REC_END, REC_PAGE_DATA, REC_X86_PV_INFO, REC_X86_PV_P2M_FRAMES = 0, 1, 2, 3
REC_X86_PV_VCPU_BASIC, REC_SHARED_INFO, REC_X86_TSC_INFO, REC_HVM_CONTEXT, REC_HVM_PARAMS = 4, 7, 8, 9, 0xA
REC_STATIC_DATA_END, REC_X86_CPUID_POLICY, REC_X86_MSR_POLICY = 0x10, 0x11, 0x12
IHDR_BYTES, DHDR_BYTES, RHDR_BYTES = 24, 16, 8  # struct xc_sr_ihdr / dhdr / rhdr (xg_sr_stream_format.h)
PAGE_DATA_HDR_BYTES = 8  # struct xc_sr_rec_page_data_header: count, _res1 (xg_sr_stream_format.h)
PFN_ENTRY_BYTES = 8  # one uint64 pfn|type per page (xg_sr_stream_format.h)
VCPU_CONTEXT_BYTES = 5168  # vcpu_guest_context_x86_64 in X86_PV_VCPU_BASIC [MEM, approximate size]
HVM_CONTEXT_BYTES = 16384  # HVM_CONTEXT blob: LAPIC, IOAPIC, PIC, PIT, RTC, MTRR, per-vCPU CPU [assumption]
HVM_PARAMS_BYTES = 16 * 12  # ~12 (index, value) pairs in HVM_PARAMS (xg_sr_save_x86_hvm.c) [assumption]
TSC_INFO_BYTES = 24  # struct xc_sr_rec_x86_tsc_info (xg_sr_stream_format.h)
POLICY_BYTES = 4096  # CPUID + MSR policy records [assumption: a page]
# ---------------------------------------------------------------- QEMU constants, verbatim
QEMU_DOWNTIME_LIMIT_MS = 300  # DEFAULT_MIGRATE_SET_DOWNTIME (migration/options.c)
QEMU_MAX_BANDWIDTH = 128 << 20  # MAX_THROTTLE bytes/s (migration/options.c)
QEMU_THROTTLE_INITIAL = 20  # DEFAULT_MIGRATE_CPU_THROTTLE_INITIAL (migration/options.c)
QEMU_THROTTLE_INCREMENT = 10  # DEFAULT_MIGRATE_CPU_THROTTLE_INCREMENT (migration/options.c)
QEMU_THROTTLE_MAX = 99  # DEFAULT_MIGRATE_MAX_CPU_THROTTLE (migration/options.c)
QEMU_THROTTLE_TRIGGER = 50  # DEFAULT_MIGRATE_THROTTLE_TRIGGER_THRESHOLD (migration/options.c)
QEMU_PAGE_HDR_BYTES = 8  # the be64 offset|flags before each page (migration/ram.c save_page_header)
QEMU_ZERO_PAGE_BYTES = 9  # header + one byte for RAM_SAVE_FLAG_ZERO (migration/ram.c)
QEMU_DEVICE_STATE_BYTES = 65536  # vmstate of a small virtio guest [assumption]
# ---------------------------------------------------------------- SimGrid constants, verbatim
SIMGRID_MAX_DOWNTIME_S = 0.03  # "use the default max_downtime value 30ms" (src/plugins/vm/VmLiveMigration.cpp)
SIMGRID_WORKING_SET_FRAC = 0.9  # working-set memory default 90 % of RAM (src/plugins/vm/VirtualMachineImpl.cpp)
SIMGRID_GUARD_ROUNDS = 100  # pvsim's guard, not SimGrid's: its stage 2 never ends when dirtying outpaces the link
# ---------------------------------------------------------------- costs (dom0 CPU, suspend, reconnect)
MAP_BATCH_NS = 20_000  # xenforeignmemory_map of 1024 frames + unmap: privcmd ioctl, PTE writes, TLB flush [MEM]
NORMALISE_PAGE_NS = 500  # PV page-table page: rewrite 512 PTEs mfn->pfn (xg_sr_save_x86_pv.c normalise_pagetable) [MEM]
COPY_BYTE_NS = 0.05  # ~20 GB/s memcpy into the socket / out of it (profile io.memcpy_byte_cycles 0.15 at 3 GHz)
LOGDIRTY_CLEAN_PAGE_NS = 0.25  # XEN_DOMCTL_SHADOW_OP_CLEAN: walk + clear one bitmap bit, re-protect [MEM]
# the guest's own log-dirty work (its first write per page per round, PML exits) is the mode's:
# pvsim.hypervisor.logdirty prices it, MigrationOptions.logdirty carries it, Migration.on_logdirty charges it
SUSPEND_NS = 2_000_000  # control/shutdown="suspend" via xenstore, the guest's suspend handler, SHUTDOWN_suspend [MEM]
RESUME_NS = 1_000_000  # unpause + the guest's resume handler (timers, evtchn rebind) [MEM]
XS_OP_NS = 50_000  # one xenstored request/response or watch event, ~tens of us [MEM]
XS_OPS_PER_DEVICE = 8  # xenbus reconnect per frontend: state writes, ring-ref, event-channel, watch fires
#                        (the handshake of pvsim/io/xenstore.py: Initialising .. Connected)

# ---------------------------------------------------------------- post-copy (an extension; QEMU's postcopy-ram.c)
POSTCOPY_FAULT_NS = 20_000  # remote fault handling beyond the wire: the fault thread's wake-up, the request,
#                             UFFDIO_COPY of 4 KiB and the faulting vCPU's wake-up (migration/postcopy-ram.c) [MEM]
POSTCOPY_PUSH_PAGES = 64  # background push granularity: a requested page waits behind what is already queued
#                           (QEMU's get_queued_page is checked before each page; ~256 KiB in the socket) [assumption]
HYBRID_PRECOPY_ROUNDS = 1  # hybrid: pre-copy rounds before the switch-over [assumption: QEMU's usual one pass]

POLICIES = ("xen", "xen-legacy", "qemu", "simgrid", "postcopy", "hybrid")
POSTCOPY_POLICIES = ("postcopy", "hybrid")


@dataclass(frozen=True)
class MigrationOptions:
    policy: str = "xen"
    pv: bool = True  # PV guest: page tables normalised, PV records (else HVM records)
    vcpus: int = 1
    devices: int = 2  # frontends to reconnect (vif, vbd)
    adaptive: bool = False  # xen-legacy: NSDI'05 rate limit (ADAPTIVE_SAVE), off as in shipped Xen
    auto_converge: bool = False  # qemu: throttle the guest's CPU (off by default in QEMU)
    downtime_limit_ms: float = QEMU_DOWNTIME_LIMIT_MS
    max_bandwidth: float = QEMU_MAX_BANDWIDTH
    max_downtime_s: float = SIMGRID_MAX_DOWNTIME_S
    dom0_share: tuple[float, float] = (1.0, 1.0)  # share of a pCPU each Domain-0 gives the stream
    live: bool = True  # False: suspend first, then every page (send_domain_memory_nonlive; xl save)
    drop_final: bool = False  # MUTANT: forget the final dirty set (the nothing-lost test must catch it)
    precopy_rounds: int = HYBRID_PRECOPY_ROUNDS  # hybrid: pre-copy rounds before the switch-over
    skip_push: bool = False  # MUTANT: the post-copy background push skips its first page
    logdirty: LogDirtyModel | None = None  # the guest's log-dirty work per event (None: not priced)


@dataclass
class Round:
    index: int
    live: bool
    pages: int
    skipped: int
    bytes: int
    start_ns: int
    end_ns: int
    dirty_after: int = 0  # pages dirty at the end of the round (the next round's set)
    # the guest's log-dirty events since the previous round ended (pvsim.hypervisor.logdirty)
    logdirty_faults: int = 0  # shadow / EPT first-write faults
    pml_exits: int = 0  # PML-full exits
    pml_flushes: int = 0  # vCPU buffer flushes at CLEAN / PEEK
    logdirty_guest_ns: float = 0.0  # the guest's vCPU time on them

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


@dataclass
class Outcome:
    policy: str
    start_ns: int = 0
    end_ns: int = 0
    suspend_ns: int = 0
    final_copy_ns: int = 0
    records_ns: int = 0
    reconnect_ns: int = 0
    resume_ns: int = 0
    bytes: int = 0
    pages_sent: int = 0
    iterations: int = 0
    stop_reason: str = ""
    rounds: list = field(default_factory=list)
    dom0_ns: list = field(default_factory=lambda: [0, 0])
    guest_writes: int = 0
    receiver: np.ndarray | None = None
    sender: np.ndarray | None = None
    suspended_at: int = 0
    # post-copy (postcopy, hybrid): remote faults, their stalls, the degraded window after resume
    remote_faults: int = 0
    stall_ns: list = field(default_factory=list)
    resumed_at: int = 0
    degraded_ns: int = 0
    pushed_pages: int = 0
    remote: np.ndarray | None = None  # the pages left on the source at the switch-over
    fetched: np.ndarray | None = None  # how many times each page reached the target after it

    @property
    def total_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def downtime_ns(self) -> int:
        return self.suspend_ns + self.final_copy_ns + self.records_ns + self.reconnect_ns + self.resume_ns


class _Abort(Exception):
    """The receiving side failed; the migration is abandoned."""


def batch_cost(n: int, pv: bool) -> dict[str, float]:
    """Domain-0's CPU for one batch of ``n`` pages, by cause (ns): the one cost function of both sides
    (the sender maps, normalises and copies into the socket; the receiver copies out of it, maps and
    un-normalises), whether it runs on an analytic server (:class:`_Server`) or on Domain-0's vCPUs
    in a run (:class:`pvsim.migrate.inrun.Dom0Thread`)."""
    out = {"dom0.migrate.map": MAP_BATCH_NS}
    if pv:  # ~0.2 % of a PV guest's pages are page tables [assumption]
        out["dom0.migrate.normalise"] = n * 0.002 * NORMALISE_PAGE_NS
    out["dom0.migrate.copy"] = n * PAGE_SIZE * COPY_BYTE_NS
    return out


def clean_cost(n_pages: int) -> dict[str, float]:
    """Domain-0's CPU for one ``XEN_DOMCTL_SHADOW_OP_CLEAN`` over ``n_pages`` pfns (ns)."""
    return {"dom0.migrate.logdirty": n_pages * LOGDIRTY_CLEAN_PAGE_NS}


class _Server:
    """A FIFO CPU server (one Domain-0's share of a pCPU): the analytic Domain-0 of ``pvsim migrate``
    (no guest runs). The CPU interface of :class:`Migration`: ``post`` queues work and returns the time
    it is known to be done by, ``settle`` waits for everything posted (nothing to wait for here: the
    server knows its completion times), ``close`` ends it, ``busy`` is the CPU time it was given."""

    analytic = True  # completions known ahead: Migration._sync recomputes them when an arrival moves

    def __init__(self, share: float):
        self.free = 0
        self.share = share
        self.busy = 0

    def run(self, now: int, ns: float) -> int:
        t = int(round(ns / self.share))
        self.free = max(self.free, now) + t
        self.busy += t
        return self.free

    def post(self, ready_ns: int, parts: dict) -> int:
        return self.run(ready_ns, sum(parts.values()))

    def settle(self):
        yield from ()

    def close(self) -> None:
        pass


class Migration:
    """One live migration of ``mem`` over ``pipe`` (the source host's direction of the link)."""

    def __init__(self, engine, pipe, mem: GuestMemory, opts: MigrationOptions, cpus=None):
        if opts.policy not in POLICIES:
            raise ValueError(f"unknown policy {opts.policy!r}")
        self.engine, self.pipe, self.mem, self.o = engine, pipe, mem, opts
        self.recv = np.zeros_like(mem.version)
        # the sending and receiving Domain-0's CPU: analytic servers, or (in a run) threads on their vCPUs
        self.src, self.dst = cpus if cpus is not None else (_Server(opts.dom0_share[0]), _Server(opts.dom0_share[1]))
        self.out = Outcome(opts.policy)
        self.running = True
        self._t = 0
        self._ser_end = 0
        self._arrive = 0
        # this stream's transfers whose end on the link may still move (another flow may start sharing
        # it), each with the receiver's CPU for it (None: not the receiver's work), and the receiver's
        # state before the first of them: _sync replays the receiver's FIFO from there
        self._txs: list = []
        self._analytic = getattr(self.dst, "analytic", False)
        self._base = self._state(0)
        self._posting = 0  # batches on the link whose work a Domain-0 thread is given when they land
        self.rate_bps: float | None = None  # sender-side rate limit (bytes/s), if any
        self.cpu = opts.policy != "simgrid"
        self.records = opts.policy in ("xen", "xen-legacy", "postcopy", "hybrid")
        # hooks for a migration inside a scenario run (pvsim.migrate.inrun): called with this object
        self.on_suspend = None  # the guest is asked to suspend (control/shutdown): its workload stops here
        self.on_resume = None  # the receiver has restored it and the frontends have reconnected
        # the receiver populates a pfn's frame when its first copy arrives (xg_sr_restore.c populate_pfns):
        # on_populate(n) -> False when the target cannot allocate n more frames, and the migration aborts
        self.on_populate = None
        self.on_abort = None  # called once the sender has given up (the guest keeps running here)
        self.on_round = None  # called with each Round as it ends (tracing: pvsim.migrate.inrun)
        self.aborted = ""
        self._populated = np.zeros(len(mem.version), dtype=bool)
        # the guest's log-dirty work: counted per vCPU here, charged to its vCPUs by on_logdirty(items),
        # items [(vcpu, Meter, times)] (pvsim.migrate.inrun); without the hook it is only reported
        self.ld = LogDirtyLog(opts.logdirty, opts.vcpus) if opts.logdirty is not None else None
        self.on_logdirty = None
        # post-copy: on_stall(fault, ns) as each remote fault is served, ``fault`` its 0-based index and
        # ``ns`` the time the faulting vCPU waits for the page (a run takes it from the guest's vCPUs:
        # pvsim.migrate.inrun); without the hook the stall is only reported
        self.on_stall = None

    # ------------------------------------------------------------ time and the guest
    @property
    def now(self) -> int:
        return self.engine.now_ns

    def _advance(self) -> None:
        now = self.now
        if self.running and now > self._t:
            new = self.mem.write_for(now - self._t)
            if new and self.ld is not None and self.mem.logdirty:
                self._logdirty(self.ld.first_writes(new))
        self._t = now

    def _logdirty(self, items) -> None:
        if items and self.on_logdirty is not None:
            self.on_logdirty(items)

    def _logdirty_flush(self) -> None:
        """A CLEAN or PEEK flushes the vCPUs' PML buffers first (the guest pays while it runs)."""
        if self.ld is not None and self.running:
            self._logdirty(self.ld.flush())

    def _wait_until(self, t: int):
        if t > self.now:
            yield self.engine.timeout_ns(int(t - self.now))

    # ------------------------------------------------------------ the stream
    def _send(self, nbytes: int, dst_cpu: dict | None = None):
        """Queue ``nbytes`` on the link once the previous batch has serialised; the receiver's CPU
        takes the batch (``dst_cpu``: its work by cause) on arrival: an analytic server's completion is
        computed ahead (and recomputed by :meth:`_sync`), a Domain-0 thread is given the work as the
        batch lands."""
        yield from self._wait_link()
        if self.rate_bps:  # sender-side pacing (ADAPTIVE_SAVE, QEMU max-bandwidth)
            yield from self._wait_until(self._paced)
            self._paced = self.now + int(nbytes * 1e9 / self.rate_bps)
        work = dst_cpu if (self.cpu and dst_cpu) else {}
        if work and not self._analytic and not self.pipe.dead:  # (a dead link never lands it)
            self._posting += 1
            tx = self.pipe.send(nbytes, lambda w=work: self._landed(w), flow=self)
            work = {}
        else:
            tx = self.pipe.send(nbytes, flow=self)
        self._txs.append((tx, work))
        self._sync()
        self.out.bytes += nbytes

    def _sync(self) -> None:
        """``_ser_end`` (the end of this stream's last transfer on the link) and ``_arrive`` (the
        receiver's CPU done after each arrival) from the link's current prediction."""
        if self._analytic:
            self.dst.free, self.dst.busy = self._base[0], self._base[1]
        self._arrive = self._base[2]
        settled = True
        for tx, cost in self._txs:
            if cost is not None:
                a = tx.arrive_ns
                self._arrive = self.dst.post(a, cost) if cost else max(self._arrive, a)
            self._ser_end = tx.end_ns
            settled = settled and tx.end_ns <= self.now  # in the past: it can no longer move
            if settled:
                self._base = self._state(self._arrive)
                self._txs = self._txs[1:]

    def _state(self, arrive: int) -> tuple:
        """The receiver's state :meth:`_sync` replays from (an analytic server's queue, the last arrival)."""
        return (self.dst.free, self.dst.busy, arrive) if self._analytic else (None, None, arrive)

    def _landed(self, work: dict) -> None:
        """A batch has arrived: the receiver's Domain-0 thread takes its work now."""
        self._posting -= 1
        self.dst.post(self.now, work)

    def _wait_link(self):
        """Wait until this stream's last transfer has left the sender (re-read: sharing moves it)."""
        while True:
            self._sync()
            if self._ser_end <= self.now:
                return
            yield self.engine.timeout_ns(int(self._ser_end - self.now))

    def _drain(self):
        """Wait until the receiver has everything sent so far."""
        while True:
            self._sync()
            t = max(self._arrive, self._ser_end + self.pipe.latency_ns)
            if t <= self.now and not self._posting:
                break
            yield self.engine.timeout_ns(int(max(0, t - self.now)))
        yield from self.dst.settle()  # the receiver's Domain-0 has restored every batch
        self._advance()

    def _batch_cost(self, n: int) -> dict:
        return batch_cost(n, self.o.pv) if self.cpu else {}

    def _cpu(self, side, parts: dict):
        """Run ``parts`` on ``side``'s Domain-0 now (behind what it was given before) and wait for it."""
        yield from self._wait_until(side.post(self.now, parts))
        yield from side.settle()

    def _page_bytes(self, pfns: np.ndarray) -> int:
        n = len(pfns)
        if self.o.policy == "simgrid":
            return n * PAGE_SIZE
        if self.o.policy == "qemu":
            z = int(np.count_nonzero(self.mem.zero_pages()[pfns])) if n else 0
            return (n - z) * (PAGE_SIZE + QEMU_PAGE_HDR_BYTES) + z * QEMU_ZERO_PAGE_BYTES
        return RHDR_BYTES + PAGE_DATA_HDR_BYTES + n * (PFN_ENTRY_BYTES + PAGE_SIZE)

    def _send_pages(self, pfns: np.ndarray, index: int, live: bool, skip: bool = False):
        """One round: ``pfns`` in batches; with ``skip`` (legacy ``to_skip``) a page already
        re-dirtied in this round is left for the next."""
        r = Round(index, live, 0, 0, 0, self.now, self.now)
        b0 = self.out.bytes
        if not len(pfns) and self.o.policy == "simgrid":
            yield from self._send(0)  # SimGrid sends each stage as one message, even an empty one
        for i in range(0, len(pfns), MAX_BATCH_SIZE):
            self._advance()
            batch = pfns[i:i + MAX_BATCH_SIZE]
            if skip:
                self._logdirty_flush()
                keep = self.mem.peek()[batch] == 0  # XEN_DOMCTL_SHADOW_OP_PEEK into to_skip
                r.skipped += int(len(batch) - np.count_nonzero(keep))
                batch = batch[keep]
            if not len(batch):
                continue
            if self.on_populate is not None:
                new = batch[~self._populated[batch]]
                if len(new) and not self.on_populate(len(new)):
                    raise _Abort(f"target out of memory ({len(new)} more frames needed)")
                self._populated[new] = True
            copy_pages(batch, self.mem.version, self.recv)  # mapped and copied now
            cost = self._batch_cost(len(batch))
            if cost:
                yield from self._cpu(self.src, cost)
            yield from self._send(self._page_bytes(batch), cost)
            r.pages += len(batch)
        yield from self._drain()
        r.end_ns = self.now
        r.bytes = self.out.bytes - b0
        r.dirty_after = self.mem.dirty_count()
        if self.ld is not None:
            r.logdirty_faults, r.pml_exits, r.pml_flushes, r.logdirty_guest_ns = self.ld.take()
        self.out.pages_sent += r.pages
        self.out.rounds.append(r)
        if self.on_round is not None:
            self.on_round(r)
        return r

    def _clean(self) -> np.ndarray:
        self._advance()
        self._logdirty_flush()
        pfns = self.mem.clean()
        if self.cpu:
            self.src.post(self.now, clean_cost(self.mem.model.n_pages))
        return pfns

    # ------------------------------------------------------------ the process
    def process(self):
        o, out = self.o, self.out
        out.start_ns = self._t = self.now
        self.mem.logdirty = True  # XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY
        self._paced = self.now
        if self.records:  # image + domain headers, static data, STATIC_DATA_END
            yield from self._send(IHDR_BYTES + DHDR_BYTES + 2 * (RHDR_BYTES + POLICY_BYTES) + RHDR_BYTES)
        loop = {"xen": self._xen, "xen-legacy": self._legacy, "qemu": self._qemu, "simgrid": self._simgrid}
        try:
            if o.live and o.policy in POSTCOPY_POLICIES:
                remote = yield from self._precopy_first()
                yield from self._switchover(remote)
                yield from self._postcopy()
                return
            if o.live:
                final = yield from loop[o.policy]()
            else:  # xg_sr_save.c save(): !live -> suspend_domain, then send_domain_memory_nonlive
                final = np.arange(self.mem.model.n_pages, dtype=np.int64)
                out.stop_reason = "non-live"
            yield from self._stop_and_copy(final)
        except _Abort as e:  # the receiver failed: the sender stops, the guest stays (or resumes) here
            self.mem.logdirty = False  # XEN_DOMCTL_SHADOW_OP_OFF
            self.running = True
            out.stop_reason = f"aborted: {e}"
            self.aborted = str(e)
            out.end_ns = self.now
            out.dom0_ns = [self.src.busy, self.dst.busy]
            out.guest_writes = self.mem.writes
            if self.on_abort is not None:
                self.on_abort(self)
        finally:  # the save helper and the restore helper exit
            self.src.close()
            self.dst.close()

    def _all(self) -> np.ndarray:
        self.mem.clean()  # round 1 sends everything: the bitmap starts from now
        return np.arange(self.mem.model.n_pages, dtype=np.int64)

    def _xen(self):
        """send_memory_live with simple_precopy_policy."""
        dirty = self._all()
        iteration, x = 0, 0
        while True:
            stop = len(dirty) < SPP_TARGET_DIRTY_COUNT or iteration >= SPP_MAX_ITERATIONS
            x += 1
            if len(dirty):
                yield from self._send_pages(dirty, x, True)  # sent live even when the policy said stop
            if stop:
                self.out.stop_reason = "dirty<50" if len(dirty) < SPP_TARGET_DIRTY_COUNT else "iterations>=5"
                break
            iteration = x
            dirty = self._clean()
        self.out.iterations = iteration
        return None

    def _legacy(self):
        """xc_domain_save's live loop (iter from 1, to_skip peeks, the three stop rules)."""
        o = self.o
        p2m = self.mem.model.n_pages
        to_send = self._all()
        it, total, last_sent = 1, 0, None
        if o.adaptive:
            self.rate_bps = START_MBIT_RATE * 1e6 / 8
        while True:
            r = yield from self._send_pages(to_send, it, True, skip=it > 1)
            total += r.pages
            reasons = []
            if it >= DEF_MAX_ITERS:
                reasons.append("iter>=max_iters")
            if r.pages + r.skipped < LEGACY_MIN_PAGES:
                reasons.append("sent+skipped<50")
            if total > DEF_MAX_FACTOR * p2m:
                reasons.append("total>max_factor*p2m")
            if o.adaptive:
                at_max = self.rate_bps >= MAX_MBIT_RATE * 1e6 / 8
                if last_sent is not None and r.pages > last_sent and at_max:
                    reasons.append("rate at max and sending more")
                dur = max(1, r.duration_ns)
                dirty_rate = r.dirty_after * PAGE_SIZE * 8 / (dur / 1e9) / 1e6  # Mbit/s
                self.rate_bps = min(MAX_MBIT_RATE, max(self.rate_bps * 8 / 1e6, dirty_rate + RATE_INCREMENT_MBIT)) \
                    * 1e6 / 8
            last_sent = r.pages
            if reasons:
                self.out.stop_reason = ",".join(reasons)
                break
            to_send = self._clean()
            it += 1
        self.out.iterations = it
        return None

    def _qemu(self):
        """QEMU: rounds of the dirty bitmap; stop when pending bytes / bandwidth <= downtime-limit."""
        o = self.o
        self.rate_bps = o.max_bandwidth
        dirty = self._all()
        it, high = 0, 0
        while True:
            it += 1
            r = yield from self._send_pages(dirty, it, True)
            bw = r.bytes / max(1e-9, r.duration_ns / 1e9)
            pending = r.dirty_after * PAGE_SIZE
            if pending <= bw * o.downtime_limit_ms / 1e3:
                self.out.stop_reason = "pending<=bandwidth*downtime_limit"
                break
            if it >= SIMGRID_GUARD_ROUNDS:  # QEMU, too, iterates for ever without auto-converge
                self.out.stop_reason = f"no convergence after {it} rounds (pvsim guard)"
                break
            if o.auto_converge:  # mig_throttle_guest_down / migration_trigger_throttle
                if pending > r.bytes * QEMU_THROTTLE_TRIGGER / 100:
                    high += 1
                    if high >= 2:
                        t = self.mem.throttle * 100
                        t = QEMU_THROTTLE_INITIAL if t == 0 else min(QEMU_THROTTLE_MAX, t + QEMU_THROTTLE_INCREMENT)
                        self.mem.throttle = t / 100
                        high = 0
            dirty = self._clean()
        self.out.iterations = it
        return None

    def _simgrid(self):
        """VmLiveMigration: stage 1, then stage 2 while threshold < remaining."""
        o = self.o
        dirty = self._all()
        r = yield from self._send_pages(dirty, 1, True)
        bw = r.bytes / max(1e-9, r.duration_ns / 1e9)
        threshold = bw * o.max_downtime_s
        it = 1
        while self.mem.dirty_count() * PAGE_SIZE > threshold:
            if it >= SIMGRID_GUARD_ROUNDS:
                self.out.stop_reason = f"no convergence after {it} stages (pvsim guard)"
                self.out.iterations = it
                return None
            it += 1
            r = yield from self._send_pages(self._clean(), it, True)
            bw = r.bytes / max(1e-9, r.duration_ns / 1e9)
            threshold = bw * o.max_downtime_s
        self.out.stop_reason = "remaining<=bandwidth*max_downtime"
        self.out.iterations = it
        return None

    def _precopy_first(self):
        """hybrid: ``precopy_rounds`` rounds as ``xen`` sends them; postcopy: none. Returns the pfns that
        stay remote at the switch-over (the dirty set since the last round, or every pfn)."""
        n = self.mem.model.n_pages
        if self.o.policy == "postcopy":
            self.out.stop_reason = "postcopy"
            return np.arange(n, dtype=np.int64)
        dirty = self._all()
        for x in range(1, max(1, self.o.precopy_rounds) + 1):
            if x > 1:
                dirty = self._clean()
            if len(dirty):
                yield from self._send_pages(dirty, x, True)
        self.out.iterations = max(1, self.o.precopy_rounds)
        self.out.stop_reason = f"hybrid: {self.out.iterations} pre-copy round(s), then postcopy"
        return None

    def _switchover(self, remote):
        """Suspend, send the vCPU and device records (no pages), reconnect, resume on the target."""
        o, out = self.o, self.out
        t0 = self.now
        self._advance()
        if self.on_suspend is not None:
            self.on_suspend(self)
        yield self.engine.timeout_ns(SUSPEND_NS)
        self._advance()
        self.running = False
        out.suspended_at = self.now
        out.suspend_ns = self.now - t0
        last = self._clean()  # XEN_DOMCTL_SHADOW_OP_CLEAN with LOGDIRTY_FINAL: what is still stale
        self.mem.logdirty = False
        self._remote = last if remote is None else remote
        t2 = self.now
        v = o.vcpus * (RHDR_BYTES + 8 + VCPU_CONTEXT_BYTES)
        st = (RHDR_BYTES + PAGE_SIZE + RHDR_BYTES + TSC_INFO_BYTES) if o.pv else \
            (RHDR_BYTES + HVM_CONTEXT_BYTES + RHDR_BYTES + HVM_PARAMS_BYTES + RHDR_BYTES + TSC_INFO_BYTES)
        yield from self._send(v + st + RHDR_BYTES)
        yield from self._drain()
        out.records_ns = self.now - t2
        t3 = self.now
        yield self.engine.timeout_ns(o.devices * XS_OPS_PER_DEVICE * XS_OP_NS)
        out.reconnect_ns = self.now - t3
        yield self.engine.timeout_ns(RESUME_NS)
        out.resume_ns = self.now - t3 - out.reconnect_ns
        if self.on_populate is not None:  # the target's frames for every pfn, allocated now
            new = np.flatnonzero(~self._populated)
            if len(new) and not self.on_populate(len(new)):
                raise _Abort(f"target out of memory ({len(new)} more frames needed)")
            self._populated[:] = True
        out.resumed_at = self._t = self.now
        self.running = True  # on the target now
        if self.on_resume is not None:
            self.on_resume(self)

    def _touch(self, n: int, where: np.ndarray):
        m, mem = self.mem.model, self.mem
        fn = _touch_kernel if mem.compiled else touch_ref
        st, mem.cursor, done, pfn = fn(mem._kind, int(n), np.uint64(mem.state), int(mem.cursor), m.ws_base,
                                       m.ws_pages, m.hot_pages, mem._thr, mem.version, self.recv, where)
        mem.state = int(st)
        mem.writes += int(done)
        return int(done), int(pfn)

    def _deliver(self, pfns: np.ndarray, where, fetched) -> None:
        (_deliver_kernel if self.mem.compiled else deliver_ref)(pfns, len(pfns), self.mem.version, self.recv,
                                                                where, fetched)

    def _postcopy(self):
        """The degraded window: demand faults and the background push until every page is local."""
        o, out, mem = self.o, self.out, self.mem
        n = mem.model.n_pages
        where = np.zeros(n, dtype=np.uint8)
        where[self._remote] = 1
        out.remote = where.astype(bool)
        fetched = np.zeros(n, dtype=np.int64)
        rate = mem.model.pages_per_s * (1.0 - mem.throttle) / 1e9  # touches per ns
        buf = np.empty(POSTCOPY_PUSH_PAGES, dtype=np.int64)
        cursor, inflight, first, exhausted = 0, [], True, False
        lead = int(sum(self._batch_cost(POSTCOPY_PUSH_PAGES).values()) / self.src.share)  # the next batch is mapped and
        self._t = self.now  # copied while the previous one serialises (as in the pre-copy rounds)
        while True:
            self._sync()
            if not exhausted and self.now >= self._ser_end - lead:
                k, cursor = (_next_remote_kernel if mem.compiled else next_remote_ref)(where, cursor,
                                                                                      POSTCOPY_PUSH_PAGES, buf)
                exhausted = k == 0
                batch = buf[:k].copy()
                if o.skip_push and first and k:  # MUTANT: the push forgets a page
                    where[batch[0]] = 0
                    batch = batch[1:]
                first = False
                if len(batch):
                    cost = self._batch_cost(len(batch))
                    if cost:
                        yield from self._cpu(self.src, cost)
                    yield from self._send(self._page_bytes(batch), cost)
                    out.pushed_pages += len(batch)
                    inflight.append((batch, max(self._arrive, self._ser_end + self.pipe.latency_ns),
                                     self._txs[-1][0]))
            # a batch arrives no earlier than the link now says (later than predicted if the link is shared)
            inflight = [(b, max(arr, tx.arrive_ns), tx) for b, arr, tx in inflight]
            if not inflight:
                if exhausted:  # the push has passed the last pfn and everything sent has arrived
                    break
                yield from self._wait_until(self._ser_end - lead)  # a fetched page still on the link
                continue
            horizon = inflight[0][1] if exhausted else min(inflight[0][1], max(self._ser_end - lead, self.now))
            budget = mem._carry + rate * max(0, horizon - self._t)
            nt = int(budget)
            done, pfn = self._touch(nt, where) if rate > 0 else (0, n)
            if pfn == n:  # ran to the horizon without faulting
                mem._carry = budget - nt
                yield from self._wait_until(horizon)
            else:
                mem._carry = 0.0
                tf = self._t + int(done / rate)
                yield from self._wait_until(tf)
                out.remote_faults += 1
                if where[pfn] == 2:  # already on its way: wait for its batch
                    end = next(arr for b, arr, _tx in inflight if pfn in b) + POSTCOPY_FAULT_NS
                else:  # MIG_RP_MSG_REQ_PAGES to the source, the page back behind what the link holds
                    yield from self._wait_until(tf + self.pipe.latency_ns)
                    page = np.array([pfn], dtype=np.int64)
                    tx = self.pipe.send(self._page_bytes(page), flow=self)
                    self._txs.append((tx, None))
                    self._sync()
                    out.bytes += self._page_bytes(page)
                    out.pages_sent += 1
                    end = tx.end_ns + self.pipe.latency_ns + POSTCOPY_FAULT_NS
                    self._deliver(page, where, fetched)  # placed at arrival; the guest touches it only after
                out.stall_ns.append(int(end - tf))
                if self.on_stall is not None:
                    self.on_stall(out.remote_faults - 1, int(end - tf))
                yield from self._wait_until(end)
            while inflight and inflight[0][1] <= self.now:
                self._deliver(inflight.pop(0)[0], where, fetched)
            self._t = self.now
        while self._posting:  # a batch landing now has not yet been handed to the receiver's thread
            yield self.engine.timeout_ns(int(max(0, self._ser_end + self.pipe.latency_ns - self.now)))
        yield from self.dst.settle()  # the receiver's Domain-0 has placed the last batch
        out.pages_sent += out.pushed_pages
        out.end_ns = self.now
        out.degraded_ns = self.now - out.resumed_at
        out.dom0_ns = [self.src.busy, self.dst.busy]
        out.guest_writes = mem.writes
        out.receiver = self.recv
        out.sender = mem.version
        out.fetched = fetched

    def _stop_and_copy(self, final):
        o, out = self.o, self.out
        t0 = self.now
        self._advance()
        if self.on_suspend is not None:
            self.on_suspend(self)
        if self.records:  # the guest acknowledges control/shutdown with SHUTDOWN_suspend
            yield self.engine.timeout_ns(SUSPEND_NS)
        self._advance()
        self.running = False  # suspended: no more writes
        out.suspended_at = self.now
        out.suspend_ns = self.now - t0
        t1 = self.now
        last = self._clean()  # XEN_DOMCTL_SHADOW_OP_CLEAN with XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL
        if final is not None:  # non-live: every pfn, sent with the guest already suspended
            last = final
        if o.drop_final:  # MUTANT
            last = last[:0]
        self._paced = self.now
        yield from self._send_pages(last, len(out.rounds) + 1, False)
        out.final_copy_ns = self.now - t1
        t2 = self.now
        if self.records:
            v = o.vcpus * (RHDR_BYTES + 8 + VCPU_CONTEXT_BYTES)
            st = (RHDR_BYTES + PAGE_SIZE + RHDR_BYTES + TSC_INFO_BYTES) if o.pv else \
                (RHDR_BYTES + HVM_CONTEXT_BYTES + RHDR_BYTES + HVM_PARAMS_BYTES + RHDR_BYTES + TSC_INFO_BYTES)
            yield from self._send(v + st + RHDR_BYTES)  # ... END
        elif o.policy == "qemu":
            yield from self._send(QEMU_DEVICE_STATE_BYTES)
        yield from self._drain()
        out.records_ns = self.now - t2
        if self.records or o.policy == "qemu":
            t3 = self.now
            yield self.engine.timeout_ns(o.devices * XS_OPS_PER_DEVICE * XS_OP_NS)
            out.reconnect_ns = self.now - t3
            yield self.engine.timeout_ns(RESUME_NS)
            out.resume_ns = self.now - t3 - out.reconnect_ns
        out.end_ns = self.now
        out.dom0_ns = [self.src.busy, self.dst.busy]
        out.guest_writes = self.mem.writes
        out.receiver = self.recv
        out.sender = self.mem.version
        if self.on_resume is not None:
            self.on_resume(self)
