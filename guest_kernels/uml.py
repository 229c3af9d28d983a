"""User-Mode Linux in skas3 mode (``uml``): the guest kernel is a set of host processes.

Design note
-----------
Models UML as SOSP'03 measured it (Barham et al. §4: "User-mode Linux ... a port of Linux to run as
a user-space process on a Linux host ... we present results for the 'Single Kernel Address Space'
(skas3) variant that exploits patches to the host OS"; Linux 2.4.21, architecture ``um``), after
Jeff Dike's UML papers (ALS 2000, OLS 2001/2002) and the skas code of that era
(``arch/um/kernel/skas/process.c``, 2002: ``userspace()``, ``handle_trap()``, ``handle_segv()``,
``save_registers()``/``restore_registers()``, ``new_mm()``, ``switch_mm_skas()``; the host patch
adds ``/proc/mm``, ``PTRACE_FAULTINFO`` and ``PTRACE_SWITCH_MM``). There is no hypervisor: the
UML kernel is one host process, the guest's processes run in a second, ptraced host process whose
host address space is switched between the guest's ``/proc/mm`` address spaces. Every step is
priced from the *native* primitive costs of the same profile (the host is a native Linux on the
same machine) times a structural count from that code:

* **System call** (``handle_trap`` without ``PTRACE_SYSEMU``, which appeared in 2004): the guest
  process's ``int $0x80`` enters the host kernel, which stops it (``PTRACE_SYSCALL`` stop, SIGCHLD
  to the tracer) and switches to the UML kernel process, waiting in ``waitpid``. The UML kernel
  saves the registers (``PTRACE_GETREGS`` + ``PTRACE_GETFPXREGS``), nullifies the host call
  (``PTRACE_POKEUSER`` of the syscall number to ``__NR_getpid``), lets it run to its exit stop
  (``PTRACE_SYSCALL`` + ``waitpid``: two more host switches and a second stop), runs its own
  handler, restores the registers (``PTRACE_SETREGS`` + ``PTRACE_SETFPXREGS``) and resumes the
  process (``PTRACE_SYSCALL``) before waiting again. Per guest system call: 1 + ``uml.round`` (6)
  + ``uml.syscall_extra`` (3) host system calls, 2 ptrace stops and 4 host process switches
  (causes ``trap.uml_host_syscall``, ``trap.uml_ptrace_stop``, ``world_switch.uml_host_switch``).
* **Page fault** (``handle_segv``): the guest process's access faults in the host
  (``mmu.uml_host_fault``, ``native.page_fault_cycles``); the host finds no mapping and raises
  SIGSEGV, which ptrace turns into a stop of the process and a switch to the UML kernel; one loop
  round (6 host calls) plus ``PTRACE_FAULTINFO``; the UML kernel's own fault handler runs (the
  guest kernel's work, as natively) and maps the page into the process's host address space
  through a ``/proc/mm`` write (one host call plus the host's mm operation,
  ``mmu.uml_host_map``); the retried access takes a second host fault that the host serves alone
  (the ``/proc/mm`` mmap does not populate).
* **Address spaces**: fork opens ``/proc/mm`` and copies the segments (``MM_COPY_SEGMENTS``: two
  host calls) and write-protects the parent for copy-on-write: 2.4 UML's ``fix_range`` issues one
  host ``mprotect`` per changed PTE (``/proc/mm`` op each); exit and munmap unmap page by page the
  same way (one host op per cleared PTE) and close the ``/proc/mm`` descriptor; exec builds a new
  ``/proc/mm`` address space and drops the old one. A process switch inside UML is the UML
  kernel's own thread switch (native speed) plus ``PTRACE_SWITCH_MM`` (one host call) so that the
  ptraced host process runs on the next process's host address space.
* **Signals to the UML kernel** (timer SIGVTALRM, SIGIO of its host file and TUN descriptors):
  each stops the running guest process and costs one loop round; a device interrupt is a SIGIO
  whose handler reads the host descriptor (one host call); each network frame is one host
  ``read``/``write`` on the TUN descriptor plus the host's own stack and driver work for it
  (``io.native_nic_packet_cycles``).
* Instructions a user process may not execute (port I/O, a TPR write) and exceptions fault in the
  host and reach the UML kernel as signals: one interception round each.

``uml.ptrace_stop_cycles`` (the host's work to stop a traced process on a signal or syscall stop
and report it to the tracer) is derived in each profile from the native signal-handling row;
``uml.host_mm_op_cycles`` (the host mm work of one /proc/mm mmap/munmap/mprotect of one page) from
the native page-fault path. Neither is fitted on a UML measurement.

Simplifications: one UML CPU; host system calls cost the native null call each (the ptrace
requests copy register sets of at most 512 bytes); interrupt enable/disable inside the UML kernel
(host ``sigprocmask`` in 2.4-era UML) is not counted; the UML kernel's own code runs at native
speed; the ubd block driver's host ``pread``/``pwrite`` are priced only as the SIGIO of their
completion; the UML kernel thread of a new process is created without host calls.
"""

from __future__ import annotations

from guest_kernels.base import GuestKernel


