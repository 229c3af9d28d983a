"""A Perfetto timeline of a run: the Chrome JSON trace format, streamed from the trace bus.

Design note
-----------
Writes the Trace Event Format of Chromium (``docs/trace_event_format`` of the catapult project),
which the Perfetto UI (ui.perfetto.dev) and ``chrome://tracing`` open as they are: one JSON
object ``{"displayTimeUnit": "ns", "traceEvents": [...]}``, written event by event with the
standard ``json`` module so that a long run never holds its timeline in memory. Tracks:

* process ``Xen (pCPUs)``: a thread per pCPU whose slices name the vCPU that ran
  (``TRC_SCHED_SWITCH``);
* a process per domain: a thread per vCPU whose slices are its runstates
  (``TRC_SCHED_RUNSTATE_CHANGE``), with hypercalls, traps, grant operations and event-channel
  sends as instants on the vCPU the pCPU ran, and VM exits as slices of their handling time;
* counters: requests in flight on each ring (pvsim's ring-notify record), the active vCPUs of each
  domain in the credit scheduler's accounting (``TRC_CSCHED_ACCOUNT_START/STOP``), and a migrated
  domain's dirty pages after each pre-copy round;
* a live migration's rounds as slices on a ``migration`` thread of the migrated domain (pvsim's
  ``PVSIM_TRC_MIG_ROUND``: each round's pages, skipped pages and dirty pages in its args), its
  suspend and resume as instants.

A run of several hosts (``hosts``: one entry per host, with its range of pCPU numbers on the bus) is
one file with a process per host for its pCPUs and a process per domain of each host, named with
the host; a record is routed to its host by its pCPU number.

* a counter per vCPU of its credit2 credit, from ``TRC_CSCHED2_CREDIT_BURN`` (``{unit, dom; credit;
  budget; delta}``, as ``burn_credits()`` writes it);
* a counter per vCPU of its credit1 credit, from pvsim's own credit1 records (Xen's credit1 records
  carry no credit value): ``PVSIM_TRC_CSCHED_ACCT_CREDIT`` ``{dom, vcpu, credit, pri}`` per vCPU each
  ``csched_acct`` pass credits, and ``PVSIM_TRC_CSCHED_BURN_CREDIT`` ``{dom, vcpu, credit, burned}`` at
  each ``burn_credits`` that burns a credit (docs/interfaces.md).

Timestamps are microseconds (the format's unit) with nanosecond decimals.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from typing import TextIO

from hypercalls import table as hc_table
from hypercalls.ops import DOMID_IDLE, RUNSTATE_NAMES
from hypercalls.trace import (
    PVSIM_TRC_CSCHED_ACCT_CREDIT,
    PVSIM_TRC_CSCHED_BURN_CREDIT,
    PVSIM_TRC_MIG_ABORT,
    PVSIM_TRC_MIG_RESUME,
    PVSIM_TRC_MIG_ROUND,
    PVSIM_TRC_MIG_SUSPEND,
    TRC_CSCHED2_CREDIT_BURN,
    TRC_CSCHED_ACCOUNT_START,
    TRC_CSCHED_ACCOUNT_STOP,
    TRC_HVM_VMEXIT,
    TRC_MEM_PAGE_GRANT_MAP,
    TRC_MEM_PAGE_GRANT_UNMAP,
    TRC_PV_HYPERCALL_V2,
    TRC_PV_TRAP,
    TRC_SCHED_RUNSTATE_CHANGE,
    TRC_SCHED_SWITCH,
)
from pvsim.core.engine import TraceRecord
from pvsim.trace.events import (
    EXIT_REASON_NAMES,
    PVSIM_TRC_EVTCHN_SEND,
    PVSIM_TRC_RING_NOTIFY,
    RING_KINDS,
    TRAP_NAMES,
)

PCPU_PID = 0
_RS_MASK = ~0xFF0 & 0x0FFFFFFF
_RING_NAMES = {v: k for k, v in RING_KINDS.items()}


def _us(ns: int) -> float:
    return ns / 1000.0


@dataclass(frozen=True)
class HostTracks:
    """One host of a traced run: its name (None: a one-host run), its first pCPU number on the trace
    bus, its pCPU count and its domains ``{domid: (name, n_vcpus)}``."""

    name: str | None
    cpu_base: int
    pcpus: int
    domains: dict


PID_STRIDE = 1 << 16  # a host's pids: its pCPU process, then 1 + domid (a domid is < 0x7FF0)
MIGRATION_TID = 1000  # the migration thread of a migrated domain's process


class ChromeTraceWriter:
    """A trace-bus subscriber writing a Chrome JSON trace to ``fh`` (a text file the caller owns).

    ``pcpus`` is the host's pCPU count, ``domains`` ``{domid: (name, n_vcpus)}``; ``cycles_per_ns``
    converts a VM exit's handling cycles to time. ``hosts`` (a list of :class:`HostTracks`)
    replaces ``pcpus`` and ``domains`` for a run of several hosts."""

    def __init__(self, fh: TextIO, pcpus: int, domains: dict[int, tuple[str, int]], cycles_per_ns: float,
                 hosts: list[HostTracks] | None = None):
        self.fh = fh
        self.ghz = float(cycles_per_ns)
        self.hosts = list(hosts) if hosts else [HostTracks(None, 0, pcpus, dict(domains))]
        self._bases = [h.cpu_base for h in self.hosts]
        self.n = 0
        self._pcpu_open: dict[int, tuple[int, str]] = {}  # cpu -> (start ns, label)
        self._vcpu_open: dict[tuple[int, int, int], tuple[int, str]] = {}  # (host, dom, vcpu)
        self._current: dict[int, tuple[int, int]] = {}
        self._named: set[tuple[int, int]] = set()
        fh.write('{"displayTimeUnit": "ns", "otherData": {"generator": "pvsim"}, "traceEvents": [\n')
        for hi, h in enumerate(self.hosts):
            ppid = hi * PID_STRIDE
            label = "Xen (pCPUs)" if h.name is None else f"Xen {h.name} (pCPUs)"
            self._ev({"ph": "M", "name": "process_name", "pid": ppid, "args": {"name": label}})
            self._ev({"ph": "M", "name": "process_sort_index", "pid": ppid, "args": {"sort_index": ppid}})
            for c in range(h.pcpus):
                self._ev({"ph": "M", "name": "thread_name", "pid": ppid, "tid": c, "args": {"name": f"pCPU {c}"}})
            for domid, (name, nv) in sorted(h.domains.items()):
                self._name_domain(hi, domid, name, nv)

    def _name_domain(self, hi: int, domid: int, name: str, nv: int) -> None:
        self._named.add((hi, domid))
        pid = self._pid(domid, hi)
        host = self.hosts[hi].name
        label = f"{name} (d{domid})" if host is None else f"{name} (d{domid} on {host})"
        self._ev({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": label}})
        self._ev({"ph": "M", "name": "process_sort_index", "pid": pid, "args": {"sort_index": pid}})
        for u in range(nv):
            self._ev({"ph": "M", "name": "thread_name", "pid": pid, "tid": u, "args": {"name": f"vCPU {u}"}})

    def _host(self, cpu: int) -> int:
        return max(0, bisect.bisect_right(self._bases, cpu) - 1)

    @staticmethod
    def _pid(domid: int, hi: int = 0) -> int:
        return hi * PID_STRIDE + 1 + domid

    def _label(self, dom: int, vcpu: int, hi: int = 0) -> str:
        name = self.hosts[hi].domains.get(dom, (f"d{dom}", 0))[0]
        return f"{name} v{vcpu}"

    def _ev(self, e: dict) -> None:
        self.fh.write((",\n" if self.n else "") + json.dumps(e, separators=(",", ":")))
        self.n += 1

    def _slice(self, pid: int, tid: int, start: int, end: int, name: str, cat: str, args=None) -> None:
        e = {"ph": "X", "name": name, "cat": cat, "pid": pid, "tid": tid, "ts": _us(start), "dur": _us(end - start)}
        if args:
            e["args"] = args
        self._ev(e)

    def _instant(self, t: int, cpu: int, name: str, cat: str, args=None) -> None:
        key = self._current.get(cpu)
        hi = self._host(cpu)
        pid, tid = (self._pid(key[0], hi), key[1]) if key is not None else \
            (hi * PID_STRIDE, cpu - self.hosts[hi].cpu_base)
        e = {"ph": "i", "s": "t", "name": name, "cat": cat, "pid": pid, "tid": tid, "ts": _us(t)}
        if args:
            e["args"] = args
        self._ev(e)

    def __call__(self, rec: TraceRecord) -> None:
        ev, t, cpu, w = rec.event, rec.time_ns, rec.pcpu, rec.words
        hi = self._host(cpu)
        if (ev & _RS_MASK) == TRC_SCHED_RUNSTATE_CHANGE:
            key = (hi, w[0] >> 16, w[0] & 0xFFFF)
            new = (ev >> 4) & 0xF
            if (hi, key[1]) not in self._named:  # a domain that arrived during the run (a migration)
                self._name_domain(hi, key[1], f"d{key[1]}", 0)
            op = self._vcpu_open.pop(key, None)
            if op is not None and t > op[0]:
                self._slice(self._pid(key[1], hi), key[2], op[0], t, op[1], "runstate")
            self._vcpu_open[key] = (t, RUNSTATE_NAMES[new])
            if new == 0:
                self._current[cpu] = key[1:]
            elif self._current.get(cpu) == key[1:]:
                del self._current[cpu]
        elif ev == TRC_SCHED_SWITCH:
            op = self._pcpu_open.pop(cpu, None)
            lc = cpu - self.hosts[hi].cpu_base
            if op is not None and t > op[0]:
                self._slice(hi * PID_STRIDE, lc, op[0], t, op[1], "sched")
            nd, nu = w[2], w[3]
            if nd != DOMID_IDLE:
                self._pcpu_open[cpu] = (t, self._label(nd, nu, hi))
                self._current[cpu] = (nd, nu)
            else:
                self._current.pop(cpu, None)
        elif ev == TRC_PV_HYPERCALL_V2:
            nr = w[0] & 0x000FFFFF
            self._instant(t, cpu, f"hypercall {hc_table.name(nr) or nr}", "hypercall", {"nr": nr})
        elif ev == TRC_PV_TRAP:
            self._instant(t, cpu, f"trap {TRAP_NAMES.get(w[0] & 0xFF, w[0] & 0xFF)}", "trap")
        elif ev == TRC_HVM_VMEXIT:
            key = self._current.get(cpu)
            name = f"exit {EXIT_REASON_NAMES.get(w[0], w[0])}"
            cyc = w[3] if len(w) > 3 else 0
            if key is not None and cyc:
                self._slice(self._pid(key[0], hi), key[1], t, t + max(1, int(round(cyc / self.ghz))), name,
                            "vmexit", {"reason": w[0], "cycles": cyc})
            else:
                self._instant(t, cpu, name, "vmexit", {"reason": w[0]})
        elif ev in (TRC_MEM_PAGE_GRANT_MAP, TRC_MEM_PAGE_GRANT_UNMAP):
            op = "map" if ev == TRC_MEM_PAGE_GRANT_MAP else "unmap"
            self._instant(t, cpu, f"grant {op}", "grant", {"granting domain": w[0]})
        elif ev == PVSIM_TRC_EVTCHN_SEND:
            self._instant(t, cpu, "evtchn send", "evtchn", {"dom": w[0], "port": w[1]})
        elif ev == PVSIM_TRC_RING_NOTIFY:
            dom, ring, inflight = w[0], w[1], w[2]
            rn = _RING_NAMES.get(ring, str(ring))
            self._instant(t, cpu, f"{rn} ring notify", "io", {"dom": dom, "in flight": inflight})
            self._ev({"ph": "C", "name": f"{rn} ring requests in flight", "pid": self._pid(dom, hi), "ts": _us(t),
                      "args": {rn: inflight}})
        elif ev in (TRC_CSCHED_ACCOUNT_START, TRC_CSCHED_ACCOUNT_STOP) and len(w) >= 3:
            self._ev({"ph": "C", "name": "credit: active vCPUs", "pid": self._pid(w[0], hi), "ts": _us(t),
                      "args": {"active": w[2]}})
        elif ev == TRC_CSCHED2_CREDIT_BURN and len(w) >= 2:
            credit = w[1] - (1 << 32) if w[1] >= 1 << 31 else w[1]  # an int in Xen's record
            self._ev({"ph": "C", "name": f"credit2 credit v{w[0] & 0xFFFF}", "pid": self._pid(w[0] >> 16, hi),
                      "ts": _us(t), "args": {"credit": credit}})
        elif ev in (PVSIM_TRC_CSCHED_ACCT_CREDIT, PVSIM_TRC_CSCHED_BURN_CREDIT) and len(w) >= 3:
            credit = w[2] - (1 << 32) if w[2] >= 1 << 31 else w[2]  # a signed 32-bit word
            self._ev({"ph": "C", "name": f"credit1 credit v{w[1]}", "pid": self._pid(w[0], hi),
                      "ts": _us(t), "args": {"credit": credit}})
        elif ev == PVSIM_TRC_MIG_ROUND and len(w) >= 7:
            self._migration_round(t, hi, w)
        elif ev in (PVSIM_TRC_MIG_SUSPEND, PVSIM_TRC_MIG_RESUME, PVSIM_TRC_MIG_ABORT):
            name = {PVSIM_TRC_MIG_SUSPEND: "suspend", PVSIM_TRC_MIG_RESUME: "resumed on the target",
                    PVSIM_TRC_MIG_ABORT: "aborted"}[ev]
            args = {"new domid": w[1]} if ev == PVSIM_TRC_MIG_RESUME and len(w) > 1 else None
            self._migration_thread(hi, w[0])
            e = {"ph": "i", "s": "t", "name": f"migration {name}", "cat": "migration", "pid": self._pid(w[0], hi),
                 "tid": MIGRATION_TID, "ts": _us(t)}
            if args:
                e["args"] = args
            self._ev(e)

    def _migration_thread(self, hi: int, dom: int) -> None:
        if ("mig", hi, dom) not in self._named:
            self._named.add(("mig", hi, dom))
            self._ev({"ph": "M", "name": "thread_name", "pid": self._pid(dom, hi), "tid": MIGRATION_TID,
                      "args": {"name": "migration"}})

    def _migration_round(self, t: int, hi: int, w) -> None:
        dom, idx, live = w[0], w[1] & 0x7FFFFFFF, bool(w[1] >> 31)
        ns = w[5] | (w[6] << 32)
        self._migration_thread(hi, dom)
        self._slice(self._pid(dom, hi), MIGRATION_TID, t - ns, t, f"round {idx}" + ("" if live else " (stop-and-copy)"),
                    "migration", {"pages": w[2], "skipped": w[3], "dirty after": w[4], "live": live})
        self._ev({"ph": "C", "name": "migration: dirty pages", "pid": self._pid(dom, hi), "ts": _us(t),
                  "args": {"dirty": w[4]}})

    def close(self, end_ns: int) -> None:
        """End every open slice at ``end_ns`` and close the JSON document."""
        for cpu, (t, label) in sorted(self._pcpu_open.items()):
            if end_ns > t:
                hi = self._host(cpu)
                self._slice(hi * PID_STRIDE, cpu - self.hosts[hi].cpu_base, t, end_ns, label, "sched")
        for key, (t, st) in sorted(self._vcpu_open.items()):
            if end_ns > t:
                self._slice(self._pid(key[1], key[0]), key[2], t, end_ns, st, "runstate")
        self._pcpu_open.clear()
        self._vcpu_open.clear()
        self.fh.write("\n]}\n")
        self.fh.flush()
