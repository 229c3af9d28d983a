"""What a workload is: threads, each repeating a unit of work made of steps.

Design note
-----------
Every workload -- an lmbench operation, a nanobenchmark, a macro op mix, a split-driver I/O
generator, a memory benchmark, a scheduler behaviour, or one a user writes in TOML -- is one
:class:`WorkloadSpec`: ``threads`` threads (default one per vCPU of the domain; ``iodepth`` or
``clients`` for I/O generators), each looping over ``steps``. A step is exactly one of

================  ==========================================================================
``actions``       an op mix: OS actions (:data:`guest_kernels.actions.ACTIONS`) priced on the
                  domain's mode (the guest kernel on real page tables); device actions
                  (``disk_io``, ``net_io``) among them run on the domain's real devices
``cpu``           application CPU: a profile key (``io.oltp_txn_cycles``), or ``cycles`` /
                  ``ns``, fixed or exponential (``dist``)
``syscalls``      that many system calls (the mode's syscall path)
``disk``          a synchronous block request: ``op`` read/write/mix (``read_frac``), ``bytes``,
                  ``pattern`` random (``align``, ``span_bytes``) or sequential (a shared cursor
                  from ``offset_bytes`` wrapping in ``span_bytes``: a log)
``send``          ``bytes`` to the outside peer (bulk transmit)
``request``       a request of ``bytes`` to the peer and a wait for its ``response_bytes`` reply
``await``         wait for the next request of this thread's client connection (a server)
``respond``       the response of ``bytes`` to that request
``sleep``         think time: ``ns``, fixed or exponential
``period``        sleep until the next multiple of ``ns`` (periodic arrivals; latency counts
                  from the arrival)
``memory``        touch pages on the domain's real page tables: ``pattern`` uniform (GUPS),
                  hot (a hot set of ``hot_frac`` of the pages takes ``hot_prob`` of the
                  accesses) or sequential (``arrays`` arrays, the last written: STREAM), over
                  ``pages`` pages, ``accesses`` per step, ``write_frac`` writes, each access
                  costing one ``ref`` (a profile key) besides its translation
``churn``         page-table churn on real tables: ``kind`` mmap (map, write, unmap ``pages``)
                  or fork (fork a ``pages``-page process, the child writes ``touch_frac`` of
                  them and exits, the parent writes ``parent_writes``)
``choice``        one of several step lists, by probability (``[{p, steps}, ...]``)
================  ==========================================================================

``writable = {mib, mb_per_s, pattern, ...}`` declares the writable working set live migration sees
(:class:`WritableSpec`).

``arrivals = {rate_per_s = r}`` makes the workload open-loop: units arrive as a Poisson process of
rate ``r`` (or at fixed gaps) and each runs the steps once, however many are in progress.

Any step may carry ``times`` (how many per unit; a fraction accumulates, so 0.2 means one unit in
five) and ``p`` (probability per unit). Numbers may be ``"$name"`` references to ``params``, which a
scenario's domain may override (``params = {iodepth = 4}``). ``setup`` steps run once per thread
before the loop, unmetered (a benchmark's initialisation). The peer beyond the host's link is a
``sink`` (acknowledges bulk data), ``rr`` (answers each request after its turnaround) or
``clients`` (one closed-loop client per thread).

The *value* of a run: units of work per second (``ops_per_s``, ``trans_per_s``, ``iops``), time
per unit (``us_per_op``, ``cycles_per_op``) or payload bits delivered to the peer (``mbit_per_s``,
``value_from = "peer_payload"``). ``native_ref`` = (profile, microseconds): the op's measured native
latency, from which the ``fill`` action's kernel path length is derived (only native measurements
are inputs; see :mod:`pvsim.pricing`).

Simplifications: every thread of a workload runs the same steps; a choice is drawn per unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from guest_kernels.actions import ACTIONS, DEVICE_ACTIONS, check_args
from pvsim.core.errors import ScenarioError
from pvsim.core.schema import unknown, validate

METRICS = ("us_per_op", "cycles_per_op", "ops_per_s", "trans_per_s", "iops", "mbit_per_s")
RATE_METRICS = frozenset({"ops_per_s", "trans_per_s", "iops", "mbit_per_s"})
PEERS = ("none", "sink", "rr", "clients")
Num = int | float | str  # a number or a "$param" reference


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CpuStep(_M):
    key: str | None = None  # a profile key priced per step
    cycles: Num | None = None
    ns: Num | None = None
    dist: Literal["fixed", "exp"] = "fixed"
    cause: str = "user.app"


class DiskStep(_M):
    op: Literal["read", "write", "mix"] = "read"
    read_frac: Num = 1.0
    bytes: Num = 4096
    pattern: Literal["random", "sequential"] = "random"
    align: Num = 4096
    span_bytes: Num = 8 << 30
    offset_bytes: Num = 0


class SendStep(_M):
    bytes: Num


class RequestStep(_M):
    bytes: Num = 1
    response_bytes: Num = 1


class AwaitStep(_M):
    bytes: Num = 300  # the client's request size (payload)


class RespondStep(_M):
    bytes: Num


class TimeStep(_M):
    ns: Num
    dist: Literal["fixed", "exp"] = "fixed"


class PeriodStep(_M):
    ns: Num
    phase_ns: Num = 0


PAGE_SIZES = ("4k", "2m", "1g")  # pvsim.mm.x86.PAGE_LEVELS' names


class MemoryStep(_M):
    pattern: Literal["uniform", "hot", "sequential"] = "uniform"
    pages: Num
    accesses: Num
    write_frac: Num = 0.3
    hot_frac: Num = 0.1
    hot_prob: Num = 0.9
    arrays: Num = 3
    ref: str = "native.dram_ref_cycles"
    page_size: str = "4k"  # the guest's pages for the region (hugetlbfs / THP): 4k, 2m or 1g (or "$param")


class ChurnStep(_M):
    kind: Literal["mmap", "fork"]
    pages: Num
    touch_frac: Num = 1.0
    parent_writes: Num = 0


class ArrivalSpec(_M):
    """Open-loop arrivals: a new unit starts every ``1/rate_per_s`` seconds (exponential gaps: a
    Poisson process), whatever the units in progress; each arriving unit runs the steps once."""

    rate_per_s: Num
    dist: Literal["exp", "fixed"] = "exp"


class MeasureSpec(_M):
    """How a comparison measures this workload: a number of units, or a timed window after a
    warm-up (simulated milliseconds)."""

    ops: int | None = None
    duration_ms: float | None = None
    warmup_ms: float = 0.0
    pcpus: int | None = None  # the host's pCPUs (I/O: 2, so the guest and Domain-0 each have one)


class WritableSpec(_M):
    """A workload's writable working set, for live migration's dirty-page model (pvsim.migrate.dirty):
    ``mib`` of the guest's RAM (or ``ram_frac`` of it) written at ``mb_per_s`` (10^6 bytes of 4 KiB
    page writes per second of guest time) in a ``pattern``: uniform over the set, hot (``hot_frac``
    of the set takes ``hot_share`` of the writes: a Zipf-like hot set) or sequential (a sweep that
    wraps). ``free_frac`` of RAM is free (zero) pages, never written; the rest is read-only data.
    ``source`` says which characterisation of the workload the figures come from."""

    mib: float | None = Field(None, ge=0, le=1 << 24)
    ram_frac: float | None = Field(None, ge=0, le=1)
    mb_per_s: float = Field(0.0, ge=0, le=1e6)
    pattern: Literal["uniform", "hot", "sequential"] = "uniform"
    hot_frac: float = Field(0.1, gt=0, le=1)
    hot_share: float = Field(0.9, ge=0, le=1)
    free_frac: float = Field(0.0, ge=0, le=1)
    source: str = ""


class FootprintSpec(_M):
    """A workload's cache and TLB working sets, for the footprint a context switch leaves
    (pvsim.sched.footprint): ``cache_kib`` KiB of data and code it re-touches each time it runs,
    ``tlb_pages`` 4 KiB pages it touches between two switches. ``source`` says which characterisation
    of the workload the figures come from."""

    cache_kib: float = Field(ge=0, le=1 << 24)
    tlb_pages: int = Field(ge=0, le=1 << 30)
    source: str = ""


STEP_MODELS = {
    "cpu": CpuStep, "disk": DiskStep, "send": SendStep, "request": RequestStep, "await": AwaitStep,
    "respond": RespondStep, "sleep": TimeStep, "period": PeriodStep, "memory": MemoryStep,
    "churn": ChurnStep,
}
STEP_KINDS = ("actions", "syscalls", "choice", *STEP_MODELS)
STEP_COMMON = ("times", "p")


class WorkloadSpec(_M):
    name: str
    description: str = ""
    source: str = ""
    group: str = "user"
    metric: Literal["us_per_op", "cycles_per_op", "ops_per_s", "trans_per_s", "iops", "mbit_per_s"] = "ops_per_s"
    threads: Num | Literal["vcpus"] = "vcpus"  # "vcpus": one thread per vCPU of the domain
    peer: Literal["none", "sink", "rr", "clients"] = "none"
    mtu: Num = 1500
    params: dict[str, int | float | str] = {}
    setup: list[dict] = []
    steps: list[dict]
    units_per_loop: Num = 1
    value_from: Literal["units", "peer_payload"] = "units"
    native_ref: tuple[str, float] | None = None
    measure: MeasureSpec | None = None
    arrivals: ArrivalSpec | None = None
    writable: WritableSpec | None = None  # its dirty-page behaviour under live migration
    footprint: FootprintSpec | None = None  # its cache/TLB working sets (none: no switch footprint)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or len(v) > 64 or any(c.isspace() for c in v):
            raise ValueError("must be 1..64 characters without spaces")
        return v

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list) -> list:
        if not v:
            raise ValueError("a workload needs at least one step")
        return v


# ============================================================================== resolved form
@dataclass(frozen=True)
class A:
    """One OS action of an op mix: ``name(*args)``, ``times`` per unit (fractions accumulate)."""

    name: str
    args: tuple = ()
    times: float = 1.0

    @property
    def kind_device(self) -> bool:
        """Performed on the domain's real devices, not priced (``disk_io``, ``net_io``)."""
        return self.name in DEVICE_ACTIONS


