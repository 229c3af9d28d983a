"""``make mutants``: single-rule mutants of the shipped code, each run against the tests that should
catch it (a small patch list driven by pytest; mutmut is not a dependency).

Each mutant names a file, a snippet that occurs exactly once in it, its replacement, and the tests
expected to fail. The tree is copied to a temporary folder and every mutant is applied to its own
copy of the one file there, so the working tree is never touched and an interrupted run leaves
nothing behind. A mutant is *caught* when its tests fail (exit status 1); a mutant marked
``equivalent`` carries the reason it cannot change behaviour and is not run. The table printed
is: mutant, file:line, caught by. Exit status 1 if any non-equivalent mutant survives.

    python tools/mutants.py [-j N] [-k SUBSTRING] [--list]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...] = ()
    equivalent: str = ""  # why it cannot be caught (not run)


H = "tests/hardening"
M = [
    # ---------------------------------------------------------------- PV MMU (pvsim/mm)
    Mutant("free_domheap_page ignores the general count", "pvsim/mm/frames.py",
           "if self.count[mfn] != 1 or self.type_count[mfn] != 0", "if self.type_count[mfn] != 0",
           (f"{H}/test_mm_gaps.py",)),
    Mutant("free_domheap_page ignores the owner", "pvsim/mm/frames.py",
           "or self.owner[mfn] != domid or not self.allocated[mfn]", "or not self.allocated[mfn]",
           ("tests/hypercalls/test_hc_memory.py",)),
    Mutant("_normal_update accepts a foreign pg_owner on L2+", "pvsim/mm/pv.py",
           "                    if pg_owner != pt_owner:\n                        return -E.EINVAL\n",
           "", (f"{H}/test_mm_gaps.py",)),
    Mutant("_normal_update skips get_page on the table", "pvsim/mm/pv.py",
           "        if not mm.get_page(mfn, pt_owner):\n            return -E.EINVAL  # \"Could not get page for normal update\"",
           "        if not mm.get_page(mfn, mm.owner[mfn]):\n            return -E.EINVAL",
           ("tests/mm/test_pv_isolation.py",)),
    Mutant("unprivileged caller may name a foreign pg_owner", "pvsim/mm/pv.py",
           "elif not dmm.privileged or fd in (DOMID_IO, DOMID_XEN):", "elif fd in (DOMID_IO, DOMID_XEN):",
           (f"{H}/test_mm_gaps.py", "tests/mm/test_pv_isolation.py")),
    Mutant("SET_LDT nr_ents read signed", "pvsim/mm/pv.py",
           "ents = int(arg2) & 0xFFFFFFFF", "ents = int(arg2)", (f"{H}/test_xen_errnos.py",)),
    Mutant("SET_LDT without __addr_ok", "pvsim/mm/pv.py",
           "not (ptr < (1 << 47) or ptr >= O.HYPERVISOR_VIRT_END) or ", "", (f"{H}/test_xen_errnos.py",)),
    Mutant("SET_LDT ignores a zero nr_ents", "pvsim/mm/pv.py",
           "ptr = (int(arg1) & _U64) if ents else 0", "ptr = int(arg1) & _U64", (f"{H}/test_xen_errnos.py",)),
    # ---------------------------------------------------------------- Numba kernels (pvsim/mm/pvkern.py)
    Mutant("kernel: a foreign target frame accepted", "pvsim/mm/pvkern.py",
           "            if t >= nr or owner[t] != pg_owner or count[t] <= 0:\n                break\n            rw = ",
           "            if t >= nr or count[t] <= 0:\n                break\n            rw = ",
           ("tests/mm/test_pv_isolation.py",)),
    Mutant("kernel: a writable map of a page table accepted", "pvsim/mm/pvkern.py",
           "            if rw and type_count[t] > 0 and typ[t] != WRITABLE:\n                break",
           "            if False:\n                break",
           ("tests/mm/test_pv_isolation.py",)),
    Mutant("kernel: L1 disallowed flags accepted", "pvsim/mm/pvkern.py",
           "            if (v & _L1_DISALLOW) != np.uint64(0):\n                break",
           "            if False:\n                break",
           ("tests/mm/test_pv_isolation.py", "tests/mm/test_pv_advisories.py")),
    Mutant("kernel: old writable mapping keeps its type count", "pvsim/mm/pvkern.py",
           "                if (o & _RW) != np.uint64(0):\n                    type_count[ot] -= 1",
           "                if False:\n                    type_count[ot] -= 1",
           ("tests/mm/test_pv_isolation.py",)),
    # ---------------------------------------------------------------- grants (pvsim/io/gnttab.py)
    Mutant("map_grant_ref: DOMID_SELF resolved", "pvsim/io/gnttab.py",
           "    rd = hv.domains.get(op.dom)\n    if rd is None:\n        op.status = O.GNTST_bad_domain",
           "    rd = _lookup(hv, ld, op.dom)\n    if rd is None:\n        op.status = O.GNTST_bad_domain",
           (f"{H}/test_xen_errnos.py",)),
    Mutant("map_grant_ref: grant for another domain accepted", "pvsim/io/gnttab.py",
           "    if (fl & O.GTF_type_mask) != O.GTF_permit_access or rgt.gdomid[ref] != ld.domid:\n        op.status = O.GNTST_permission_denied\n        return op.status\n    ro =",
           "    if (fl & O.GTF_type_mask) != O.GTF_permit_access:\n        op.status = O.GNTST_permission_denied\n        return op.status\n    ro =",
           ("tests/io/test_io_evtchn_gnttab.py",)),
    Mutant("map_grant_ref: writable map of a read-only grant", "pvsim/io/gnttab.py",
           "if (fl & O.GTF_readonly and not ro) or fl & O.GTF_sub_page:", "if fl & O.GTF_sub_page:",
           ("tests/io/test_io_evtchn_gnttab.py",)),
    Mutant("unmap: GTF_writing kept", "pvsim/io/gnttab.py",
           "            if act.pin_write == 0:\n                rgt.flags[m.ref] &= ~O.GTF_writing",
           "            if False:\n                rgt.flags[m.ref] &= ~O.GTF_writing",
           ("tests/io/test_io_evtchn_gnttab.py", f"{H}/test_xen_errnos.py")),
    Mutant("query_size without XSM_TARGET", "pvsim/io/gnttab.py",
           "    if d is not ld and not ld.privileged:\n        op.status = O.GNTST_permission_denied\n        return op.status\n    gt = gnttab_for(d)\n    op.nr_frames",
           "    gt = gnttab_for(d)\n    op.nr_frames", (f"{H}/test_xen_errnos.py",)),
    Mutant("end_access of a ref not granted frees it", "pvsim/io/gnttab.py",
           "        if not self.flags[ref] & O.GTF_type_mask:\n            return False\n", "",
           (f"{H}/test_xen_errnos.py",)),
    Mutant("re-grant over a mapped ref", "pvsim/io/gnttab.py",
           "elif not (0 <= ref < self.nr_entries) or self.flags[ref] & (O.GTF_reading | O.GTF_writing):",
           "elif not (0 <= ref < self.nr_entries):", (f"{H}/test_xen_errnos.py",)),
    Mutant("grant copy crosses the page", "pvsim/io/gnttab.py",
           "or op.source.offset + ln > PAGE_SIZE or op.dest.offset + ln > PAGE_SIZE):", "):",
           ("tests/io/test_io_evtchn_gnttab.py",)),
    # ---------------------------------------------------------------- event channels (pvsim/io/evtchn.py)
    Mutant("alloc_unbound stores a wide remote_dom", "pvsim/io/evtchn.py",
           "    remote_dom &= 0xFFFF\n", "", (f"{H}/test_xen_errnos.py",)),
    Mutant("close finds the VIRQ by notify_vcpu", "pvsim/io/evtchn.py",
           "        for key in [k for k, p in ed.virq_to_port.items() if p == port]:\n            del ed.virq_to_port[key]",
           "        ed.virq_to_port.pop((ch.notify_vcpu, ch.virq), None)", (f"{H}/test_xen_errnos.py",)),
    Mutant("bind_interdomain to a port not offered to the caller", "pvsim/io/evtchn.py",
           "if rch.state != O.EVTCHNSTAT_unbound or rch.remote_dom != ld.domid:",
           "if rch.state != O.EVTCHNSTAT_unbound:", ("tests/io/test_io_evtchn_gnttab.py",)),
    Mutant("alloc_unbound for another domain unprivileged", "pvsim/io/evtchn.py",
           "    if d is not caller and not caller.privileged:\n        return -E.EPERM\n    ed = evtchn_for(d)\n    port = ed.get_free_port()",
           "    ed = evtchn_for(d)\n    port = ed.get_free_port()", ("tests/io/test_io_evtchn_gnttab.py",)),
    Mutant("bind_virq: a second binding allowed", "pvsim/io/evtchn.py",
           "    if (vcpu, virq) in ed.virq_to_port:\n        return -E.EEXIST\n", "",
           ("tests/io/test_io_evtchn_gnttab.py", "tests/hypercalls/test_hc_core.py")),
    # ---------------------------------------------------------------- rings (pvsim/io/ring.py)
    Mutant("backend final check skips the re-check", "pvsim/io/ring.py",
           "        self.sring.req_event = u32(self.req_cons + 1)\n        return self.has_unconsumed_requests()",
           "        self.sring.req_event = u32(self.req_cons + 1)\n        return 0", ("tests/io/test_io_ring.py",)),
    Mutant("frontend final check skips the re-check", "pvsim/io/ring.py",
           "        self.sring.rsp_event = u32(self.rsp_cons + 1)\n        return self.has_unconsumed_responses()",
           "        self.sring.rsp_event = u32(self.rsp_cons + 1)\n        return 0", ("tests/io/test_io_ring.py",)),
    Mutant("RING_REQUEST_PROD_OVERFLOW off by one", "pvsim/io/ring.py",
           "return u32(prod - self.rsp_prod_pvt) > self.nr_ents", "return u32(prod - self.rsp_prod_pvt) > self.nr_ents + 1",
           ("tests/io/test_io_ring.py", f"{H}/test_ring_bounds.py")),
    Mutant("notify rule inverted", "pvsim/io/ring.py",
           "        s.req_prod = new\n        return u32(new - s.req_event) < u32(new - old)",
           "        s.req_prod = new\n        return u32(new - s.req_event) <= u32(new - old)", ("tests/io/test_io_ring.py",)),
    # ---------------------------------------------------------------- backends (pvsim/io/protocol.py, paths.py)
    Mutant("blkback accepts any operation", "pvsim/io/protocol.py",
           "    if op not in (BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_OP_INDIRECT) or type(op) is not int:",
           "    if False:", (f"{H}/test_hostile_frontend.py::test_malformed_block_request_closes_only_the_hostile_device",)),
    Mutant("blkback: no end-of-device check", "pvsim/io/protocol.py",
           "    if sec + -(-nbytes // SECTOR_BYTES) > capacity_sectors:", "    if False:",
           (f"{H}/test_hostile_frontend.py",)),
    Mutant("blkback: ids not checked in flight", "pvsim/io/protocol.py",
           "    if rid in inflight:", "    if False:", (f"{H}/test_hostile_frontend.py", "tests/io/test_io_hostile.py")),
    Mutant("blkback: nbytes unchecked", "pvsim/io/protocol.py",
           "    if type(nbytes) is not int or not (0 < nbytes <= nseg * PAGE):", "    if type(nbytes) is not int:",
           (f"{H}/test_hostile_frontend.py",)),
    Mutant("blkback ignores the map's return code", "pvsim/io/paths.py",
           "                    if rc != 0:\n                        self.fail(f\"GNTTABOP_map_grant_ref returned {rc}\")",
           "                    if False:\n                        self.fail(f\"GNTTABOP_map_grant_ref returned {rc}\")",
           (f"{H}/test_hostile_frontend.py",)),
    Mutant("blkback ignores grant statuses", "pvsim/io/paths.py",
           "                    if any(m.status != O.GNTST_okay for m in maps):", "                    if False:",
           ("tests/io/test_io_hostile.py",)),
    Mutant("netback: tx size unchecked", "pvsim/io/protocol.py",
           "    if type(size) is not int or not (0 < size <= U16):", "    if type(size) is not int:",
           (f"{H}/test_hostile_frontend.py",)),
    Mutant("netfront ids past 16 bits", "pvsim/io/paths.py",
           "                rid = self.next_id & 0xFFFF  # netif_*_request.id is a uint16_t (netif.h)",
           "                rid = self.next_id", ("tests/io/test_io_workloads.py::test_dom0_weight_matters_under_cpu_bound_neighbours",)),
    # ---------------------------------------------------------------- credit, multicall, memory_op
    Mutant("credit: burned credits not debited", "pvsim/sched/credit.py",
           "        self.credit[u] -= credits\n        self.ledger[\"burned\"] += credits",
           "        self.ledger[\"burned\"] += credits", ("tests/sched/test_sched_credit.py",)),
    Mutant("multicall re-entry allowed", "pvsim/hypervisor/handlers/core.py",
           "    if key in _IN_MULTICALL:\n        return -E.EINVAL", "    if False:\n        return -E.EINVAL",
           ("tests/hypercalls/test_hc_multicall.py",)),
    Mutant("multicall reads past the list", "pvsim/hypervisor/handlers/core.py",
           "or not isinstance(call_list, (list, tuple)) or n > len(call_list):",
           "or not isinstance(call_list, (list, tuple)):", ("tests/hypercalls/test_hc_multicall.py",)),
    Mutant("memory_op: allocation beyond max_pages", "pvsim/hypervisor/handlers/memory.py",
           "    if dom.tot_pages + n > dom.max_pages:", "    if False:", ("tests/hypercalls/test_hc_memory.py",)),
    # ---------------------------------------------------------------- post-copy migration (pvsim/migrate/save.py)
    Mutant("post-copy push skips the first page of each batch", "pvsim/migrate/save.py",
           "batch = buf[:k].copy()", "batch = buf[1:k].copy()", ("tests/migrate/test_nothing_lost.py",)),
    Mutant("post-copy demand fault does not place the page", "pvsim/migrate/save.py",
           "self._deliver(page, where, fetched)  # placed", "where[pfn] = 0  # placed",
           ("tests/migrate/test_nothing_lost.py",)),
    # the drop-final mutant in the shipped code (the drop_final option is its in-test twin)
    Mutant("pre-copy stop-and-copy drops the final dirty set", "pvsim/migrate/save.py",
           "yield from self._send_pages(last, len(out.rounds) + 1, False)",
           "yield from self._send_pages(last[:0], len(out.rounds) + 1, False)",
           ("tests/migrate/test_nothing_lost.py",)),
    Mutant("memory_op: tot_pages not decremented", "pvsim/hypervisor/handlers/memory.py",
           "    dom.tot_pages -= 1\n", "", ("tests/hypercalls/test_hc_memory.py",)),
    # ---------------------------------------------------------------- Remus / COLO (pvsim/ha)
    Mutant("Remus: netbuf released before the checkpoint's ack", "pvsim/ha/remus.py",
           "rel.append(times.copy() if o.release_early else np.full(n, -1, np.int64))",
           "rel.append(times.copy())", ("tests/ha/test_remus.py",)),
    Mutant("COLO: divergent packet released before its checkpoint's ack", "pvsim/ha/remus.py",
           "                    r_[-1] = -1\n", "                    pass\n", ("tests/ha/test_remus.py",)),
    Mutant("tagged CR3 load keeps the untagged walk caches (issue 12 fix-up livelock)", "pvsim/mm/machine.py",
           "does not depend on the guest's CR3 and is kept.\n            self.tlb.pwc_tag[:] = -1",
           "does not depend on the guest's CR3 and is kept.", ("tests/mm/test_fixup_livelock.py",)),
    Mutant("TLB tag roll-over without the flush (old generation's entries hit again)", "pvsim/mm/machine.py",
           "            self.tlb.flush()\n        elif self.tagged:", "            pass\n        elif self.tagged:",
           ("tests/mm/test_asid_rollover.py",)),
    Mutant("HAP domains with 1 GiB host pages placed on a 2 MiB boundary only", "pvsim/wiring.py",
           "return span if span > ALIGN_2M and pages >= span else ALIGN_2M", "return ALIGN_2M",
           ("tests/mm/test_hugepages.py",)),
    Mutant("in-run host crash leaves the vCPUs on the dispatcher", "pvsim/ha/inrun.py",
           "            h.runner.destroy_vcpu(u)\n", "            pass\n", ("tests/ha/test_failover_inrun.py",)),
    Mutant("in-run restart hands over the whole budget (the lost work is not redone but skipped)",
           "pvsim/ha/inrun.py", "dst.budget = max(0.0, src.budget - r.durable_units)",
           "dst.budget = max(0.0, src.budget - r.units_at_stop)", ("tests/ha/test_failover_inrun.py",)),
]


def copy_tree(dst: Path) -> None:
    ign = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache", "out", "*.nbi", "*.nbc", ".hypothesis")
    for p in ROOT.iterdir():
        if p.name in (".git", ".venv", "out", ".pytest_cache", ".hypothesis"):
            continue
        if p.is_dir():
            shutil.copytree(p, dst / p.name, ignore=ign)
        else:
            shutil.copy2(p, dst / p.name)


def locate(m: Mutant) -> int:
    text = (ROOT / m.file).read_text(encoding="utf-8")
    n = text.count(m.old)
    if n != 1:
        raise SystemExit(f"mutants: {m.name}: the snippet occurs {n} times in {m.file} (must be once)")
    return text[: text.index(m.old)].count("\n") + 1


def run_one(m: Mutant, base: Path, python: str) -> tuple[bool, str]:
    work = Path(tempfile.mkdtemp(prefix="mut-", dir=base))
    try:
        # a private copy of the tree for this mutant: hard links for speed, the mutated file rewritten
        shutil.copytree(base / "tree", work / "tree", copy_function=os.link)
        f = work / "tree" / m.file
        text = f.read_text(encoding="utf-8")
        f.unlink()
        f.write_text(text.replace(m.old, m.new, 1), encoding="utf-8")
        env = dict(os.environ, PYTHONPATH=str(work / "tree"), PYTHONDONTWRITEBYTECODE="1", NUMBA_CACHE_DIR=str(work / "nb"))
        r = subprocess.run([python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", *m.tests],
                           cwd=work / "tree", env=env, capture_output=True, text=True)
        failed = [ln.split()[1].split("::")[-1] for ln in r.stdout.splitlines() if ln.startswith("FAILED ")]
        return r.returncode == 1, (failed[0] if failed else f"exit {r.returncode}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-j", type=int, default=1, help="mutants run in parallel")
    ap.add_argument("-k", default="", help="only mutants whose name contains this")
    ap.add_argument("--list", action="store_true", help="print the list and exit")
    a = ap.parse_args()
    todo = [m for m in M if a.k in m.name]
    lines = {m.name: locate(m) for m in todo}
    if a.list:
        for m in todo:
            print(f"{m.name:55} {m.file}:{lines[m.name]}  {m.equivalent or ' '.join(m.tests)}")
        return 0
    with tempfile.TemporaryDirectory(prefix="pvsim-mutants-") as tmp:
        base = Path(tmp)
        copy_tree(base / "tree")
        t0 = time.monotonic()
        run = [m for m in todo if not m.equivalent]
        with ThreadPoolExecutor(max_workers=max(1, a.j)) as ex:
            results = dict(zip((m.name for m in run), ex.map(lambda m: run_one(m, base, sys.executable), run)))
    w = max(len(m.name) for m in todo)
    print(f"{'mutant':{w}}  {'file:line':34}  caught by")
    survived = 0
    for m in todo:
        where = f"{m.file}:{lines[m.name]}"
        if m.equivalent:
            print(f"{m.name:{w}}  {where:34}  equivalent: {m.equivalent}")
            continue
        caught, by = results[m.name]
        survived += not caught
        print(f"{m.name:{w}}  {where:34}  {by if caught else 'SURVIVED (' + by + ')'}")
    n = len([m for m in todo if not m.equivalent])
    print(f"\n{n - survived}/{n} mutants caught, {len(todo) - n} equivalent, {time.monotonic() - t0:.0f} s")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
