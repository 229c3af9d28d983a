"""Rows of the xl views (for ``--json`` / ``--csv``): the same figures the text tables print.

Design note
-----------
One row per line of ``xl list`` (``tools/xl/xl_info.c``), ``xl vcpu-list`` (``xl_vcpu.c``),
``xl sched-credit`` / ``sched-credit2`` / ``sched-rtds`` (``xl_sched.c``), ``xl info``
(``xl_info.c`` ``output_physinfo`` / ``output_xeninfo``: ``nr_cpus``, ``total_memory``,
``xen_caps``, ``xen_scheduler``) and ``xentop -b`` (``tools/xentop/xentop.c``: per domain ``CPU(sec)``
and ``CPU(%)`` over each interval), taken from the run's dispatcher at the end of the run (or at
each interval's end for ``top``).

Simplifications: ``xen_caps`` lists the x86-64 capabilities the host's modes use (``xen-3.0-x86_64
hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64``); free memory is total less the domains' memory.
"""

from __future__ import annotations

from hypercalls.ops import RUNSTATE_running
from pvsim.sched.xl import cpulist

NS = 1e9
XEN_CAPS = "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64"


def _state(units) -> str:
    running = any(u.is_running for u in units)
    done = all(u.done for u in units)
    blocked = not running and all(u.blocked or u.done for u in units) and not done
    paused = not running and any(u.pause_count for u in units) and not blocked
    return ("r" if running else "-") + ("b" if blocked else "-") + ("p" if paused else "-") + \
        ("s" if done else "-") + "--"


def _doms(r, domids):
    return [(i, r.domains[i]) for i in sorted(r.domains) if not domids or i in domids]


def list_rows(r, mem, domids=None) -> list[dict]:
    now = r.now
    return [{"name": d.name, "id": i, "mem_mib": int(mem.get(i, 0)), "vcpus": sum(1 for u in d.units if not u.done),
             "state": _state(d.units),
             "time_s": sum(r.runstate_ns(u, now)[RUNSTATE_running] for u in d.units) / NS} for i, d in _doms(r, domids)]


def vcpu_rows(r, domids=None) -> list[dict]:
    now, n = r.now, r.n_pcpus
    out = []
    for i, d in _doms(r, domids):
        for u in sorted(d.units, key=lambda x: x.vcpu_id):
            st = "--p" if u.done else ("r" if u.is_running else "-") + ("b" if u.blocked else "-") + "-"
            out.append({"name": d.name, "id": i, "vcpu": u.vcpu_id, "cpu": None if u.done else u.cpu, "state": st,
                        "time_s": r.runstate_ns(u, now)[RUNSTATE_running] / NS, "hard": cpulist(u.hard, n),
                        "soft": cpulist(u.soft, n) if u.soft is not None else "all"})
    return out


def sched_rows(r, domids=None) -> list[dict]:
    g = r.sched.global_info()
    return [{"pool": "Pool-0", "scheduler": r.sched.name, **{k: v for k, v in g.items()}, "name": d.name, "id": i,
             "weight": d.weight, "cap": d.cap} for i, d in _doms(r, domids)]


def rtds_rows(r, domids=None) -> list[dict]:
    out = []
    for i, d in _doms(r, domids):
        for u in sorted(d.units, key=lambda x: x.vcpu_id):
            if u.priv is not None:
                out.append({"name": d.name, "id": i, "vcpu": u.vcpu_id, **r.sched.unit_info(u)})
    return out


def info_rows(system) -> list[dict]:
    out = []
    for h in system.hosts:
        used = sum(d.spec.memory_mib for d in h.domains)
        out.append({"host": h.name, "nr_cpus": h.spec.pcpus, "nr_nodes": 1, "cores_per_socket": h.spec.pcpus,
                    "threads_per_core": 1, "cpu_mhz": int(round(h.profile.clock_ghz * 1000)),
                    "total_memory": h.spec.memory_mib, "free_memory": max(0, h.spec.memory_mib - used),
                    "xen_caps": XEN_CAPS, "xen_scheduler": h.spec.scheduler.name, "profile": h.profile.name,
                    "nr_domains": len(h.domains)})
    return out


def info_text(rows) -> str:
    lines = []
    for row in rows:
        for k, v in row.items():
            lines.append(f"{k:<23s}: {v}")
    return "\n".join(lines)


class Top:
    """``xentop -b``: samples each domain's CPU time at the end of every interval of the run."""

    def __init__(self, r, interval_ns: int):
        self.r = r
        self.interval_ns = int(interval_ns)
        self.rows: list[dict] = []
        self._last: dict[int, int] = {}
        self._t = 0

    def sample(self) -> None:
        r = self.r
        now = r.now
        r.sync()
        el = max(1, now - self._t)
        for i, d in sorted(r.domains.items()):
            cpu = sum(r.runstate_ns(u, now)[RUNSTATE_running] for u in d.units)
            self.rows.append({"time_ms": now / 1e6, "name": d.name, "id": i, "state": _state(d.units),
                              "cpu_s": cpu / NS, "cpu_pct": 100.0 * (cpu - self._last.get(i, 0)) / el,
                              "vcpus": len(d.units)})
            self._last[i] = cpu
        self._t = now

    def text(self) -> str:
        lines = []
        t = None
        for row in self.rows:
            if row["time_ms"] != t:
                t = row["time_ms"]
                lines.append(f"{'NAME':>10s}  STATE   CPU(sec) CPU(%)  VCPUS   (t = {t:.1f} ms)")
            lines.append(f"{row['name'][:10]:>10s} {row['state']:>6s} {row['cpu_s']:10.3f} {row['cpu_pct']:6.1f} "
                         f"{row['vcpus']:6d}")
        return "\n".join(lines)
