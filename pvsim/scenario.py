"""Scenarios: a frozen, validated description of a simulated host (describe -> build -> run).

A scenario is a TOML file or the same thing built in Python::

    seed = 7
    [host]
    pcpus = 4
    memory_mib = 16384
    profile = "modern"          # bundled name or path to a profile TOML
    [scheduler]
    name = "credit"             # Xen's names: credit, credit2, rtds, null, bvt; rr (simple)
    params = { tslice_ms = 30 }
    [run]
    duration_ms = 2000          # or: ops = 10000 (units of work per domain)
    [[domains]]
    name = "web1"
    mode = "pv"                 # native, container, pv, pv32, bt, hvm-shadow, hvm, pvhvm, pvh
    vcpus = 2
    memory_mib = 2048
    weight = 512                # 1..65535 (Xen default 256)
    cap = 0                     # % of one pCPU, 0 = none
    cpus = "0-1"                # hard affinity, xl syntax ("all", "0-3,5,^1")
    workload = "web"
    [[timeline]]                # change scheduling parameters at a simulated time
    at_ms = 1000
    domain = "web1"
    weight = 256

The whole description is validated before time 0; the first problem raises
:class:`~pvsim.errors.ScenarioError` naming the field path and what is allowed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pvsim.errors import ScenarioError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MAX_VCPUS = 128  # XEN_LEGACY_MAX_VCPUS is 32; HVM guests may have up to 128 in current Xen
MAX_PCPUS = 4096


def _check_keys(d: dict, allowed: set[str], where: str) -> None:
    for k in d:
        if k not in allowed:
            raise ScenarioError(f"{where}.{k}" if where else k, f"unknown key; allowed: {', '.join(sorted(allowed))}")


def _int(d: dict, key: str, where: str, lo: int, hi: int, default: Any = None) -> int:
    v = d.get(key, default)
    if v is None:
        raise ScenarioError(f"{where}.{key}", "required")
    if isinstance(v, bool) or not isinstance(v, int):
        raise ScenarioError(f"{where}.{key}", f"must be an integer {lo}..{hi}, got {v!r}")
    if not lo <= v <= hi:
        raise ScenarioError(f"{where}.{key}", f"must be {lo}..{hi}, got {v}")
    return v


def _num(d: dict, key: str, where: str, lo: float, hi: float, default: Any = None) -> float:
    v = d.get(key, default)
    if v is None:
        raise ScenarioError(f"{where}.{key}", "required")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ScenarioError(f"{where}.{key}", f"must be a number {lo}..{hi}, got {v!r}")
    if not lo <= v <= hi:
        raise ScenarioError(f"{where}.{key}", f"must be {lo}..{hi}, got {v}")
    return float(v)


def _str(d: dict, key: str, where: str, allowed=None, default: Any = None) -> str:
    v = d.get(key, default)
    if v is None:
        raise ScenarioError(f"{where}.{key}", "required")
    if not isinstance(v, str):
        raise ScenarioError(f"{where}.{key}", f"must be a string, got {v!r}")
    if allowed is not None and v not in allowed:
        raise ScenarioError(f"{where}.{key}", f"unknown value {v!r}; allowed: {', '.join(sorted(allowed))}")
    return v


def parse_cpulist(spec: str, n_pcpus: int, where: str) -> frozenset[int]:
    """xl's CPU list syntax: ``"all"``, ``"0-3,5,^1"``."""
    spec = spec.strip()
    if spec == "all":
        return frozenset(range(n_pcpus))
    out: set[int] = set()
    excl: set[int] = set()
    try:
        for part in spec.split(","):
            part = part.strip()
            target = excl if part.startswith("^") else out
            part = part.lstrip("^")
            if "-" in part:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if lo > hi:
                    raise ValueError
                target.update(range(lo, hi + 1))
            else:
                target.add(int(part))
    except ValueError:
        raise ScenarioError(where, f"invalid CPU list {spec!r}; use xl syntax like \"all\" or \"0-3,5,^1\"") from None
    cpus = out - excl
    bad = [c for c in cpus if not 0 <= c < n_pcpus]
    if bad:
        raise ScenarioError(where, f"CPU {bad[0]} does not exist; the host has pCPUs 0..{n_pcpus - 1}")
    if not cpus:
        raise ScenarioError(where, f"CPU list {spec!r} selects no pCPU")
    return frozenset(cpus)


@dataclass(frozen=True)
class Host:
    pcpus: int = 1
    memory_mib: int = 16384
    profile: str = "modern"


