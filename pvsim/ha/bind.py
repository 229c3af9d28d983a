"""Remus of a scenario's domain: its RAM, vCPUs and mode, its workload's writable working set, the
link to the backup host, checked before time 0 (each problem names its field).

Design note
-----------
Binds :mod:`pvsim.ha.remus` to a :class:`~pvsim.scenario.Scenario` as ``xl remus <dom> <host>``
binds libxl's Remus to a domain (``tools/xl/xl_migrate.c`` ``main_remus``). The guest's outbound
packet rate (``pps``) stands for a network-bound server's responses; its disk writes come from
``disk_mb_per_s`` over a 1 GiB region of its disk; ``colo`` (``xl remus -c``) with a per-packet
``divergence`` runs COLO instead, and its rows come beside Remus's at the same interval. ``fields``
renames the option names errors carry (``pvsim xl remus`` names its arguments DOM and HOST, and
``-i``). Simplification: as for live migration, the
checkpointing runs on its own engine beside the scenario.
"""

from __future__ import annotations

from guest_kernels.modes import CONTROL_DOMAIN, MODES
from pvsim.core.errors import ScenarioError
from pvsim.core.schema import unknown
from pvsim.ha.remus import COLO_DIVERGENCE, Remus, RemusOptions, overhead
from pvsim.migrate.dirty import WriteModel
from pvsim.scenario import Scenario
from pvsim.workloads.spec import WritableSpec

DISK_REGION_MIB = 1024  # the disk region a checkpointed guest writes [assumption]


FIELDS = {"domain": "--domain", "to": "--to", "interval": "--interval-ms"}


def build(sc: Scenario, domain: str, to: str, interval_ms: float, pps: float, disk_mb_per_s: float,
          release_early: bool = False, colo: bool = False, divergence: float = COLO_DIVERGENCE,
          fields: dict | None = None) -> Remus:
    f = {**FIELDS, **(fields or {})}
    names = [d.name for d in sc.domains]
    if domain not in names:
        raise unknown(f["domain"], domain, names, what="domain")
    d = next(x for x in sc.domains if x.name == domain)
    if MODES[d.mode].control != "dom0" or d.name in {c[0] for c in CONTROL_DOMAIN.values()}:
        raise ScenarioError(f["domain"], f"domain {domain!r} (mode {d.mode!r}) is not a Xen guest; xl remus "
                                        "protects Xen domUs")
    hosts = [h.name for h in sc.hosts]
    if to not in hosts:
        raise unknown(f["to"], to, hosts, what="host")
    if to == d.host:
        raise ScenarioError(f["to"], f"the backup must be another host than {d.host!r}")
    link = sc.link_between(d.host, to)
    if link is None:
        raise ScenarioError(f["to"], f"no link joins {d.host!r} and {to!r}; add [[links]] between them")
    if not 1 <= interval_ms <= 60000:
        raise ScenarioError(f["interval"], f"must be 1..60000, got {interval_ms:g}")
    if not 0 <= pps <= 1e7:
        raise ScenarioError("--pps", f"must be 0..10000000, got {pps:g}")
    if not 0 <= disk_mb_per_s <= 1e4:
        raise ScenarioError("--disk-mb-per-s", f"must be 0..10000, got {disk_mb_per_s:g}")
    if not 0 <= divergence <= 1:
        raise ScenarioError("--divergence", f"must be 0..1 (a per-packet probability), got {divergence:g}")
    w = sc.catalogue.resolve(d.workload, d.params).spec.writable
    mem = WriteModel.of(w, d.memory_mib, seed_offset=sc.seed)
    disk = WriteModel.of(WritableSpec(ram_frac=0.25, mb_per_s=disk_mb_per_s), DISK_REGION_MIB,
                         seed_offset=sc.seed + 1)
    opts = RemusOptions(interval_ms=interval_ms, pps=pps, link_mbps=link.rate_mbps, latency_us=link.latency_us,
                        pv=MODES[d.mode].pv_guest, vcpus=d.vcpus,
                        release_early=release_early, keep_snapshots=True, colo=colo, divergence=divergence)
    return Remus(mem, disk, sc.seed, opts)


def curve(sc: Scenario, domain: str, to: str, intervals, pps: float, disk_mb_per_s: float,
          duration_ms: float, colo: bool = False, divergence: float = COLO_DIVERGENCE,
          fields: dict | None = None) -> list[dict]:
    rows = []
    for iv in intervals:
        r = build(sc, domain, to, iv, pps, disk_mb_per_s, fields=fields).run(duration_ms)
        rows.append({"domain": domain, "backup": to, "interval_ms": iv, **overhead(r, pps)})
        if colo:
            c = build(sc, domain, to, iv, pps, disk_mb_per_s, colo=True, divergence=divergence,
                      fields=fields).run(duration_ms)
            rows[-1]["mode"] = "remus"
            rows.append({"domain": domain, "backup": to, "interval_ms": iv, "mode": "colo", **overhead(c, pps)})
    return rows


def failover(sc: Scenario, domain: str, to: str, interval_ms: float, pps: float, disk_mb_per_s: float,
             duration_ms: float, fail_at_ms: float, colo: bool = False, divergence: float = COLO_DIVERGENCE,
             fields: dict | None = None) -> dict:
    if not 0 <= fail_at_ms <= duration_ms:
        raise ScenarioError("--fail-at-ms", f"must be 0..{duration_ms:g} (the run), got {fail_at_ms:g}")
    r = build(sc, domain, to, interval_ms, pps, disk_mb_per_s, colo=colo, divergence=divergence,
              fields=fields).run(duration_ms, fail_at_ms=fail_at_ms)
    seqs = [s for s, _, _ in r.delivered]
    return {"domain": domain, "backup": to, "interval_ms": interval_ms, **({"mode": "colo"} if colo else {}),
            "failed_at_ms": (r.failed_at - r.initial_ns) / 1e6,
            "checkpoint": r.committed, "detect_ms": (r.detect_ns - r.failed_at) / 1e6,
            "downtime_ms": (r.failover_ns - r.failed_at) / 1e6,
            # COLO's secondary ran in lockstep: nothing to redo
            "lost_work_ms": 0.0 if colo else (r.failed_at - r.checkpoints[r.committed].suspend_ns) / 1e6,
            "memory_equal": bool((r.backup_mem == r.primary_mem_at).all()),
            "disk_equal": bool((r.backup_disk == r.primary_disk_at).all()),
            "packets_missing": len(set(range(max(seqs) + 1 if seqs else 0)) - set(seqs)),
            "packets_repeated": len(seqs) - len(set(seqs)),
            "retransmitted": sum(1 for _, _, by in r.delivered if by == "backup-retransmit")}
