"""Scenarios: a frozen, validated description of simulated hosts and their domains (describe -> build -> run).

A scenario is a TOML file or the same thing built in Python. One host::

    seed = 7
    [host]
    pcpus = 4
    memory_mib = 16384
    profile = "modern"          # bundled name or path to a profile TOML
    disk = { kind = "ssd" }     # the host's physical disk: hdd, ssd (from the profile) or exp
    [scheduler]
    name = "credit"             # Xen's names: credit, credit2, rtds, null, bvt; rr (simple)
    params = { tslice_ms = 30 }
    [run]
    duration_ms = 2000          # or: ops = 10000 (units of work per domain); warmup_ms = 0
    [[domains]]
    name = "web1"
    mode = "pv"                 # pvsim list modes
    vcpus = 2
    memory_mib = 2048
    weight = 512                # 1..65535 (Xen default 256)
    cap = 0                     # % of one pCPU, 0 = none
    cpus = "0-1"                # hard affinity, xl syntax ("all", "0-3,5,^1")
    workload = "web"            # pvsim list workloads, or one defined below
    params = { clients = 32 }   # the workload's parameters
    options = { grant_mode = "copy" }  # kernel, MMU and device-path options (DomainOptions)
    [[timeline]]                # change scheduling parameters at a simulated time
    at_ms = 1000
    domain = "web1"
    weight = 256

Several hosts: ``[[hosts]]`` tables (each with ``name``, ``pcpus``, ``memory_mib``, ``profile``,
``scheduler``, ``disk``) instead of ``[host]``/``[scheduler]``; ``[[links]]`` with
``between = ["h1", "h2"]`` (a host, a storage name or ``"outside"``, the peer beyond the
datacentre), ``rate_mbps``, ``latency_us``, ``mtu``; ``[[storage]]`` (``name``, ``kind`` nfs or
iscsi, ``latency_us``, ``throughput_mbps``, ``iops``) reached over a link; and ``host = "h1"`` and
``disk = "local"`` or a storage name in each domain, and ``net_peer = "h2"`` for a domain whose
network peer is on another host (its traffic crosses the link between them). A host with virtualized domains gets its own
control domain (``Domain-0`` under Xen, ``host`` under the KVM-style mode) unless the scenario
names one. User workloads: ``[[workloads]]`` tables or ``workload_files = ["mine.toml"]``.

The whole description is validated before time 0; the first problem raises
:class:`~pvsim.core.errors.ScenarioError` naming the field path and what is allowed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from guest_kernels.modes import CONTROL_DOMAIN, MODES, missing_hardware
from guest_kernels.oskinds import refusal as os_refusal
from pvsim.core.errors import ScenarioError
from pvsim.core.profile import load_profile
from pvsim.core.schema import unknown, validate
from pvsim.hypervisor.logdirty import pml_refusal
from pvsim.sched.params import validate_sched_params
from pvsim.workloads import DEFAULT as BUILTIN_CATALOGUE
from pvsim.workloads import Catalogue, load_workload_file, parse_workloads

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MAX_VCPUS = 128  # XEN_LEGACY_MAX_VCPUS is 32; HVM guests may have up to 128 in current Xen
MAX_PCPUS = 4096
MAX_SEED = 2**63 - 1
OUTSIDE = "outside"  # the peer beyond the datacentre's network


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_cpulist(spec: str, n_pcpus: int, where: str) -> frozenset[int]:
    """xl's CPU list syntax: ``"all"``, ``"0-3,5,^1"`` (checked against the host's pCPUs first)."""
    if not isinstance(spec, str):
        raise ScenarioError(where, f"must be a CPU list string like \"0-3\", got {spec!r}")
    spec = spec.strip()
    if spec == "all":
        return frozenset(range(n_pcpus))
    out: set[int] = set()
    excl: set[int] = set()
    bad = f"invalid CPU list {spec!r}; use xl syntax like \"all\" or \"0-3,5,^1\""
    for part in spec.split(","):
        part = part.strip()
        target = excl if part.startswith("^") else out
        part = part.lstrip("^")
        try:
            lo, hi = (int(x) for x in part.split("-", 1)) if "-" in part else (int(part), int(part))
        except ValueError:
            raise ScenarioError(where, bad) from None
        if lo > hi or lo < 0:
            raise ScenarioError(where, bad)
        if hi >= n_pcpus:
            raise ScenarioError(where, f"CPU {hi} does not exist; the host has pCPUs 0..{n_pcpus - 1}")
        target.update(range(lo, hi + 1))
    cpus = out - excl
    if not cpus:
        raise ScenarioError(where, f"CPU list {spec!r} selects no pCPU")
    return frozenset(cpus)


# ============================================================================== the description
class SchedulerSpec(_M):
    name: str = "credit"
    params: dict[str, Any] = {}
    # the pCPU dispatcher: "compiled" (pvsim.sched.hk, where the scheduler has a kernel) or "python"
    # (pvsim.sched.runner); both give identical results
    dispatcher: Literal["compiled", "python"] = "compiled"


class DiskSpec(_M):
    """The host's physical disk: its kind (``hdd`` and ``ssd`` take their figures from the profile's
    ``[io]`` section; ``exp`` is an exponential server of ``mean_service_ns``, for queueing checks)."""

    kind: Literal["hdd", "ssd", "exp"] | None = None
    mean_service_ns: float | None = Field(None, gt=0, le=1e10)


OsKind = Literal["linux", "bsd", "solaris", "windows"]  # guest_kernels.modes.OS_KINDS


class HostSpec(_M):
    name: str = "host"
    pcpus: int = Field(1, ge=1, le=MAX_PCPUS)
    os: OsKind = "linux"  # the host kernel's OS (what containers share, what KVM and UML run on)
    bits: Literal[32, 64] = 64
    memory_mib: int = Field(16384, ge=64, le=1 << 24)
    profile: str = "modern"
    scheduler: SchedulerSpec = SchedulerSpec()
    disk: DiskSpec = DiskSpec()

    @field_validator("scheduler", mode="before")
    @classmethod
    def _sched(cls, v):
        return {"name": v} if isinstance(v, str) else v


class LinkSpec(_M):
    name: str = ""
    between: tuple[str, str]
    rate_mbps: float = Field(10000.0, gt=0, le=1e7)
    latency_us: float = Field(5.0, ge=0, le=1e7)
    mtu: int = Field(1500, ge=68, le=65535)


class StorageSpec(_M):
    name: str
    kind: Literal["nfs", "iscsi"] = "nfs"
    latency_us: float = Field(100.0, ge=0, le=1e7)
    throughput_mbps: float = Field(8000.0, gt=0, le=1e7)
    iops: float = Field(100000.0, gt=0, le=1e9)


class RunSpec(_M):
    duration_ms: float | None = Field(None, gt=0, le=3.6e6)
    ops: int | None = Field(None, ge=1, le=10**12)
    warmup_ms: float = Field(0.0, ge=0, le=3.6e6)


class DomainOptions(_M):
    """Options of a domain's kernel, MMU and device paths (unknown keys are refused)."""

    mmu: Literal["structural", "counted"] = "structural"
    batch: int = Field(2048, ge=1, le=1 << 20)  # PV: PTE updates per mmu_update (SOSP'03: 2048)
    shadow_refill_frac: float = Field(1.0, ge=0, le=1)  # counted BT/shadow path: pages re-shadowed
    keep_shadows_on_switch: bool | None = None
    early_unshadow: bool | None = None
    pool_pages: int | None = Field(None, ge=16, le=1 << 22)
    prefetch: int | None = Field(None, ge=0, le=512)
    oos: bool = False
    oos_pages: int = Field(3, ge=1, le=64)
    host_page_size: Literal["4k", "2m", "1g"] | None = None  # HAP: the p2m's leaves (default: the profile's)
    # vCPU placement (pvsim.sched.topology): the guest told the host's LLCs ("host") or a flat
    # topology; vCPU i pinned to the i-th pCPU of ``cpus`` (1:1); ``placement`` = (P cross-LLC
    # wake-up, P cross-LLC migration) per wake-up, computed by the builder from those and the host
    topology: Literal["host", "flat"] = "flat"
    pin_vcpus: bool = False
    placement: tuple[float, float] = (0.0, 0.0)
    grant_mode: Literal["copy", "map", "persistent"] = "copy"  # netback data movement
    persistent: bool = False  # blkback persistent grants
    indirect: bool = False  # blkif indirect descriptors
    ring_pages: int = Field(1, ge=1, le=16)  # blkif multi-page ring
    emulated_disk: Literal["ide", "ahci"] = "ide"
    container_net: Literal["host", "bridge", "nat"] = "bridge"  # a container's network (docker --net)
    netback_rx: Literal["copy", "flip"] | None = None  # netback receive; None: the profile's era default

    KERNEL: ClassVar[tuple] = ("batch", "shadow_refill_frac", "placement", "container_net")
    MMU: ClassVar[tuple] = ("early_unshadow", "pool_pages", "prefetch", "keep_shadows_on_switch", "oos", "oos_pages",
                            "host_page_size")

    def kernel_options(self) -> dict:
        return {"batch": self.batch, "shadow_refill_frac": self.shadow_refill_frac, "placement": self.placement,
                "container_net": self.container_net}

    def mmu_options(self) -> dict:
        return {k: getattr(self, k) for k in self.MMU if getattr(self, k) is not None}

    def pricing_key(self) -> tuple:
        """What a price of this domain's actions depends on (kernel and MMU options)."""
        return (self.mmu,) + tuple((k, getattr(self, k)) for k in self.KERNEL + self.MMU)


