"""lmbench 3.0 micro-operations, as in SOSP'03 Tables 3, 4 and 5.

Derivation: each op's actions follow what lmbench's test does (lat_syscall, lat_proc, lat_ctx,
lat_pagefault, lat_mmap, lat_fs); the ``fill`` kernel path length comes from the op's *native*
latency on the SOSP'03 machine (the L-UP column, calibration.md §1.3-1.5 [MEM]); only native values
are used. Process sizes are characterizations of the lmbench processes themselves:

* ``PROC_PAGES`` = 300 present pages: lat_proc's parent is a dynamically linked glibc process; its
  resident set on Red Hat 7.x is about 1.2 MB (text of ld.so, libc and lmbench, data, stack) [MEM].
* ``COW_FAULTS`` = 8: after fork the child touches its stack, a few data pages and exits; the parent
  resumes in wait() and touches its stack and data (lat_proc's loop) [estimate from the code path].
* ``EXEC_PAGES`` = 150: pages faulted in by the exec'ed 'hello' program (ld.so relocation, libc
  init, stack) [MEM: minor faults of a minimal dynamically linked program ~100-200].
* ``SH_PAGES`` = 400: /bin/sh (bash 2.05) start-up faults [MEM].
* ``CTX_BASE_PAGES`` = 4: pages a lat_ctx process touches per switch besides its array: code, stack,
  pipe-buffer bookkeeping, data; plus size/4 KiB for the 16K/64K arrays.
* ``MMAP_PAGES`` = 16: pages lat_mmap maps and touches per iteration [assumption].
* Footprint (cache/TLB working sets, pvsim.sched.footprint): ``LOOP_KIB`` = 32 KiB and ``LOOP_PAGES``
  = 16 per op -- an lmbench loop is a small process whose iteration runs one kernel path (entry,
  the system call or fault path, the scheduler: ~10-30 KiB of kernel text and data) and a few user
  pages [estimate from the code path]; lat_ctx adds its array (``-s`` KiB, size/4 KiB pages); the
  process ops (fork, exec, sh) touch their present pages (``PROC_PAGES`` x 4 KiB, capped at the
  pages, cf. the resident set above).
"""

from __future__ import annotations

from pvsim.workloads.base import act as A
from pvsim.workloads.base import op_mix
from pvsim.workloads.spec import FootprintSpec

REF = "xeon-2003"
PROC_PAGES = 300
COW_FAULTS = 8
EXEC_PAGES = 150
SH_PAGES = 400
CTX_BASE_PAGES = 4
MMAP_PAGES = 16
LOOP_KIB = 32
LOOP_PAGES = 16
PARENT = 1  # the benchmark's own process (the structural MMU's first address space)