class UMLKernel(GuestKernel):
    mode = "uml"
    paging = "2level"  # i386 UML 2.4: two-level guest page tables kept by the UML kernel

    # MMU actions whose host-side work this kernel adds after the guest side (structural or counted)
    _HOST_SIDE = {"page_fault": "_host_page_fault", "prot_fault": "_host_prot_fault", "fork": "_host_fork",
                  "exec": "_host_exec", "exit": "_host_exit", "munmap": "_host_munmap"}

    def act(self, name: str, *args) -> None:
        super().act(name, *args)
        host = self._HOST_SIDE.get(name)
        if host is not None:
            getattr(self, host)(*args)

    # ----------------------------------------------------------------- host primitives
    def _host_calls(self, n: float) -> None:
        """``n`` host system calls made on the guest's behalf (ptrace requests, waitpid, /proc/mm)."""
        self._add("trap.uml_host_syscall", "native.syscall_cycles", n)
        self.meter.count("uml.host_syscall", n)

    def _host_switches(self, n: float) -> None:
        """``n`` host process switches between the ptraced guest process and the UML kernel."""
        self._add("world_switch.uml_host_switch", "native.context_switch_cycles", n)
        self.meter.count("uml.host_switch", n)

    def _stops(self, n: float = 1) -> None:
        """``n`` ptrace stops (a syscall stop or an intercepted signal) reported to the UML kernel."""
        self._add("trap.uml_ptrace_stop", "uml.ptrace_stop_cycles", n)
        self.meter.count("uml.ptrace_stop", n)

    def _host_mm_ops(self, n: float) -> None:
        """``n`` /proc/mm operations on one page each (mmap, munmap or mprotect in the guest's host mm)."""
        if n <= 0:
            return
        self._host_calls(n)
        self._add("mmu.uml_host_map", "uml.host_mm_op_cycles", n)
        self.meter.count("uml.host_mm_op", n)

    def _host_fault(self, n: float = 1) -> None:
        """``n`` hardware page faults taken by the host for the guest process."""
        self._add("mmu.uml_host_fault", "native.page_fault_cycles", n)
        self.meter.count("uml.host_fault", n)

    def _round(self) -> None:
        """One pass of the UML kernel's ``userspace()`` loop for a stopped guest process: the stop,
        the switch to the UML kernel, waitpid + save + restore of the registers + PTRACE_SYSCALL, and
        the switch back."""
        self._stops(1)
        self._host_switches(2)
        self._host_calls(self.p.value("uml.round_host_calls_count"))

    def _intercept(self, trap_price: str) -> None:
        """A guest instruction that faults in the host and reaches the UML kernel as a signal."""
        self._add("trap.uml_host_trap", trap_price)
        self._round()

    # ----------------------------------------------------------------- traps
    def syscall(self) -> None:
        self._host_calls(1)  # the trapped int $0x80, run by the host as the nullified getpid
        self._round()
        self._stops(1)  # the exit stop of the nullified call
        self._host_switches(2)
        self._host_calls(self.p.value("uml.syscall_extra_host_calls_count"))
        self.meter.count("syscall")

    def exception(self) -> None:
        self._intercept("native.exception_cycles")  # SIGFPE/SIGILL intercepted by ptrace
        self._add("kernel.exception", "native.exception_cycles")  # the UML kernel's handler and return
        self.meter.count("exception")

    def io_port(self) -> None:
        self._intercept("native.exception_cycles")  # #GP in a user process: SIGSEGV to the UML kernel
        self.meter.count("io_port")

    def cr8_write(self) -> None:
        self._intercept("native.exception_cycles")  # a privileged instruction in a user process

    # ----------------------------------------------------------------- host side of MMU actions
    def _host_page_fault(self, kind: str = "anon") -> None:
        self._host_fault(1)  # the access faults in the host, which raises SIGSEGV
        self._round()
        self._host_calls(1)  # PTRACE_FAULTINFO
        if kind != "nano":  # the UML handler maps the page in the host, and the retried access faults there
            self._host_mm_ops(1)
            self._host_fault(1)

    def _host_prot_fault(self) -> None:
        self._host_fault(1)
        self._round()
        self._host_calls(1)  # PTRACE_FAULTINFO; the guest's SIGSEGV frame is written by the UML kernel

    def _host_fork(self, pages: int) -> None:
        self._host_calls(2)  # open("/proc/mm") + write(MM_COPY_SEGMENTS)
        self._host_mm_ops(pages)  # fix_range: one host mprotect per write-protected parent PTE

    def _host_exit(self, pages: int | None = None) -> None:
        self._host_mm_ops(pages or 0)  # fix_range after zap: one host munmap per cleared PTE
        self._host_calls(1)  # close of the /proc/mm descriptor

    def _host_exec(self, pages: int) -> None:
        self._host_mm_ops(pages)  # the old image unmapped page by page
        self._host_calls(3)  # open("/proc/mm") for the new mm, PTRACE_SWITCH_MM, close of the old one

    def _host_munmap(self, pages: int) -> None:
        self._host_mm_ops(pages)

    # ----------------------------------------------------------------- context switch, signals, I/O
    def _switch_extras(self) -> None:
        """The UML kernel's thread switch is native; the ptraced host process is moved to the next
        process's /proc/mm address space."""
        self._host_calls(1)  # PTRACE_SWITCH_MM
        self.meter.count("uml.switch_mm")

    def timer_tick(self) -> None:
        """The host's timer interrupt, then SIGVTALRM intercepted in the guest process."""
        self._add("kernel.timer", "native.timer_tick_cycles")  # the host's tick
        self._round()
        self._add("kernel.timer", "native.timer_tick_cycles")  # the UML kernel's tick handler
        self.meter.count("timer_tick")

    def irq(self, source: str = "device") -> None:
        """A host descriptor became ready: the host's interrupt, SIGIO intercepted, and the UML
        kernel's handler reading the descriptor."""
        self._add("kernel.interrupt", "native.interrupt_cycles")
        self._round()
        self._host_calls(1)

    def nic_packets(self, n: int) -> None:
        """Each frame is one host read/write on the TUN descriptor, then the host's NIC path."""
        self._host_calls(n)
        super().nic_packets(n)