@dataclass(frozen=True)
class DomainSpec:
    name: str
    mode: str
    workload: str = "cpu-int"
    vcpus: int = 1
    memory_mib: int = 1024
    weight: int = 256
    cap: int = 0
    cpus: str = "all"
    options: dict = field(default_factory=dict)
    sched_params: dict = field(default_factory=dict)  # e.g. rtds period/budget


@dataclass(frozen=True)
class TimelineEntry:
    at_ms: float
    domain: str
    params: dict


@dataclass(frozen=True)
class Scenario:
    domains: tuple[DomainSpec, ...]
    host: Host = Host()
    scheduler: str = "credit"
    scheduler_params: dict = field(default_factory=dict)
    duration_ms: float | None = None
    ops: int | None = None
    seed: int = 0
    timeline: tuple[TimelineEntry, ...] = ()
    name: str = "scenario"

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_toml(cls, path: str | Path) -> "Scenario":
        p = Path(path)
        if not p.exists():
            raise ScenarioError("scenario", f"file {str(path)!r} does not exist")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ScenarioError("scenario", f"{path}: invalid TOML ({e})") from None
        return cls.from_dict(data, name=p.stem)

    @classmethod
    def from_dict(cls, data: dict, name: str = "scenario") -> "Scenario":
        if not isinstance(data, dict):
            raise ScenarioError("scenario", "must be a table")
        _check_keys(data, {"seed", "host", "scheduler", "run", "domains", "timeline", "name"}, "")
        seed = _int(data, "seed", "", 0, 2**63 - 1, default=0) if "seed" in data else 0
        h = data.get("host", {})
        if not isinstance(h, dict):
            raise ScenarioError("host", "must be a table")
        _check_keys(h, {"pcpus", "memory_mib", "profile"}, "host")
        host = Host(
            pcpus=_int(h, "pcpus", "host", 1, MAX_PCPUS, default=1),
            memory_mib=_int(h, "memory_mib", "host", 64, 1 << 24, default=16384),
            profile=_str(h, "profile", "host", default="modern"),
        )
        s = data.get("scheduler", {})
        if isinstance(s, str):
            s = {"name": s}
        if not isinstance(s, dict):
            raise ScenarioError("scheduler", "must be a table or a scheduler name")
        _check_keys(s, {"name", "params"}, "scheduler")
        sched = _str(s, "name", "scheduler", default="credit")
        sparams = s.get("params", {})
        if not isinstance(sparams, dict):
            raise ScenarioError("scheduler.params", "must be a table")
        r = data.get("run", {})
        if not isinstance(r, dict):
            raise ScenarioError("run", "must be a table")
        _check_keys(r, {"duration_ms", "ops"}, "run")
        duration = _num(r, "duration_ms", "run", 0.001, 3.6e6) if "duration_ms" in r else None
        ops = _int(r, "ops", "run", 1, 10**12) if "ops" in r else None
        if duration is None and ops is None:
            duration = 1000.0
        doms_raw = data.get("domains")
        if not isinstance(doms_raw, list) or not doms_raw:
            raise ScenarioError("domains", "must be a non-empty array of tables ([[domains]])")
        doms = tuple(_parse_domain(d, i, host) for i, d in enumerate(doms_raw))
        tl_raw = data.get("timeline", [])
        if not isinstance(tl_raw, list):
            raise ScenarioError("timeline", "must be an array of tables ([[timeline]])")
        timeline = []
        for i, t in enumerate(tl_raw):
            where = f"timeline[{i}]"
            if not isinstance(t, dict):
                raise ScenarioError(where, "must be a table")
            at = _num(t, "at_ms", where, 0, 3.6e6)
            dom = _str(t, "domain", where) if "domain" in t else ""  # no domain: a pool-wide change
            params = {k: v for k, v in t.items() if k not in ("at_ms", "domain")}
            if not params:
                raise ScenarioError(where, "changes nothing: give scheduler parameters (weight, cap, cpus, ...)")
            timeline.append(TimelineEntry(at, dom, params))
        sc = cls(doms, host, sched, dict(sparams), duration, ops, seed, tuple(timeline), str(data.get("name", name)))
        sc.validate()
        return sc

    # ------------------------------------------------------------------ validation
    def validate(self) -> "Scenario":
        from guest_kernels.registry import MODES
        from pvsim.profile import load_profile
        from pvsim.workloads import ALL as ALL_OPS
        from pvsim.workloads import workload_names

        prof = load_profile(self.host.profile, field_name="host.profile")
        names = set()
        total_mem = 0
        modes = set()
        for i, d in enumerate(self.domains):
            where = f"domains[{i}]"
            if d.name in names:
                raise ScenarioError(f"{where}.name", f"duplicate domain name {d.name!r}")
            names.add(d.name)
            if d.mode not in MODES:
                raise ScenarioError(f"{where}.mode", f"unknown mode {d.mode!r}; allowed: {', '.join(MODES)}")
            from pvsim.pricing import check_mode

            check_mode(d.mode, prof, f"{where}.mode")
            if d.workload not in workload_names():
                raise ScenarioError(f"{where}.workload", f"unknown workload {d.workload!r}; see 'pvsim list workloads'")
            if d.workload not in ALL_OPS:
                from pvsim.mm.runner import MM_WORKLOADS

                kind = "memory" if d.workload in MM_WORKLOADS else "split-driver I/O"
                raise ScenarioError(f"{where}.workload", f"{d.workload!r} is a {kind} workload; run it with "
                                                         "'pvsim compare' (scenario files take the op-mix workloads)")
            total_mem += d.memory_mib
            modes.add(d.mode)
        if total_mem > self.host.memory_mib:
            raise ScenarioError(
                "domains", f"total domain memory_mib {total_mem} exceeds host.memory_mib {self.host.memory_mib}"
            )
        if "native" in modes and len(self.domains) > 1:
            raise ScenarioError("domains", "a 'native' domain is the bare-metal OS and must be the only domain")
        if "container" in modes and modes - {"container"}:
            raise ScenarioError("domains", "containers share one host kernel and cannot be mixed with virtualized domains")
        from pvsim.sched import validate_sched_params

        validate_sched_params(self.scheduler, self.scheduler_params, "scheduler.params", n_pcpus=self.host.pcpus)
        for i, d in enumerate(self.domains):
            if d.sched_params:
                validate_sched_params(self.scheduler, d.sched_params, f"domains[{i}].sched", scope="any",
                                      n_pcpus=self.host.pcpus, defaults=False)
        for i, t in enumerate(self.timeline):
            where = f"timeline[{i}]"
            params = {k: v for k, v in t.params.items() if k != "cpus"}
            if t.domain:
                if t.domain not in names:
                    raise ScenarioError(f"{where}.domain", f"no domain named {t.domain!r}")
                validate_sched_params(self.scheduler, params, where, scope="any", n_pcpus=self.host.pcpus,
                                      defaults=False)
                if "cpus" in t.params:
                    if not isinstance(t.params["cpus"], str):
                        raise ScenarioError(f"{where}.cpus", "must be a CPU list string like \"0-3\"")
                    parse_cpulist(t.params["cpus"], self.host.pcpus, f"{where}.cpus")
            else:
                if "cpus" in t.params:
                    raise ScenarioError(f"{where}.cpus", "pinning needs a domain")
                validate_sched_params(self.scheduler, params, where, scope="global", n_pcpus=self.host.pcpus,
                                      defaults=False)
        return self

    def with_seed(self, seed: int) -> "Scenario":
        return replace(self, seed=seed)


