"""Macro workload profiles: one *unit of work* each, as a mix of OS actions.

How each mix was derived (characterizations of the workload on native Linux, never virtualized
results; [MEM] = recalled figures, treat as approximate):

* ``cpu-int`` -- compute-bound integer code (SPEC CINT-like). Unit: 10 ms of user work at 3 GHz
  (30 M cycles). ~99 % user time; one timer tick per unit (HZ=100); one system call and a fraction of a
  page fault per unit in steady state; second-level TLB misses that need a page walk ~0.1 per 1000
  instructions at IPC ~1.5 (SPEC CINT STLB miss rates [MEM]) -> 4500 walks per unit.
* ``kernel-build`` -- one compile job of a Linux 2.4 kernel build (make -> gcc driver -> cpp0 | cc1 | as
  with ``-pipe``, gcc 2.95/2.96 [MEM]). Unit: 4 fork+exec+exit+wait pairs, each with the kernel path
  length of lmbench exec (its fill, from the native L-UP exec 530 us); 4000 demand faults (cc1 ~12 MB:
  600 text pages from the page cache + 2400 heap/stack; cpp0, as, gcc ~1000 pages, mostly text), 2700
  of them anonymous and zero-filled (4096 B at ~1 B/cycle, io.memcpy_byte_cycles on xeon-2003 [MEM]);
  ~2500 system calls (open/stat/read/close of ~500 headers, failed lookups along the include path,
  mmap, brk, pipe reads/writes); 2.75 MB copied by the kernel (headers read 1.5 MB, preprocessed source
  and assembly through two pipes, written and read, 1.2 MB, the object 50 KB) at 1 B/cycle; 20 context
  switches; 400 M cycles of user work (~0.17 s per file at 2.4 GHz [MEM]). Native OS share: 6.4 % on
  xeon-2003 (SOSP'03 4.1 measured ~7 %, an input: a native characterization; docs/workloads.md
  derives it).
* ``forkwait`` -- the ASPLOS'06 forkwait test (§6.2): 40,000 iterations of ``fork()``, the child
  calling ``exit(0)`` at once, the parent ``waitpid()``; a small statically linked C program on
  Linux 2.6. Unit: one iteration. Its address space (``FW_*`` below, docs/workloads.md derives
  them): 12 text pages (file-backed, read-only) and 7 private writable pages (4 data+bss, 1 for the
  static TLS block glibc's ``__libc_setup_tls`` puts on the brk heap, 2 stack); Linux 2.6's
  ``copy_page_range`` copies only the 7 (a VMA without ``anon_vma`` is skipped and faulted in
  later), so ``fork(19, 7)``. The child runs the end of the fork wrapper and the exit path: 4 text
  page faults (no PTEs were copied for text) and 3 COW faults (stack, TLS block, libc's stdio/atexit
  data), then exits with 7 + 4 present pages. The parent, back in ``waitpid``, takes 2 COW faults
  per iteration (its stack and libc data it writes around ``fork``; the pages are no longer shared,
  so the fault only makes them writable again) -- so a steady-state fork write-protects those 2
  PTEs only (Linux leaves COW pages read-only until written). The fork/exit/wait kernel path that
  the actions do not describe (task and signal structures, scheduler, wait) is the only piece still
  borrowed from lmbench fork's native measurement (``fill``), the same system calls on 2.4.
* ``oltp-mix`` -- synchronous database I/O (sysbench OLTP-like, one client, data set mostly cached).
  Unit: one transaction: 150 k cycles of SQL execution, 30 system calls, 4 context switches, one
  synchronous 8 KiB log write (fsync) and 0.2 random 8 KiB reads (buffer-pool misses), 2 request and 2
  response packets from the client [MEM: OLTP transactions are a few tens of syscalls and 1-2 log
  writes].
* ``dbench-mix`` -- the dbench file-server load (netbench file operations on the local file system).
  Unit: one file operation: 10 system calls (open/read/write/close/stat/unlink mix), 8 KiB copied
  through the page cache, ~80 % system time (dbench is kernel-bound [MEM]); write-back is asynchronous.
* ``web-mix`` -- a web server: 70 % static requests (10 KiB file via sendfile, 20 k cycles of user work)
  and 30 % dynamic (2 M cycles of script execution). Unit: one request: accept/read/stat/open/sendfile/
  close/poll ~15 system calls, 3 packets in, 8 packets out (10 KiB at MTU 1500), 2 context switches
  [MEM: SPECweb-style characterizations].

The ``*-mix`` workloads are one client's unit of work as an OS action mix; the I/O generators of the
same application (``oltp``, ``dbench``, ``web`` in ``builtin.toml``) are closed-loop request generators
with their own concurrency (threads, clients) and a different characterization (docs/workloads.md
says how they differ). In both, the ``disk_io`` and ``net_io`` actions run on the domain's real
devices (split-driver rings with event channels and grants, an emulated device through the device
model, or the native driver): the unit blocks until its request completes; ``net_io`` receives a
request from, or sends a response to, the domain's closed-loop client beyond the host's link.
"""

