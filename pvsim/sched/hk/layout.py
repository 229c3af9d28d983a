"""The compiled host's state: one int64 arena, its regions, their fields.

Design note
-----------
Everything the compiled dispatcher (:mod:`pvsim.sched.hk.core`) reads or writes lives in one int64
array, so that a call from Python passes one argument (a call costs about a microsecond). The
arena opens with a header giving each region's offset, rows and columns; :func:`views` makes the
struct of views the kernels work on (``A.G``, ``A.V``, ...: a Numba StructRef, so passing it between
compiled functions is cheap), a 1-D globals row and 2-D regions of *fields x items*
(``V[F_REMAINING, v]``). Python code reads the same regions through
:meth:`Arena.region`. The compiled views own no reference (their meminfo is NULL, as
``numba.carray``'s): reading an owned array member of a StructRef increfs and decrefs its meminfo,
two atomic operations per ``A.<region>`` read in the hottest loops, and the arena ``M`` is kept
alive by the kernel call that made the views (a :class:`HostState` never outlives it).

Regions: ``G`` globals; ``V`` vCPUs (the dispatcher's unit: runstates, demand, program state);
``P`` pCPUs; ``Q`` the event heap (time, id, kind, a, b); ``D`` domains; ``TM`` scheduler timers;
``SV``, ``SP``, ``SD``, ``SG`` the scheduler's per-vCPU, per-pCPU, per-domain and global fields (sized by
the scheduler); ``RQ`` its runqueues (rows of vCPU indices); ``HARD``/``SOFT`` affinity bitmaps (64
pCPUs per word); ``SX`` the scheduler's bitmaps (idlers, ...); ``PR`` programs; ``PC`` per-vCPU
per-op counters; ``RB`` per-vCPU buffers of exponential draws (as float64 bits); ``T`` trace
records; ``LB`` unit latencies; ``WB`` wake-to-run latencies.
"""

from __future__ import annotations

import numpy as np
from numba import carray, config, njit, types
from numba.experimental import structref
from numba.extending import intrinsic

# ---------------------------------------------------------------- regions (order in the header)
G, V, P, Q, D, TM, SV, SP, SD, SG, RQ, HARD, SOFT, SX, PR, PC, RB, T, LB, WB = range(20)
N_REGIONS = 20
HEADER = 4 + 3 * N_REGIONS  # magic, version, n, 0, then (offset, rows, cols) per region
MAGIC = 0x70767368  # "pvsh"

# ---------------------------------------------------------------- G: globals
(G_NOW, G_SEQ, G_NV, G_NP, G_ND, G_QN, G_TMN, G_SCHED, G_STARTED, G_TRACE, G_TN, G_LN, G_WN,
 G_STATUS, G_CONT, G_CONT_CPU, G_CONT_V, G_CONT_X, G_LIM_T, G_LIM_P, G_LIM_E, G_REFILL,
 G_SWITCH_NS, G_SCHED_NS, G_NSCHED, G_NDEMAND, G_EVENTS, G_T0, G_WORDS, G_RBN, G_PROGS,
 G_MAXOPS, G_ZERO, G_NEED_V, G_STRICT,
 # cache/TLB footprints (pvsim.sched.footprint): on, switch-in sequence, 3 levels (lines, ps per line),
 # TLB entries, tagged, pages inside the switch constant
 G_FP_ON, G_FP_SEQ, G_FP_CAP0, G_FP_CAP1, G_FP_CAP2, G_FP_PS0, G_FP_PS1, G_FP_PS2, G_FP_TLB_ENTRIES,
 G_FP_TAGGED, G_FP_SWITCH_PAGES) = range(46)
NG = 48

# ---------------------------------------------------------------- V: per vCPU
(F_RUNSTATE, F_STATE_ENTRY, F_RS0, F_RS1, F_RS2, F_RS3, F_REMAINING, F_IS_RUNNING, F_BLOCKED,
 F_PAUSE, F_DONE, F_CPU, F_RAN_ON, F_CTX_IN, F_MIGRATIONS, F_WAKE_NS, F_RUNNABLE_SINCE,
 F_LAST_RUN_START, F_CREATED, F_BLOCK_GEN, F_MIGRATING, F_MIGRATE_PENDING, F_IRQ_PENDING,
 F_DOM, F_EXTERNAL, F_EVER_RAN, F_VCPU_ID, F_DOMID, F_HARD_ALL, F_SOFT_NONE, F_BLOCK_AFTER,
 # program state
 F_PROG, F_PC, F_PENDING, F_T0, F_PARTS, F_BURST_PARTS, F_BURST_NS, F_LOOP_END, F_IDLED,
 F_WAKE_AT, F_IDLES, F_BUSY, F_RBPOS,
 # footprint: working set (lines, TLB pages, ps per page), last switch-in (sequence, cache domain)
 F_FP_LINES, F_FP_PAGES, F_FP_PAGE_PS, F_FP_SEQ, F_FP_CD) = range(49)