class ProcessSpec(_M):
    """One process of a multi-process native OS (``[[domains]]`` ``processes``): its workload, its
    tasks (``threads``: runnable entities of the kernel's scheduler) and its share (``weight``, the
    scheduler's weight standing in for a nice level)."""

    name: str
    workload: str
    params: dict[str, int | float | str] = {}
    threads: int = Field(1, ge=1, le=MAX_VCPUS)
    weight: int = Field(256, ge=1, le=65535)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or len(v) > 32 or "." in v or any(c.isspace() for c in v):
            raise ValueError("must be 1..32 characters without spaces or dots")
        return v


class DomainSpec(_M):
    name: str
    mode: str
    workload: str = "cpu-int"
    params: dict[str, int | float | str] = {}
    vcpus: int = Field(1, ge=1, le=MAX_VCPUS)
    memory_mib: int = Field(1024, ge=16, le=1 << 24)
    weight: int = Field(256, ge=1, le=65535)
    cap: int = Field(0, ge=0)
    cpus: str = "all"
    options: DomainOptions = DomainOptions()
    sched: dict[str, Any] = {}
    host: str = ""
    disk: str = "local"
    # the host its network peer sits on: its traffic then crosses the link between the hosts, one flow
    # sharing it with migrations and other streams (pvsim.io.flows); "" = the peer beyond "outside"
    net_peer: str = ""
    os: OsKind = "linux"  # the guest's OS kind (guest_kernels.oskinds)
    bits: Literal[32, 64] | None = None  # None: the mode's own width
    processes: list[ProcessSpec] = []  # a bare-metal OS running several workloads as its processes
    process_of: str = ""  # set by the expansion: the OS this process runs on

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or len(v) > 64:
            raise ValueError("must be 1..64 characters")
        return v

    @property
    def sched_params(self) -> dict:
        return dict(self.sched)