@dataclass(frozen=True)
class Step:
    kind: str
    body: Any  # tuple[A, ...] (actions) | int (syscalls) | list[(p, tuple[Step])] (choice) | a model
    times: float = 1.0
    p: float = 1.0
    key: str = ""  # its path in the workload (a key for prices and cursors)


@dataclass(frozen=True)
class Workload:
    """A workload with its parameters substituted: what a run executes."""

    spec: WorkloadSpec
    name: str
    metric: str
    threads: int | None  # None: one per vCPU
    peer: str
    mtu: int
    steps: tuple[Step, ...]
    setup: tuple[Step, ...]
    units_per_loop: float
    value_from: str
    params: dict = field(default_factory=dict)
    arrival_rate: float | None = None  # units per second of an open-loop workload
    arrival_dist: str = "exp"

    @property
    def native_ref(self):
        return self.spec.native_ref

    @property
    def has_devices(self) -> bool:
        return any(_uses_devices(s) for s in self.steps + self.setup)

    @property
    def uses_network(self) -> bool:
        return self.peer != "none" or any(_uses_net(s) for s in self.steps)

    @property
    def uses_disk(self) -> bool:
        return any(_uses_disk(s) for s in self.steps + self.setup)

    @property
    def uses_memory(self) -> bool:
        return any(s.kind in ("memory", "churn") for s in _walk(self.steps + self.setup))

    def action_steps(self) -> list[Step]:
        return [s for s in _walk(self.steps) if s.kind == "actions"]