from __future__ import annotations

from pvsim.workloads.base import act as A
from pvsim.workloads.base import op_mix

# forkwait on Linux 2.6 (docs/workloads.md, "forkwait"): a small static C program's address space
FW_TEXT = 12  # text pages touched: _start, main, fork/waitpid/exit wrappers, libc init [estimate]
FW_ANON = 7  # private writable pages: data + bss 4, static TLS block on the brk heap 1, stack 2
FW_PAGES = FW_TEXT + FW_ANON
FW_CHILD_TEXT_FAULTS = 4  # text pages the child touches (fork return, exit, atexit/stdio cleanup, _exit)
FW_CHILD_COW_FAULTS = 3  # child writes: stack, TLS block (fork's child-side resets), libc stdio/atexit data
FW_CHILD_TOUCH = 3  # the child's present pages it touches after the switch (the pages it then COW-faults)
FW_PARENT_COW_FAULTS = 2  # parent writes per iteration: stack, libc data (fork's lock) [estimate]
FW_PARENT_TOUCH = 4  # parent pages touched back in waitpid: stack, libc data, loop and wrapper text

MACRO = {
    op.name: op
    for op in (
        op_mix("cpu-int", (A("user", 30_000_000), A("timer_tick"), A("syscall"), A("kernel", 2000),
                           A("page_fault", "anon", times=0.5), A("tlb_walks", 4500)),
               metric="ops_per_s", group="macro", description="compute-bound integer work; unit = 10 ms of user work",
               footprint=dict(cache_kib=2048, tlb_pages=1024, source="SPEC CINT2000/2006: L2-level working sets of ~0.5-4 MiB (miss ratios flatten only past 1-4 MiB: Cantin & Hill, SPEC CPU2000 cache data, 2003; Jaleel, CPU2006 working sets, 2007) and ~4500 STLB-missing walks per 10 ms unit (above): a TLB reach far beyond the TLB [MEM]"),
               writable=dict(mib=256, mb_per_s=40, pattern="hot", hot_frac=0.2, hot_share=0.9, free_frac=0.5,
                             source="SPEC CINT2006 resident sets of 100-900 MB, heap writes on a hot fifth [MEM]")),
        op_mix("kernel-build", (A("user", 400_000_000),
                                # make -> gcc, gcc -> cpp0 | cc1 | as: 4 fork+exec+exit+wait, each with the
                                # kernel path length lmbench exec measures natively (the fill)
                                A("syscall", times=4), A("fork", 400, times=4), A("exec", 400, times=4),
                                A("fill", "lmbench.exec", times=4),
                                # 4000 demand faults, 2700 of them anonymous and zero-filled (4096 B each)
                                A("page_fault", "anon", times=4000), A("kernel", 4096, times=2700),
                                # headers, pipes, object file: 2500 system calls, 2.75 MB copied at 1 B/cycle
                                A("syscall", times=2500), A("kernel", 2_750_000),
                                A("context_switch", 8, times=20), A("exit", 400, times=4), A("timer_tick", times=17),
                                A("tlb_walks", 60_000)),
               metric="ops_per_s", group="macro", description="Linux kernel build; unit = one compile job",
               footprint=dict(cache_kib=4096, tlb_pages=1536, source="cc1 touches ~12 MB per job (the faults above): more than any L2 or L3 slice here; between two switches it re-touches its heap and code, taken as 4 MiB and 1536 pages (6 MiB reach) [estimate]"),
               writable=dict(mib=512, mb_per_s=80, pattern="uniform", free_frac=0.3,
                             source="cc1 processes (~50-100 MB each), object files through the page cache [MEM]")),
        op_mix("forkwait", (A("syscall"), A("fork", FW_PAGES, FW_ANON),  # fork: only the anon PTEs are copied
                            A("context_switch", FW_CHILD_TOUCH),  # run the child
                            *(A("page_fault", "file") for _ in range(FW_CHILD_TEXT_FAULTS)),
                            *(A("page_fault", "cow") for _ in range(FW_CHILD_COW_FAULTS)),
                            A("syscall"), A("exit", FW_ANON + FW_CHILD_TEXT_FAULTS),  # exit_group
                            A("context_switch", FW_PARENT_TOUCH, 1),  # back to the parent in waitpid
                            *(A("page_fault", "cow") for _ in range(FW_PARENT_COW_FAULTS)),
                            A("syscall"), A("fill", "lmbench.fork")),  # wait4
               metric="ops_per_s", group="macro", description="ASPLOS'06 forkwait: fork, child exits, parent waits",
               footprint=dict(cache_kib=64, tlb_pages=32, source="fork/exit/wait kernel path (task, mm and page-table copies of a 120-page process, ~tens of KiB) and the parent's few hot pages [estimate]"),
               writable=dict(mib=4, mb_per_s=200, pattern="hot", hot_frac=0.1, hot_share=0.9, free_frac=0.8,
                             source="a small static process: page tables and COW copies per fork [estimate]")),
        op_mix("oltp-mix", (A("user", 150_000), A("syscall", times=30), A("kernel", 60_000),
                            A("context_switch", 6, times=4), A("disk_io", 8192, True), A("disk_io", 8192, False, times=0.2),
                            A("net_io", 2, False), A("net_io", 2, True)),
               metric="ops_per_s", group="macro", peer="clients",
               description="one client's database transaction as an OS action mix (log write + fsync)",
               footprint=dict(cache_kib=256, tlb_pages=128, source="one transaction's burst between two blocking I/Os (150 k cycles of SQL, 30 system calls): a few B-tree levels of 8 KiB index pages, the rows, lock and log buffers and the engine's hot code; the engine's whole working set is multi-MB (Barroso, Gharachorloo and Bugnion, ISCA 1998) but one 50 us burst cannot touch it [estimate]"),
               writable=dict(ram_frac=0.5, mb_per_s=20, pattern="hot", hot_frac=0.1, hot_share=0.9, free_frac=0.1,
                             source="OLTP buffer pool ~half of RAM, updates skewed to a hot tenth [MEM]")),
        op_mix("dbench-mix", (A("user", 5_000), A("syscall", times=10), A("kernel", 40_000),
                              A("disk_io", 8192, True, times=0.05)),
               metric="ops_per_s", group="macro", description="dbench file-server operations as an OS action mix",
               footprint=dict(cache_kib=128, tlb_pages=64, source="a file operation: VFS, ext3 and page-cache code and metadata, 8 KiB of data copied [estimate]"),
               writable=dict(mib=256, mb_per_s=60, pattern="uniform", free_frac=0.3,
                             source="dbench writes files through the page cache, spread over its file set [MEM]")),
        op_mix("web-mix", (A("net_io", 3, False), A("user", 20_000, times=0.7), A("user", 2_000_000, times=0.3),
                           A("syscall", times=15), A("kernel", 30_000), A("context_switch", 6, times=2),
                           A("net_io", 8, True), A("timer_tick", times=0.1)),
               metric="ops_per_s", group="macro", peer="clients",
               description="one client's web request as an OS action mix, 70 % static / 30 % dynamic",
               footprint=dict(cache_kib=512, tlb_pages=256, source="a web request: the server's code, a 10 KiB file, a script interpreter for the dynamic 30 % [estimate]"),
               writable=dict(mib=64, mb_per_s=5, pattern="hot", hot_frac=0.1, hot_share=0.9, free_frac=0.3,
                             source="read-mostly: sessions, logs and socket buffers are the writes [MEM]")),
        op_mix("idle", (A("timer_tick"),), metric="ops_per_s", group="macro",
               extra_steps=({"sleep": {"ns": 10_000_000}},),
               description="an idle guest: one timer tick every 10 ms",
               footprint=dict(cache_kib=16, tlb_pages=8, source="an idle guest's timer tick: the interrupt and tick path [estimate]"),
               writable=dict(mib=4, mb_per_s=0.05, pattern="hot", hot_frac=0.1, hot_share=0.9, free_frac=0.9,
                             source="an idle Linux guest dirties a few pages a second (timer, housekeeping) [MEM]")),
    )
}