@dataclass(frozen=True)
class TimelineEntry:
    at_ms: float
    domain: str = ""
    host: str = ""
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    hosts: tuple[HostSpec, ...]
    domains: tuple[DomainSpec, ...]
    run: RunSpec = RunSpec(duration_ms=1000.0)
    seed: int = 0
    timeline: tuple[TimelineEntry, ...] = ()
    links: tuple[LinkSpec, ...] = ()
    storage: tuple[StorageSpec, ...] = ()
    catalogue: Catalogue = BUILTIN_CATALOGUE
    name: str = "scenario"
    single_host: bool = True  # written with [host]/[scheduler] (field paths say host.*, scheduler.*)
    migrations: tuple = ()  # [[migrations]] tables as written; checked and run by pvsim.migrate.live
    failures: tuple = ()  # [[failures]] tables as written; checked and run by pvsim.ha.failover
    ha: tuple = ()  # the [ha] table's (key, value) pairs as written (heartbeat, reserve): pvsim.ha.failover

    # ------------------------------------------------------------------ conveniences
    @property
    def host(self) -> HostSpec:
        """The first (for a one-host scenario: the) host."""
        return self.hosts[0]

    @property
    def duration_ms(self) -> float | None:
        return self.run.duration_ms

    @property
    def ops(self) -> int | None:
        return self.run.ops

    def host_named(self, name: str) -> HostSpec:
        return next(h for h in self.hosts if h.name == name)

    def host_of(self, d: DomainSpec) -> HostSpec:
        return self.host_named(d.host)

    def domains_on(self, host: str) -> list[DomainSpec]:
        return [d for d in self.domains if d.host == host]

    def with_seed(self, seed: int) -> "Scenario":
        _check_seed(seed, "--seed")
        return replace(self, seed=int(seed))

    def with_run(self, **kw) -> "Scenario":
        return replace(self, run=RunSpec(**{**self.run.model_dump(), **kw}))

    def host_path(self, i: int) -> str:
        return "host" if self.single_host else f"hosts[{i}]"

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_toml(cls, path: str | Path) -> "Scenario":
        p = Path(path)
        if not p.exists():
            raise ScenarioError("scenario", f"file {str(path)!r} does not exist")
        if not p.is_file():
            raise ScenarioError("scenario", f"{str(path)!r} is not a file")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ScenarioError("scenario", f"{path}: not a UTF-8 text file") from None
        except tomllib.TOMLDecodeError as e:
            raise ScenarioError("scenario", f"{path}: invalid TOML ({e})") from None
        except OSError as e:
            raise ScenarioError("scenario", f"{path}: cannot be read ({e.strerror})") from None
        return cls.from_dict(data, name=p.stem, base_dir=p.parent)

    @classmethod
    def from_dict(cls, data: dict, name: str = "scenario", base_dir: str | Path | None = None) -> "Scenario":
        if not isinstance(data, dict):
            raise ScenarioError("scenario", "must be a table")
        top = {"seed", "host", "hosts", "scheduler", "run", "domains", "timeline", "name", "links", "storage",
               "workloads", "workload_files", "migrations", "failures", "ha"}
        for k in data:
            if k not in top:
                raise unknown("scenario", k, top)
        seed = data.get("seed", 0)
        _check_seed(seed, "seed")
        catalogue = BUILTIN_CATALOGUE
        specs = []
        if "workloads" in data:
            specs += parse_workloads(data["workloads"], "workloads")
        files = data.get("workload_files", [])
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise ScenarioError("workload_files", "must be a list of file paths")
        for i, f in enumerate(files):
            fp = Path(f) if base_dir is None or Path(f).is_absolute() else Path(base_dir) / f
            specs += load_workload_file(fp, f"workload_files[{i}]")
        if specs:
            catalogue = Catalogue(tuple(specs))
        hosts, single = _parse_hosts(data)
        run = validate(RunSpec, data.get("run", {}), "run") if isinstance(data.get("run", {}), dict) else None
        if run is None:
            raise ScenarioError("run", "must be a table")
        if run.duration_ms is not None and run.ops is not None:
            raise ScenarioError("run", "give duration_ms or ops, not both")
        if run.duration_ms is None and run.ops is None:
            run = RunSpec(duration_ms=1000.0, warmup_ms=run.warmup_ms)
        if run.duration_ms is not None and run.warmup_ms >= run.duration_ms:
            raise ScenarioError("run.warmup_ms", f"must be shorter than duration_ms ({run.duration_ms:g})")
        doms_raw = data.get("domains")
        if not isinstance(doms_raw, list) or not doms_raw:
            raise ScenarioError("domains", "must be a non-empty array of tables ([[domains]])")
        doms = []
        for i, d in enumerate(doms_raw):
            if not isinstance(d, dict):
                raise ScenarioError(f"domains[{i}]", "must be a table")
            dd = dict(d)
            if "host" not in dd:
                dd["host"] = hosts[0].name if len(hosts) == 1 else ""
            ds = validate(DomainSpec, dd, f"domains[{i}]")
            doms += _expand_processes(ds, f"domains[{i}]", catalogue) if ds.processes else [ds]
        links = tuple(validate(LinkSpec, x, f"links[{i}]") for i, x in enumerate(_array(data, "links")))
        storage = tuple(validate(StorageSpec, x, f"storage[{i}]") for i, x in enumerate(_array(data, "storage")))
        timeline = tuple(_parse_timeline(t, i) for i, t in enumerate(_array(data, "timeline")))
        sc = cls(hosts, tuple(doms), run, int(seed), timeline, links, storage, catalogue,
                 str(data.get("name", name)), single, tuple(_array(data, "migrations")),
                 tuple(_array(data, "failures")), _table(data, "ha"))
        sc.validate()
        return sc

    def processes_of(self, os_name: str) -> list[DomainSpec]:
        """The processes of the multi-process native OS ``os_name`` (empty if it is not one)."""
        return [d for d in self.domains if d.process_of == os_name]

    # ------------------------------------------------------------------ validation
    def validate(self) -> "Scenario":
        host_names = [h.name for h in self.hosts]
        if len(set(host_names)) != len(host_names):
            raise ScenarioError("hosts", "host names must be unique")
        storage_names = [s.name for s in self.storage]
        if len(set(storage_names)) != len(storage_names) or set(storage_names) & set(host_names):
            raise ScenarioError("storage", "storage names must be unique and differ from host names")
        profiles = {}
        for i, h in enumerate(self.hosts):
            hp = self.host_path(i)
            profiles[h.name] = prof = load_profile(h.profile, field_name=f"{hp}.profile")
            bad_pml = pml_refusal(prof)
            if bad_pml:
                raise ScenarioError(f"{hp}.profile", bad_pml)
            sp = "scheduler" if self.single_host else f"{hp}.scheduler"
            validate_sched_params(h.scheduler.name, h.scheduler.params, f"{sp}.params", n_pcpus=h.pcpus,
                                  name_field=f"{sp}.name")
            if h.disk.kind == "exp" and h.disk.mean_service_ns is None:
                raise ScenarioError(f"{hp}.disk.mean_service_ns", "required for an exponential disk")
            del prof
        for i, link in enumerate(self.links):
            for end in link.between:
                if end not in host_names and end not in storage_names and end != OUTSIDE:
                    raise unknown(f"links[{i}].between", end, [*host_names, *storage_names, OUTSIDE], what="end")
            if link.between[0] == link.between[1]:
                raise ScenarioError(f"links[{i}].between", "a link joins two different ends")
        names: set[str] = set()
        per_host: dict[str, list] = {h: [] for h in host_names}
        for i, d in enumerate(self.domains):
            where = f"domains[{i}]"
            if not d.host:
                raise ScenarioError(f"{where}.host", f"required with several hosts; one of {', '.join(host_names)}")
            if d.host not in host_names:
                raise unknown(f"{where}.host", d.host, host_names, what="host")
            control = d.name in {c[0] for c in CONTROL_DOMAIN.values()}
            key = (d.host, d.name) if control else d.name
            if key in names:
                raise ScenarioError(f"{where}.name", f"duplicate domain name {d.name!r}")
            names.add(key)
            if d.mode not in MODES:
                raise unknown(f"{where}.mode", d.mode, MODES, what="mode")
            h = self.host_of(d)
            prof = profiles[d.host]
            lack = missing_hardware(MODES[d.mode], prof.has("hvm.vmexit_cycles"), _has_hap(prof))
            if lack:
                raise ScenarioError(f"{where}.mode", f"mode {d.mode!r} needs {lack}, which profile {prof.name!r} lacks")
            bad = os_refusal(MODES[d.mode], d.os, d.bits, h.os, h.bits, prof)
            if bad:
                raise ScenarioError(f"{where}.{bad[0]}", bad[1])
            if d.workload not in self.catalogue:
                raise unknown(f"{where}.workload", d.workload, self.catalogue.names(), what="workload")
            self.catalogue.resolve(d.workload, d.params, f"{where}.workload")
            if d.cap > 100 * h.pcpus:
                raise ScenarioError(f"{where}.cap", f"must be 0..{100 * h.pcpus} (% of one pCPU), got {d.cap}")
            parse_cpulist(d.cpus, h.pcpus, f"{where}.cpus")
            if d.sched:
                validate_sched_params(h.scheduler.name, d.sched, f"{where}.sched", scope="any", n_pcpus=h.pcpus,
                                      defaults=False)
            if d.disk != "local":
                if d.disk not in storage_names:
                    raise unknown(f"{where}.disk", d.disk, ["local", *storage_names], what="disk")
                if not self.link_between(d.host, d.disk):
                    raise ScenarioError(f"{where}.disk", f"storage {d.disk!r} is not linked to host {d.host!r}; "
                                                         "add [[links]] between them")
            if d.net_peer:
                if d.net_peer not in host_names:
                    raise unknown(f"{where}.net_peer", d.net_peer, host_names, what="host")
                if d.net_peer == d.host:
                    raise ScenarioError(f"{where}.net_peer", f"must be another host than the domain's own ({d.host!r})")
                if not self.link_between(d.host, d.net_peer):
                    raise ScenarioError(f"{where}.net_peer", f"no link joins {d.host!r} and {d.net_peer!r}; "
                                                             "add [[links]] between them")
            per_host[d.host].append(d)
        for hname, doms in per_host.items():
            h = self.host_named(hname)
            hi = host_names.index(hname)
            total = sum(d.memory_mib for d in doms)
            if total > h.memory_mib:
                raise ScenarioError("domains" if self.single_host else f"hosts[{hi}].memory_mib",
                                    f"total domain memory_mib {total} exceeds {self.host_path(hi)}.memory_mib "
                                    f"{h.memory_mib}")
            kinds = {MODES[d.mode].control for d in doms} - {None}
            ctl_names = {CONTROL_DOMAIN[k][0] for k in kinds}
            doms = [d for d in doms if d.name not in ctl_names]  # a named control domain is not a guest
            specs = [MODES[d.mode] for d in doms]
            if any(s.sole for s in specs) and len({d.process_of or d.name for d in doms}) > 1:
                raise ScenarioError("domains", f"a bare-metal ('native') domain must be the only domain on host {hname!r}")
            if any(s.shares_host_kernel for s in specs) and not all(s.shares_host_kernel for s in specs):
                raise ScenarioError("domains", "containers share one host kernel and cannot be mixed with "
                                               f"virtualized domains (host {hname!r})")
            controls = {s.control for s in specs if s.control is not None}
            if len(controls) > 1:
                raise ScenarioError("domains", f"host {hname!r} mixes modes of different hypervisors "
                                               f"({', '.join(sorted(controls))}); put them on separate hosts")
        dom_names = {d.name for d in self.domains}
        for i, t in enumerate(self.timeline):
            where = f"timeline[{i}]"
            params = {k: v for k, v in t.params.items() if k != "cpus"}
            if t.domain:
                if t.domain not in dom_names:
                    raise unknown(f"{where}.domain", t.domain, sorted(dom_names), what="domain")
                d = next(d for d in self.domains if d.name == t.domain)
                h = self.host_of(d)
                validate_sched_params(h.scheduler.name, params, where, scope="any", n_pcpus=h.pcpus, defaults=False)
                if "cpus" in t.params:
                    parse_cpulist(t.params["cpus"], h.pcpus, f"{where}.cpus")
            else:
                if "cpus" in t.params:
                    raise ScenarioError(f"{where}.cpus", "pinning needs a domain")
                hn = t.host or host_names[0]
                if hn not in host_names:
                    raise unknown(f"{where}.host", hn, host_names, what="host")
                h = self.host_named(hn)
                validate_sched_params(h.scheduler.name, params, where, scope="global", n_pcpus=h.pcpus,
                                      defaults=False)
            if self.run.duration_ms is not None and t.at_ms > self.run.duration_ms:
                raise ScenarioError(f"{where}.at_ms", f"is after the end of the run ({self.run.duration_ms:g} ms)")
        return self

    def link_between(self, a: str, b: str) -> LinkSpec | None:
        for link in self.links:
            if set(link.between) == {a, b}:
                return link
        return None