NVF = 52

# ---------------------------------------------------------------- P: per pCPU
(P_CURR, P_GEN, P_SLICE_END, P_WORK_START, P_SOFTIRQ, P_SGEN, P_IDLE_NS, P_IDLE_SINCE, P_SWITCHES,
 P_LAST_COST, P_LAST_ON,
 # footprint: the pCPU's cache domain, the last charge's parts, the switched-in unit's previous record
 P_FP_CD, P_FP_CACHE, P_FP_TLB, P_FP_UNDO_SEQ, P_FP_UNDO_CD) = range(16)
NPF = 16

# ---------------------------------------------------------------- Q: the event heap
Q_T, Q_SEQ, Q_KIND, Q_A, Q_B = range(5)
EV_DECISION, EV_SOFTIRQ, EV_BLOCKWAKE, EV_INTERRUPT, EV_STIMER = 1, 2, 3, 4, 5

# ---------------------------------------------------------------- D: per domain
D_DOMID, D_WEIGHT, D_CAP, D_SWITCH_NS, D_NUNITS, D_ACTIVE_UNITS, D_FP_CACHE_NS, D_FP_TLB_NS = range(8)
NDF = 8

# ---------------------------------------------------------------- TM: scheduler timers
TM_ACTIVE, TM_KIND, TM_ARG, TM_WHEN = range(4)

# ---------------------------------------------------------------- PR: programs
PR_SHAPE, PR_NOPS, PR_BURST_COST, PR_BURST_PARTS, PR_PPU, PR_IDLE_COST, PR_IDLE_MODE, PR_LAT = range(8)
PR_OPS = 8  # then (op, a, b) per op

# ---------------------------------------------------------------- T, LB, WB: buffers
T_TIME, T_CPU, T_EV, T_N = range(4)  # then words
T_WORDS = 5
LB_DOM, LB_NS = range(2)
WB_V, WB_NS = range(2)

# ---------------------------------------------------------------- statuses and continuations
ST_DONE = 0  # nothing left before the limit
ST_NEED_DEMAND = 1  # an external vCPU must be asked for its next demand (G_NEED_V)
ST_NEED_PREEMPT = 2  # an external vCPU must be asked to give back the rest of its Run
ST_DRAIN = 3  # a buffer or the heap is nearly full, or a random buffer needs refilling
ST_ERROR = 9  # an inconsistency (G_NEED_V: the code, G_CONT_V: the unit)
C_NONE, C_SCHED, C_DECISION, C_INTERRUPT, C_INTERRUPT_DEMAND = 0, 1, 2, 3, 4

MARGIN_T = 4096  # trace records one event may add at most
MARGIN_Q = 4096
MARGIN_RB = 64