def _walk(steps):
    for s in steps:
        yield s
        if s.kind == "choice":
            for _p, sub in s.body:
                yield from _walk(sub)


def _uses_disk(s: Step) -> bool:
    return any(x.kind == "disk" or (x.kind == "actions" and any(a.name == "disk_io" for a in x.body))
               for x in _walk((s,)))


def _uses_net(s: Step) -> bool:
    return any(x.kind in ("send", "request", "await", "respond")
               or (x.kind == "actions" and any(a.name == "net_io" for a in x.body)) for x in _walk((s,)))


def _uses_devices(s: Step) -> bool:
    return _uses_disk(s) or _uses_net(s)


# ============================================================================== parsing
def _sub(v, params: dict, where: str):
    """Replace a ``"$name"`` reference by its parameter value."""
    if isinstance(v, str) and v.startswith("$"):
        name = v[1:]
        if name not in params:
            raise unknown(where, name, params, what="parameter")
        return params[name]
    return v


def _num(v, where: str, lo: float, hi: float, integer: bool = False):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ScenarioError(where, f"must be a number, got {v!r}")
    if integer and float(v) != int(v):
        raise ScenarioError(where, f"must be an integer, got {v!r}")
    if not lo <= v <= hi:
        raise ScenarioError(where, f"must be {lo:g}..{hi:g}, got {v}")
    return int(v) if integer else float(v)


def _resolve_model(model: _M, params: dict, where: str) -> _M:
    data = {}
    for k, v in model.model_dump().items():
        data[k] = _sub(v, params, f"{where}.{k}")
    return type(model).model_validate(data)