def _has_hap(prof) -> bool:
    return not (prof.has("hvm.hap_available_count") and prof.value("hvm.hap_available_count") < 1) \
        and prof.has("hvm.vmexit_cycles")


def _check_seed(seed, where: str) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ScenarioError(where, f"must be an integer 0..{MAX_SEED}, got {seed!r}")


def _table(data: dict, key: str) -> tuple:
    v = data.get(key, {})
    if not isinstance(v, dict):
        raise ScenarioError(key, f"must be a table ([{key}])")
    return tuple(v.items())


def _array(data: dict, key: str) -> list:
    v = data.get(key, [])
    if not isinstance(v, list):
        raise ScenarioError(key, f"must be an array of tables ([[{key}]])")
    for i, x in enumerate(v):
        if not isinstance(x, dict):
            raise ScenarioError(f"{key}[{i}]", "must be a table")
    return v


def _parse_hosts(data: dict) -> tuple[tuple[HostSpec, ...], bool]:
    if "hosts" in data:
        if "host" in data or "scheduler" in data:
            raise ScenarioError("hosts", "give [[hosts]] (each with its scheduler) or [host]/[scheduler], not both")
        raw = _array(data, "hosts")
        if not raw:
            raise ScenarioError("hosts", "must name at least one host")
        return tuple(validate(HostSpec, h, f"hosts[{i}]") for i, h in enumerate(raw)), False
    h = data.get("host", {})
    if not isinstance(h, dict):
        raise ScenarioError("host", "must be a table")
    if "scheduler" in h:
        raise unknown("host", "scheduler", HostSpec.model_fields.keys() - {"scheduler"})
    s = data.get("scheduler", {})
    if isinstance(s, str):
        s = {"name": s}
    if not isinstance(s, dict):
        raise ScenarioError("scheduler", "must be a table or a scheduler name")
    sched = validate(SchedulerSpec, s, "scheduler")
    host = validate(HostSpec, dict(h), "host")
    return (host.model_copy(update={"scheduler": sched}),), True