class Arena:
    """The arena of one compiled host, allocated for ``nv`` vCPUs, ``np_`` pCPUs and ``nd`` domains
    (with room to grow: Python reallocates it, copying each region)."""

    def __init__(self, nv: int, np_: int, nd: int, sched_sizes: dict, nprogs: int = 1, maxops: int = 8,
                 rbn: int = 1024, trace_cap: int = 1 << 16, lat_cap: int = 1 << 17, q_cap: int | None = None):
        words = (np_ + 63) // 64
        self.dims = {
            G: (1, NG), V: (NVF, nv), P: (NPF, np_), Q: (5, q_cap or (8 * np_ + 4 * nv + 2 * MARGIN_Q)), D: (NDF, nd),
            TM: (4, sched_sizes.get("timers", 16)), SV: (sched_sizes.get("sv", 1), nv),
            SP: (sched_sizes.get("sp", 1), np_), SD: (sched_sizes.get("sd", 1), nd), SG: (1, sched_sizes.get("sg", 8)),
            RQ: (sched_sizes.get("rq_rows", np_), sched_sizes.get("rq_cols", nv + 1)),
            HARD: (nv, words), SOFT: (nv, words), SX: (sched_sizes.get("sx", 1), words),
            PR: (max(1, nprogs), PR_OPS + 3 * maxops), PC: (2 * maxops, nv), RB: (nv, rbn),
            T: (T_N + 1 + T_WORDS, trace_cap), LB: (2, lat_cap), WB: (2, lat_cap),
        }
        off = HEADER
        self.offsets = {}
        for r in range(N_REGIONS):
            rows, cols = self.dims[r]
            self.offsets[r] = off
            off += rows * cols
        self.M = np.zeros(off, np.int64)
        self.M[0], self.M[1], self.M[2] = MAGIC, 1, N_REGIONS
        for r in range(N_REGIONS):
            rows, cols = self.dims[r]
            self.M[4 + 3 * r: 7 + 3 * r] = (self.offsets[r], rows, cols)
        g = self.region(G)[0]
        g[G_NV], g[G_NP], g[G_ND] = 0, np_, 0
        g[G_RBN], g[G_MAXOPS], g[G_WORDS] = rbn, maxops, words

    def region(self, r: int) -> np.ndarray:
        cache = self.__dict__.setdefault("_views", {})
        v = cache.get(r)
        if v is None:
            rows, cols = self.dims[r]
            o = self.offsets[r]
            v = cache[r] = self.M[o:o + rows * cols].reshape(rows, cols)
        return v

    @property
    def g(self) -> np.ndarray:
        return self.region(G)[0]


# the kernels' view of the arena: a struct of the regions (passing it to a compiled function costs one
# reference count; a tuple of 20 arrays would cost 20 and a copy of each array's descriptor)
FIELDS = ("G", "V", "P", "Q", "D", "TM", "SV", "SP", "SD", "SG", "RQ", "HARD", "SOFT", "SX", "PR", "PC", "RB", "T",
          "LB", "WB")

if config.DISABLE_JIT:  # the kernels run as Python: a plain object with the same fields
    class HostState:
        __slots__ = FIELDS

        def __init__(self, *regions):
            for name, r in zip(FIELDS, regions):
                setattr(self, name, r)
else:
    @structref.register
    class HostStateType(types.StructRef):
        def preprocess_fields(self, fields):
            return tuple((name, types.unliteral(typ)) for name, typ in fields)

    class HostState(structref.StructRefProxy):
        pass

    structref.define_proxy(HostState, HostStateType, list(FIELDS))


if config.DISABLE_JIT:  # plain Python: views that keep the arena alive
    def _r2(M, i):
        o = M[4 + 3 * i]
        r = M[5 + 3 * i]
        c = M[6 + 3 * i]
        return M[o:o + r * c].reshape((r, c))
else:
    @intrinsic
    def _int64_ptr(typingctx, addr):
        """The address ``addr`` (an integer) as an ``int64*``."""
        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(types.CPointer(types.int64)))
        return types.CPointer(types.int64)(addr), codegen

    @njit(cache=True)
    def _r2(M, i):
        # a view with no reference of its own (meminfo NULL, like numba.carray's): the kernels read
        # ``A.<region>`` in their hottest loops, and each read of an owned array member of a
        # StructRef increfs and decrefs its meminfo (two atomic operations). Safe because a
        # HostState lives only inside the kernel call whose argument ``M`` keeps the arena alive.
        o = M[4 + 3 * i]
        r = M[5 + 3 * i]
        c = M[6 + 3 * i]
        return carray(_int64_ptr(M.ctypes.data + 8 * o), (r, c))


@njit(cache=True)
def views(M):
    """The regions of arena ``M`` as a :class:`HostState` (``A.G``, ``A.V``, ...; ``G`` and ``SG`` 1-D)."""
    return HostState(_r2(M, 0)[0], _r2(M, 1), _r2(M, 2), _r2(M, 3), _r2(M, 4), _r2(M, 5), _r2(M, 6), _r2(M, 7),
                     _r2(M, 8), _r2(M, 9)[0], _r2(M, 10), _r2(M, 11), _r2(M, 12), _r2(M, 13), _r2(M, 14),
                     _r2(M, 15), _r2(M, 16), _r2(M, 17), _r2(M, 18), _r2(M, 19))