def parse_action(item, where: str) -> A:
    """``["fork", 300]``, ``["syscall", {times = 30}]`` or ``{action = "fork", args = [300], times = 2}``."""
    times = 1.0
    if isinstance(item, dict):
        extra = set(item) - {"action", "args", "times"}
        if extra:
            raise unknown(where, sorted(extra)[0], ("action", "args", "times"))
        if "action" not in item:
            raise ScenarioError(f"{where}.action", "required")
        name, args, times = item["action"], tuple(item.get("args", ())), item.get("times", 1.0)
    elif isinstance(item, (list, tuple)) and item and isinstance(item[0], str):
        name, rest = item[0], list(item[1:])
        if rest and isinstance(rest[-1], dict):
            opt = rest.pop()
            extra = set(opt) - {"times"}
            if extra:
                raise unknown(where, sorted(extra)[0], ("times",))
            times = opt.get("times", 1.0)
        args = tuple(rest)
    else:
        raise ScenarioError(where, f"an action is [name, args...] or {{action = ..., args = [...]}}, got {item!r}")
    if not isinstance(name, str) or name not in ACTIONS:
        raise unknown(where, str(name), ACTIONS, what="action")
    why = check_args(name, args)
    if why:
        raise ScenarioError(where, why)
    times = _num(times, f"{where}.times", 0, 1e9)
    return A(name, args, times)


def parse_step(d, where: str, params: dict) -> Step:
    if not isinstance(d, dict):
        raise ScenarioError(where, f"a step is a table with one of {', '.join(STEP_KINDS)}, got {d!r}")
    kinds = [k for k in d if k in STEP_KINDS]
    other = [k for k in d if k not in STEP_KINDS and k not in STEP_COMMON]
    if other:
        raise unknown(where, other[0], (*STEP_KINDS, *STEP_COMMON))
    if len(kinds) != 1:
        raise ScenarioError(where, f"a step has exactly one of {', '.join(STEP_KINDS)}, got {kinds or 'none'}")
    kind = kinds[0]
    times = _num(_sub(d.get("times", 1.0), params, f"{where}.times"), f"{where}.times", 0, 1e9)
    p = _num(_sub(d.get("p", 1.0), params, f"{where}.p"), f"{where}.p", 0, 1)
    raw = d[kind]
    w = f"{where}.{kind}"
    if kind == "actions":
        if not isinstance(raw, list) or not raw:
            raise ScenarioError(w, "must be a non-empty list of actions")
        body = tuple(parse_action(_sub_action(a, params, f"{w}[{i}]"), f"{w}[{i}]") for i, a in enumerate(raw))
    elif kind == "syscalls":
        body = _num(_sub(raw, params, w), w, 0, 1e6, integer=True)
    elif kind == "choice":
        if not isinstance(raw, list) or not raw:
            raise ScenarioError(w, "must be a non-empty list of {p, steps}")
        body = []
        total = 0.0
        for i, opt in enumerate(raw):
            ow = f"{w}[{i}]"
            if not isinstance(opt, dict):
                raise ScenarioError(ow, "must be a table {p = ..., steps = [...]}")
            extra = set(opt) - {"p", "steps"}
            if extra:
                raise unknown(ow, sorted(extra)[0], ("p", "steps"))
            if "p" not in opt:
                raise ScenarioError(f"{ow}.p", "required")
            op = _num(_sub(opt["p"], params, f"{ow}.p"), f"{ow}.p", 0, 1)
            subs = opt.get("steps", [])
            if not isinstance(subs, list):
                raise ScenarioError(f"{ow}.steps", "must be a list of steps")
            body.append((op, tuple(parse_step(s, f"{ow}.steps[{j}]", params) for j, s in enumerate(subs))))
            total += op
        if total > 1.0 + 1e-9:
            raise ScenarioError(w, f"probabilities sum to {total:g} > 1")
    else:
        model = STEP_MODELS[kind]
        if not isinstance(raw, dict):
            raise ScenarioError(w, "must be a table")
        m = validate(model, raw, w)
        body = _check_step(kind, _resolve_model(m, params, w), w)
    return Step(kind, body, times, p, where)


def _sub_action(a, params, where):
    if isinstance(a, list):
        return [_sub(x, params, where) for x in a]
    if isinstance(a, dict) and "args" in a:
        return dict(a, args=[_sub(x, params, where) for x in a["args"]])
    return a