def _fork_exit_wait(extra: tuple = (), pages: int = PROC_PAGES) -> tuple:
    return (
        A("syscall"),  # fork
        A("fork", pages),
        A("context_switch", CTX_BASE_PAGES),  # run the child
        A("page_fault", "cow", times=COW_FAULTS // 2),
        *extra,
        A("syscall"),  # exit
        A("exit", pages),
        A("context_switch", CTX_BASE_PAGES, PARENT),  # back to the parent, waiting in wait4
        A("page_fault", "cow", times=COW_FAULTS // 2),
        A("syscall"),  # wait4
        A("fill"),
    )


def _ctx(procs: int, kib: int, native_us: float):
    pages = CTX_BASE_PAGES + (kib * 1024) // 4096
    return op_mix(
        f"lmbench.ctx_{procs}p_{kib}k",
        (A("context_switch", pages), A("fill")),
        native_ref=(REF, native_us),
        group="table4",
        description=f"lat_ctx -s {kib} {procs}: one process switch among {procs} processes each touching {kib} KiB",
        footprint=dict(cache_kib=LOOP_KIB + kib, tlb_pages=LOOP_PAGES + (kib * 1024) // 4096,
                       source="lat_ctx loop (LOOP_KIB, LOOP_PAGES) plus its -s array [estimate]"),
    )


LMBENCH = {
    op.name: op
    for op in (
        # Table 3: processes
        op_mix("lmbench.null_call", (A("syscall"), A("fill")), native_ref=(REF, 0.45), group="table3",
           description="lat_syscall null (getppid)"),
        op_mix("lmbench.null_io", (A("syscall"), A("fill")), native_ref=(REF, 0.50), group="table3",
           description="lat_syscall read/write of one byte on /dev/zero, /dev/null"),
        op_mix("lmbench.stat", (A("syscall"), A("fill")), native_ref=(REF, 1.28), group="table3",
           description="lat_syscall stat"),
        op_mix("lmbench.open_close", (A("syscall", times=2), A("fill")), native_ref=(REF, 1.92), group="table3",
           description="lat_syscall open + close"),
        op_mix("lmbench.slct_tcp", (A("syscall"), A("fill")), native_ref=(REF, 5.70), group="table3",
           description="lat_select on TCP sockets"),
        op_mix("lmbench.sig_inst", (A("syscall"), A("fill")), native_ref=(REF, 0.68), group="table3",
           description="lat_sig install (sigaction)"),
        op_mix("lmbench.sig_hndl", (A("syscall", times=2), A("fill")), native_ref=(REF, 2.49), group="table3",
           description="lat_sig catch: kill(self), handler, sigreturn"),
        op_mix("lmbench.fork", _fork_exit_wait(), native_ref=(REF, 110.0), group="table3",
           description="lat_proc fork: fork, child exits, parent waits"),
        op_mix("lmbench.exec", _fork_exit_wait((A("syscall"), A("exec", EXEC_PAGES), A("page_fault", "anon", times=EXEC_PAGES))),
           native_ref=(REF, 530.0), group="table3", description="lat_proc exec: fork, child execs 'hello', exits, parent waits"),
        op_mix("lmbench.sh", _fork_exit_wait((A("syscall"), A("exec", SH_PAGES), A("page_fault", "anon", times=SH_PAGES),
                                          A("syscall"), A("fork", SH_PAGES), A("context_switch", CTX_BASE_PAGES),
                                          A("syscall"), A("exec", EXEC_PAGES), A("page_fault", "anon", times=EXEC_PAGES),
                                          A("exit", EXEC_PAGES), A("context_switch", CTX_BASE_PAGES),
                                          A("exit", SH_PAGES))),
           native_ref=(REF, 4000.0), group="table3", description="lat_proc shell: fork, /bin/sh -c hello, exit, wait"),
        # Table 4: context switches
        _ctx(2, 0, 0.77), _ctx(2, 16, 0.91), _ctx(2, 64, 1.06), _ctx(8, 16, 1.03), _ctx(8, 64, 24.3),
        _ctx(16, 16, 3.61), _ctx(16, 64, 37.6),
        # Table 5: file and VM system latencies
        op_mix("lmbench.fs_create_0k", (A("syscall", times=3), A("fill")), native_ref=(REF, 32.1), group="table5",
           description="lat_fs 0K create: open(O_CREAT), close"),
        op_mix("lmbench.fs_delete_0k", (A("syscall"), A("fill")), native_ref=(REF, 6.08), group="table5",
           description="lat_fs 0K delete: unlink"),
        op_mix("lmbench.fs_create_10k", (A("syscall", times=6), A("fill")), native_ref=(REF, 66.9), group="table5",
           description="lat_fs 10K create: open(O_CREAT), write 10 KiB, close"),
        op_mix("lmbench.fs_delete_10k", (A("syscall"), A("fill")), native_ref=(REF, 12.5), group="table5",
           description="lat_fs 10K delete: unlink"),
        op_mix("lmbench.mmap", (A("syscall"), A("mmap", MMAP_PAGES), A("page_fault", "file", times=MMAP_PAGES),
                            A("syscall"), A("munmap", MMAP_PAGES), A("fill")),
           native_ref=(REF, 68.0), group="table5", description="lat_mmap: map a file, touch each page, unmap"),
        op_mix("lmbench.prot_fault", (A("prot_fault"), A("fill")), native_ref=(REF, 1.06), group="table5",
           description="lat_sig prot: write to a read-only page, SIGSEGV handled"),
        op_mix("lmbench.page_fault", (A("page_fault", "file"), A("fill")), native_ref=(REF, 1.42), group="table5",
           description="lat_pagefault: first touch of a page of a mapped file"),
    )
}

_LOOP = FootprintSpec(cache_kib=LOOP_KIB, tlb_pages=LOOP_PAGES,
                      source="an lmbench loop: one kernel path and a few user pages (LOOP_KIB, LOOP_PAGES) [estimate]")
_PROC = FootprintSpec(cache_kib=PROC_PAGES * 4, tlb_pages=PROC_PAGES,
                      source="lat_proc: the ~1.2 MB resident set of the forking process (PROC_PAGES) [MEM]")
for _n, _s in list(LMBENCH.items()):
    if _s.footprint is None:
        LMBENCH[_n] = _s.model_copy(update={"footprint": _PROC if _n in ("lmbench.fork", "lmbench.exec", "lmbench.sh")
                                            else _LOOP})

TABLES = {
    "table3": ("Table 3: lmbench processes (us)", ["null_call", "null_io", "stat", "open_close", "slct_tcp", "sig_inst",
                                                   "sig_hndl", "fork", "exec", "sh"]),
    "table4": ("Table 4: lmbench context switches (us)", ["ctx_2p_0k", "ctx_2p_16k", "ctx_2p_64k", "ctx_8p_16k",
                                                          "ctx_8p_64k", "ctx_16p_16k", "ctx_16p_64k"]),
    "table5": ("Table 5: lmbench file and VM latencies (us)", ["fs_create_0k", "fs_delete_0k", "fs_create_10k",
                                                               "fs_delete_10k", "mmap", "prot_fault", "page_fault"]),
}


# SOSP'03 (Barham et al., Table 3) published latencies in us: (L-UP, Xen, VMware Workstation). Only the
# L-UP column is a model input (the native_ref above); the Xen and VMware columns are validation targets
# (pvsim.validation, benchmarks/reproduce_papers.py) and the model never reads them.
SOSP03 = {
    "null_call": (0.45, 0.46, 0.73), "null_io": (0.50, 0.50, 0.83), "stat": (1.28, 1.22, 1.88),
    "open_close": (1.92, 1.88, 2.99), "slct_tcp": (5.70, 5.69, 11.1), "sig_inst": (0.68, 0.69, 1.02),
    "sig_hndl": (2.49, 1.75, 4.63), "fork": (110, 198, 874), "exec": (530, 768, 2300), "sh": (4000, 4800, 10000),
    "ctx_2p_0k": (0.77, 1.97, 18.1), "ctx_2p_16k": (0.91, 2.22, 17.6), "ctx_2p_64k": (1.06, 2.67, 21.3),
    "ctx_8p_16k": (1.03, 3.07, 22.4), "ctx_8p_64k": (24.3, 28.7, 51.6), "ctx_16p_16k": (3.61, 7.08, 41.7),
    "ctx_16p_64k": (37.6, 39.4, 72.2), "fs_create_0k": (32.1, 32.5, 35.3), "fs_delete_0k": (6.08, 5.86, 9.3),
    "fs_create_10k": (66.9, 68.2, 85.6), "fs_delete_10k": (12.5, 13.6, 21.4), "mmap": (68.0, 139, 620),
    "prot_fault": (1.06, 1.40, 7.53), "page_fault": (1.42, 2.73, 12.4),
}

# SOSP'03 Tables 3-5, the User-Mode Linux column (skas3 on the same host, us; calibration.md §1.3-1.5
# [MEM]): a validation target only (pvsim.validation); the model never reads it.
SOSP03_UML = {
    "null_call": 24.7, "null_io": 25.1, "stat": 36.1, "open_close": 62.8, "slct_tcp": 39.9, "sig_inst": 26.0,
    "sig_hndl": 46.0, "fork": 21000, "exec": 33000, "sh": 58000,
    "ctx_2p_0k": 15.5, "ctx_2p_16k": 14.6, "ctx_2p_64k": 14.4, "ctx_8p_16k": 16.3, "ctx_8p_64k": 36.8,
    "ctx_16p_16k": 23.6, "ctx_16p_64k": 52.0,
    "fs_create_0k": 130, "fs_delete_0k": 65.7, "fs_create_10k": 250, "fs_delete_10k": 113, "mmap": 1400,
    "prot_fault": 21.8, "page_fault": 26.3,
}
