"""Scheduler parameters: names, legal ranges and defaults, validated before time 0.

Design note
-----------
Ranges follow Xen: ``XEN_SYSCTL_CSCHED_TSLICE_MIN/MAX`` = 1..1000 ms,
``XEN_SYSCTL_SCHED_RATELIMIT_MIN/MAX`` = 100..500000 us (0 disables rate limiting),
``XEN_SYSCTL_CSCHED_MGR_DLY_MAX_US`` = 100 ms, ``XEN_SYSCTL_CSCHED_LB_RATE_MAX_US`` = 1 s
(``xen/include/public/sysctl.h``); weight 1..65535 and cap in % of one pCPU
(``xen/common/sched/credit.c``, ``credit2.c``, ``docs/man/xl.cfg.5.pod.in``); RTDS minimum period
and budget 10 us (``xen/common/sched/rt.c``). BVT defaults from ``xen/common/sched_bvt.c`` @
``db51cd09d3^``. Each key has a scope: ``global`` (``xl sched-* -s``), ``domain`` (``xl sched-* -d``)
or ``vcpu`` (``xl sched-rtds -v``).
"""

from __future__ import annotations

from pvsim.core.errors import ScenarioError
from pvsim.core.schema import suggest

# key -> (kind, lo, hi, default, scope); kind in int|bool|choice (lo = choices for choice)
_W = ("int", 1, 65535, 256, "domain")
_CAP = ("int", 0, None, 0, "domain")  # hi = 100 * n_pcpus
SCHEMAS: dict[str, dict[str, tuple]] = {
    "rr": {
        "tslice_ms": ("int", 1, 1000, 10, "global"),
        "weight": _W, "cap": _CAP,
    },
    "credit": {
        "tslice_ms": ("int", 1, 1000, 30, "global"),
        "ratelimit_us": ("rl", 100, 500000, 1000, "global"),
        "vcpu_migr_delay_us": ("int", 0, 100000, 0, "global"),
        "load_balance_ratelimit_us": ("int", 0, 1000000, 1000, "global"),
        "charging": ("choice", ("exact", "sampled"), None, "exact", "global"),
        "tickle_one_idle": ("bool", None, None, True, "global"),
        "weight": _W, "cap": _CAP,
    },
    "credit2": {
        "ratelimit_us": ("rl", 100, 500000, 1000, "global"),
        "runqueue": ("choice", ("cpu", "core", "socket", "node", "all"), None, "socket", "global"),
        "cpus_per_socket": ("int", 0, 4096, 0, "global"),  # 0 = all pCPUs on one socket
        "threads_per_core": ("int", 1, 8, 1, "global"),
        "max_cpus_runqueue": ("int", 1, 4096, 16, "global"),
        "migrate_resist_us": ("int", 0, 100000, 500, "global"),
        "weight": _W, "cap": _CAP,
    },
    "rtds": {
        "period_us": ("int", 10, 10_000_000, 10000, "vcpu"),
        "budget_us": ("int", 10, 10_000_000, 4000, "vcpu"),
        "extratime": ("bool", None, None, True, "vcpu"),
        "weight": _W, "cap": _CAP,
    },
    "null": {
        "weight": _W, "cap": _CAP,
    },
    "bvt": {
        "ctx_allow_us": ("int", 10, 1_000_000, 5000, "global"),
        "mcu_advance": ("int", 1, 65535, 10, "domain"),
        "warp_us": ("int", 0, 10_000_000, 0, "domain"),
        "warpl_ms": ("int", 0, 100_000, 2000, "domain"),
        "warpu_ms": ("int", 0, 100_000, 1000, "domain"),
        "warpback": ("bool", None, None, False, "domain"),
        "weight": _W, "cap": _CAP,
    },
}


def _check(name, key, spec, v, fp, n_pcpus):
    kind, lo, hi, _default, _scope = spec
    if kind == "bool":
        if not isinstance(v, bool):
            raise ScenarioError(fp, f"must be true or false, got {v!r}")
        return v
    if kind == "choice":
        if v not in lo:
            raise ScenarioError(fp, f"must be one of {', '.join(lo)}, got {v!r}")
        return v
    if isinstance(v, bool) or not isinstance(v, int):
        raise ScenarioError(fp, f"must be an integer, got {v!r}")
    if key == "cap":
        hi = None if n_pcpus is None else 100 * n_pcpus
        if v < 0 or (hi is not None and v > hi):
            raise ScenarioError(fp, f"must be 0..{hi if hi is not None else '100*n_pcpus'} (% of one pCPU, 0 = no cap), got {v}")
        return v
    if kind == "rl":
        if v != 0 and not (lo <= v <= hi):
            raise ScenarioError(fp, f"must be 0 (off) or {lo}..{hi}, got {v}")
        return v
    if v < lo or (hi is not None and v > hi):
        raise ScenarioError(fp, f"must be {lo}..{hi}, got {v}")
    return v


def validate_sched_params(name: str, params: dict | None, field_prefix: str = "scheduler.params", *,
                          scope: str = "global", n_pcpus: int | None = None, defaults: bool = True,
                          name_field: str = "scheduler.name") -> dict:
    """Validate ``params`` of scheduler ``name``; return them normalised (with defaults of ``scope``).

    Raises :class:`ScenarioError` naming the field, e.g. ``scheduler.params.tslice_ms: must be
    1..1000, got 0``. ``scope`` limits the accepted keys (``global``, ``domain``, ``vcpu``, or
    ``any``); ``n_pcpus`` bounds ``cap`` to ``100 * n_pcpus``.
    """
    if name not in SCHEMAS:
        raise ScenarioError(name_field, f"unknown scheduler {name!r}{suggest(name, SCHEMAS)}; allowed: "
                                        f"{', '.join(SCHEMAS)}")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ScenarioError(field_prefix, f"must be a table of parameters, got {type(params).__name__}")
    schema = SCHEMAS[name]
    allowed = {k: s for k, s in schema.items() if scope == "any" or s[4] == scope
               or (scope == "vcpu" and s[4] == "domain" and k in ("weight", "cap"))}
    out = {}
    for k, v in params.items():
        if k not in allowed:
            raise ScenarioError(f"{field_prefix}.{k}",
                                f"unknown {scope + ' ' if scope != 'any' else ''}parameter of scheduler {name!r}"
                                f"{suggest(k, allowed)}; "
                                f"allowed: {', '.join(sorted(allowed)) or '(none)'}")
        out[k] = _check(name, k, allowed[k], v, f"{field_prefix}.{k}", n_pcpus)
    if defaults:
        for k, s in allowed.items():
            if k not in out and s[4] == scope:
                out[k] = s[3]
    # cross-field rules
    if name == "credit" and "ratelimit_us" in out and "tslice_ms" in out:
        if out["ratelimit_us"] > out["tslice_ms"] * 1000:
            raise ScenarioError(f"{field_prefix}.ratelimit_us",
                                f"must not exceed tslice_ms ({out['tslice_ms']} ms), got {out['ratelimit_us']} us")
    if "budget_us" in out and "period_us" in out and out["budget_us"] > out["period_us"]:
        raise ScenarioError(f"{field_prefix}.budget_us",
                            f"must not exceed period_us ({out['period_us']}), got {out['budget_us']}")
    return out


def sched_param_defaults(name: str, scope: str) -> dict:
    return {k: s[3] for k, s in SCHEMAS[name].items() if s[4] == scope}