def _check_step(kind: str, m: _M, w: str) -> _M:
    """Ranges of the numbers of a resolved step (after parameter substitution)."""
    rng = {
        "cpu": {"cycles": (0, 1e12), "ns": (0, 1e12)},
        "disk": {"read_frac": (0, 1), "bytes": (512, 1 << 20), "align": (512, 1 << 30), "span_bytes": (4096, 1 << 50),
                 "offset_bytes": (0, 1 << 50)},
        "send": {"bytes": (1, 1 << 30)},
        "request": {"bytes": (1, 1 << 20), "response_bytes": (1, 1 << 20)},
        "await": {"bytes": (1, 1 << 20)},
        "respond": {"bytes": (1, 1 << 30)},
        "sleep": {"ns": (0, 1e12)},
        "period": {"ns": (1, 1e12), "phase_ns": (0, 1e12)},
        "memory": {"pages": (1, 1 << 24), "accesses": (1, 1 << 24), "write_frac": (0, 1), "hot_frac": (1e-6, 1),
                   "hot_prob": (0, 1), "arrays": (1, 64)},
        "churn": {"pages": (1, 1 << 16), "touch_frac": (0, 1), "parent_writes": (0, 1 << 16)},
    }[kind]
    ints = {"bytes", "align", "span_bytes", "offset_bytes", "response_bytes", "pages", "accesses", "arrays",
            "parent_writes"}
    data = m.model_dump()
    if kind == "memory" and data["page_size"] not in PAGE_SIZES:
        raise ScenarioError(f"{w}.page_size", f"must be one of {', '.join(PAGE_SIZES)}, got {data['page_size']!r}")
    for k, (lo, hi) in rng.items():
        v = data.get(k)
        if v is None:
            continue
        data[k] = _num(v, f"{w}.{k}", lo, hi, integer=k in ints)
    if kind == "cpu":
        given = [k for k in ("key", "cycles", "ns") if data.get(k) is not None]
        if len(given) != 1:
            raise ScenarioError(w, "give exactly one of key, cycles, ns")
    if kind == "disk" and data["bytes"] % 512:
        raise ScenarioError(f"{w}.bytes", f"must be a multiple of 512, got {data['bytes']}")
    return type(m).model_validate(data)


def resolve(spec: WorkloadSpec, overrides: dict | None = None, where: str = "workload") -> Workload:
    """The runnable form of ``spec`` with its parameters (and ``overrides`` of them) substituted."""
    params = dict(spec.params)
    for k, v in (overrides or {}).items():
        if k not in params:
            raise unknown(f"{where}.params", k, params, what="parameter")
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise ScenarioError(f"{where}.params.{k}", f"must be a number or string, got {v!r}")
        params[k] = v
    threads = None if spec.threads == "vcpus" else \
        _num(_sub(spec.threads, params, f"{where}.threads"), f"{where}.threads", 1, 4096, integer=True)
    mtu = _num(_sub(spec.mtu, params, f"{where}.mtu"), f"{where}.mtu", 68, 65535, integer=True)
    upl = _num(_sub(spec.units_per_loop, params, f"{where}.units_per_loop"), f"{where}.units_per_loop", 1e-9, 1e9)
    steps = tuple(parse_step(s, f"{where}.steps[{i}]", params) for i, s in enumerate(spec.steps))
    setup = tuple(parse_step(s, f"{where}.setup[{i}]", params) for i, s in enumerate(spec.setup))
    if spec.value_from == "peer_payload" and spec.peer == "none":
        raise ScenarioError(f"{where}.value_from", "peer_payload needs a peer")
    rate = None
    if spec.arrivals is not None:
        rate = _num(_sub(spec.arrivals.rate_per_s, params, f"{where}.arrivals.rate_per_s"),
                    f"{where}.arrivals.rate_per_s", 1e-6, 1e9)
        if spec.threads != "vcpus":
            raise ScenarioError(f"{where}.threads", "an open-loop workload (arrivals) has no fixed threads")
    w = Workload(spec, spec.name, spec.metric, threads, spec.peer, mtu, steps, setup, upl, spec.value_from, params,
                 rate, spec.arrivals.dist if spec.arrivals is not None else "exp")
    kinds = {s.kind for s in _walk(steps)}
    if kinds & {"await", "respond"} and spec.peer != "clients":
        raise ScenarioError(f"{where}.peer", "await/respond steps need peer = \"clients\"")
    if "request" in kinds and spec.peer != "rr":
        raise ScenarioError(f"{where}.peer", "request steps need peer = \"rr\"")
    if "send" in kinds and spec.peer not in ("sink", "rr", "clients"):
        raise ScenarioError(f"{where}.peer", "send steps need a peer (sink, rr or clients)")
    if any(a.name == "net_io" for s in w.action_steps() for a in s.body) and spec.peer != "clients":
        raise ScenarioError(f"{where}.peer", "net_io actions need peer = \"clients\" (the client they serve)")
    return w


def parse_spec(data: dict, where: str = "workload") -> WorkloadSpec:
    """A :class:`WorkloadSpec` from a TOML table, checked all the way down (steps included)."""
    spec = validate(WorkloadSpec, data, where)
    resolve(spec, None, where)
    return spec