def _parse_timeline(t: dict, i: int) -> TimelineEntry:
    where = f"timeline[{i}]"
    at = t.get("at_ms")
    if at is None:
        raise ScenarioError(f"{where}.at_ms", "required")
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not 0 <= at <= 3.6e6:
        raise ScenarioError(f"{where}.at_ms", f"must be a number 0..3600000, got {at!r}")
    dom = t.get("domain", "")
    host = t.get("host", "")
    if not isinstance(dom, str) or not isinstance(host, str):
        raise ScenarioError(where, "domain and host are names (strings)")
    params = {k: v for k, v in t.items() if k not in ("at_ms", "domain", "host")}
    if not params:
        raise ScenarioError(where, "changes nothing: give scheduler parameters (weight, cap, cpus, ...)")
    return TimelineEntry(float(at), dom, host, params)


def _expand_processes(d: DomainSpec, where: str, catalogue) -> list[DomainSpec]:
    """A native OS with ``processes``: one entry per process, ``<os>.<process>``, each a set of tasks of
    the one kernel (its scheduler is the host's dispatcher; its disk queue is the host's disk), the OS's
    memory split evenly between them."""
    if d.mode not in MODES:
        raise unknown(f"{where}.mode", d.mode, MODES, what="mode")
    if not MODES[d.mode].sole:
        raise ScenarioError(f"{where}.processes", f"only a bare-metal OS runs workloads as its processes; "
                                                  f"mode {d.mode!r} is not one (use one domain per workload)")
    names = [p.name for p in d.processes]
    if len(set(names)) != len(names):
        raise ScenarioError(f"{where}.processes", "process names must be unique")
    out = []
    mem = max(16, d.memory_mib // len(d.processes))
    for k, p in enumerate(d.processes):
        if p.workload not in catalogue:
            raise unknown(f"{where}.processes[{k}].workload", p.workload, catalogue.names(), what="workload")
        out.append(d.model_copy(update={"name": f"{d.name}.{p.name}", "workload": p.workload, "params": dict(p.params),
                                        "vcpus": p.threads, "memory_mib": mem, "weight": p.weight,
                                        "processes": [], "process_of": d.name}))
    return out