def _parse_domain(d: Any, i: int, host: Host) -> DomainSpec:
    where = f"domains[{i}]"
    if not isinstance(d, dict):
        raise ScenarioError(where, "must be a table")
    _check_keys(
        d, {"name", "mode", "workload", "vcpus", "memory_mib", "weight", "cap", "cpus", "options", "sched"}, where
    )
    name = _str(d, "name", where)
    if not name or len(name) > 64:
        raise ScenarioError(f"{where}.name", "must be 1..64 characters")
    vcpus = _int(d, "vcpus", where, 1, MAX_VCPUS, default=1)
    cap_max = 100 * host.pcpus
    cpus = d.get("cpus", "all")
    if not isinstance(cpus, str):
        raise ScenarioError(f"{where}.cpus", f"must be a CPU list string like \"0-3\", got {cpus!r}")
    parse_cpulist(cpus, host.pcpus, f"{where}.cpus")
    opts = d.get("options", {})
    if not isinstance(opts, dict):
        raise ScenarioError(f"{where}.options", "must be a table")
    sp = d.get("sched", {})
    if not isinstance(sp, dict):
        raise ScenarioError(f"{where}.sched", "must be a table")
    return DomainSpec(
        name=name,
        mode=_str(d, "mode", where),
        workload=_str(d, "workload", where, default="cpu-int"),
        vcpus=vcpus,
        memory_mib=_int(d, "memory_mib", where, 16, 1 << 24, default=1024),
        weight=_int(d, "weight", where, 1, 65535, default=256),
        cap=_int(d, "cap", where, 0, cap_max, default=0),
        cpus=cpus,
        options=dict(opts),
        sched_params=dict(sp),
    )
