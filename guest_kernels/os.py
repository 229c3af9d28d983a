"""A domain's OS at run time: threads and interrupt handlers on its vCPUs, idling, accounting.

Design note
-----------
:class:`DomainOS` is one running OS (a guest, Domain-0, a KVM host kernel or a bare-metal kernel):
its vCPUs (:class:`VcpuOS`, each the *behaviour* the pCPU dispatcher runs), its guest kernel per
vCPU (the mode's :class:`~guest_kernels.base.GuestKernel`), its event-channel port handlers, and
what it has done (units of work and their latencies). It plays the role of the OS's own process
scheduler, as Linux's does inside a Xen domain:

* pending *interrupt handlers* (event-channel upcalls, device interrupts) run first, then *threads*
  (the workload's tasks, backend kthreads, a device model) round-robin, like CFS: a thread keeps the
  vCPU until it sleeps, or until another is runnable and it has run :data:`THREAD_SLICE_NS`, or a
  thread woke and it has run :data:`WAKEUP_GRANULARITY_NS` (checked when a ``Run`` ends; CPU-bound
  threads hand out Runs of about a millisecond); a thread switch costs one process context switch
  (``native.context_switch_cycles``);
* a handler or thread is a generator yielding commands:

  - ``("run", ns)`` / ``("run", ns, units)``: CPU work (reported before through :meth:`VcpuOS.work`,
    :meth:`VcpuOS.k` or a hypercall; ``units`` of the workload complete when it is done);
  - ``("wait", event)``: the thread sleeps on a SimPy event; ``("iowait", event)``: the same, for an
    I/O completion (Linux's iowait: idle time while a thread waits on I/O is ``idle.io_wait``);
  - ``("sleep", ns)``: the thread sleeps for ``ns`` (a timer);
  - ``("bwait", event)``: the whole vCPU blocks (a trapped access waiting for the device model);
* with nothing runnable the vCPU idles: the kernel's ``idle()`` runs once (``SCHEDOP_block`` for
  PV, a ``HLT`` exit under VT-x) and the vCPU waits for :meth:`VcpuOS.kick` (``vcpu_kick``); a
  kernel with ``halt_poll_ns`` (KVM's halt polling) first polls: a ``Run`` of its current poll
  window that any wake-up cuts short, so the vCPU keeps its pCPU and skips the wake-up path; only
  when the window passes does it block. The first thing a vCPU does after a block is its
  kernel's ``wake(source)``: the wake-up path's work (``wake.*`` causes), where ``source`` says
  what woke it (``event``: an event channel or a remote CPU's kick, ``irq``: a device interrupt,
  ``thread``: another CPU woke one of its threads, ``timer``: its own timer).

Work is reported to each vCPU's :class:`~pvsim.core.meter.LiveMeter`, priced as it comes; a thread or
handler *tagged* with the domain it serves (a backend working for a guest) also tees its work into
that domain's account, so a guest's row can show the control domain's CPU spent on its behalf.

An interrupt (an upcall, a device interrupt) or a thread's wake-up while the vCPU runs a long
``Run`` cuts it short (:meth:`VcpuOS.preempt`, through the platform's ``interrupt``): the handler
runs, then the cut work resumes (or, CFS permitting, the woken thread runs first). A thread's Run
is also cut where CFS would switch threads (its slice, or the wake-up granularity), so CPU-bound
threads can hand out long Runs -- one decision per burst -- without delaying anyone.

Simplifications: a Run with at most ``INTERRUPT_MIN_NS`` (100 us) left is not cut (the handler waits
for it); event channels are delivered to vCPU 0; threads are placed on vCPUs round-robin when
spawned and stay there.
"""

from __future__ import annotations

from collections import deque

from pvsim.core.engine import Run, Wait
from pvsim.core.meter import LiveMeter

_SWITCH = ("kernel.context_switch", "native.context_switch_cycles")
# Linux CFS (kernel/sched/fair.c): sysctl_sched_min_granularity 3 ms and sysctl_sched_wakeup_granularity
# 4 ms on a multi-CPU host (0.75 ms and 1 ms, each x (1 + log2 ncpu), ncpu capped at 8); the guest
# kernels of the modelled eras had 2-8 CPUs. A runnable thread gets the vCPU when the current one
# has run its slice, a woken one when the current one has run past the wake-up granularity.
THREAD_SLICE_NS = 3_000_000
WAKEUP_GRANULARITY_NS = 1_000_000
CUT_MIN_NS = 100_000  # a Run is cut (by an interrupt or at a CFS switch point) only if more is left


class VcpuOS:
    """One vCPU's share of its OS: the behaviour handed to the dispatcher."""

    def __init__(self, dom_os: "DomainOS", vcpu_id: int, kernel, meter: LiveMeter):
        self.dom_os = dom_os
        self.vcpu_id = vcpu_id
        self.kernel = kernel
        self.meter = meter
        self.engine = dom_os.engine
        self.hv = dom_os.hv
        self.name = f"{dom_os.name}.{vcpu_id}"
        self.irqs: deque = deque()
        self.ready: deque = deque()
        self._irq_held = None  # the thread an interrupt handler took the vCPU from
        self.cur = None
        self.cur_irq = False
        self.last_thread = None
        self.tags: dict = {}  # generator -> account (LiveMeter) of the domain it serves
        self._wake_ev = None
        self._idle_charged = False
        self.burst = None  # (units, ns) of the Run in flight that completes units
        self.io_waiting = 0  # threads waiting on I/O completions
        self._idle_since: int | None = None
        self._idle_io = False
        self.iowait_ns = 0
        self.busy_ns = 0
        self._turn_start = 0  # when the current thread got the vCPU
        self._woken = 0  # threads in the ready queue that woke from a sleep
        self._woken_set: set = set()
        # work cut short by an interrupt or a CFS switch point, to resume: per thread, and the work of
        # no thread (a finished thread's flush, the idle hypercall); each (ns left, units, Run ns)
        self._resume: dict = {}
        self._orphan = None
        self._wake_src: str | None = None  # what woke the vCPU from its last block (for kernel.wake)
        self.switched_in = False  # the last thread picked was a switch from another thread
        self.polling = False  # a halt-poll Run is in flight (any wake-up cuts it, whatever is left)
        self._polled = False  # this idle period has polled already
        self._poll_ns = 0  # KVM's per-vCPU adaptive halt_poll_ns (vcpu->halt_poll_ns)
        self._halt_start: int | None = None

    # ------------------------------------------------------------------ work reporting
    def work(self, cause: str, price: str, n: float = 1) -> None:
        if n:
            self.meter.add(cause, price, n)

    def count(self, name: str, n: int = 1) -> None:
        self.meter.count(name, n)

    def charge(self, ns_by_cause: dict, counts: dict) -> None:
        """Work done on this vCPU outside its threads (the hypervisor's, on its behalf: a migration's
        log-dirty faults): pending, so it runs with the vCPU's next Run; never teed to a served domain."""
        m = self.meter
        tee, m.tee = m.tee, None
        for cause, v in ns_by_cause.items():
            m.add_ns(cause, v)
        for name, n in counts.items():
            m.count(name, n)
        m.tee = tee

    def k(self, action: str, *args):
        """Run guest-kernel ``action`` on this vCPU, its work reported to this vCPU's meter."""
        hv = self.hv
        prev, hv.meter = hv.meter, self.meter
        try:
            return getattr(self.kernel, action)(*args)
        finally:
            hv.meter = prev

    def hypercall(self, nr: int, *args) -> int:
        """Hypercall number ``nr`` by this vCPU (a driver's ``HYPERVISOR_*`` call): counted, checked
        against the guest type, priced, its handler run."""
        hv = self.hv
        prev, hv.meter = hv.meter, self.meter
        try:
            return hv.hypercall(self.kernel.p.vcpu, nr, *args)
        finally:
            hv.meter = prev

    def flush(self):
        """``("run", ns)`` for the work reported since the last flush (0 if none)."""
        return ("run", self.meter.take())

    # ------------------------------------------------------------------ threads and interrupts
    def spawn(self, gen, serves=None) -> None:
        if serves is not None:
            self.tags[gen] = serves
        self.ready.append(gen)
        self.poke()

    def raise_irq(self, handler_factory, serves=None, source: str = "irq") -> None:
        self.irqs.append((handler_factory, serves))
        self.poke(source)

    def poke(self, source: str = "thread") -> None:
        """Something became runnable: wake the vCPU if it idles, else cut a long Run short."""
        ev = self._wake_ev
        if ev is not None and not ev.triggered:
            self.kick(source)
        elif self.polling or not self.cur_irq:
            self.kernel.p.interrupt()

    def preempt(self, ns: int) -> bool:
        """The dispatcher cuts the Run in flight short with ``ns`` of it left (an interrupt): keep
        the rest to resume. Refused while an interrupt handler runs (handlers do not nest)."""
        if self.polling:  # a wake-up ends the halt poll: the rest of the window is not spent
            self.polling = False
            self.busy_ns -= ns
            self.meter.ns["idle.halt_poll"] = self.meter.ns.get("idle.halt_poll", 0.0) - ns
            self._halt_done(self.engine.now_ns, hit=True)
            return True
        if self.cur_irq:
            return False
        burst = self.burst
        self.burst = None
        self.busy_ns -= ns
        stash = (ns, burst[0], burst[1]) if burst is not None else (ns, 0, ns)
        gen = self.cur
        if gen is None:
            self._orphan = stash
        else:
            self._resume[gen] = stash
            self.ready.appendleft(gen)
            self.cur = None
            self.meter.tee = None
        return True

    def _run_resumed(self, stash):
        ns, units, total = stash
        if units:
            self.burst = (units, total)
        self.busy_ns += ns
        return Run(ns)

    def units_in_flight(self, left_ns: int) -> float:
        """The fraction done of the units of the Run in flight (``left_ns`` of it left) and of any
        cut short, for a measurement window that closes now."""
        u = 0.0
        b = self.burst
        if b is not None and b[1] > 0:
            u += b[0] * max(0.0, 1.0 - left_ns / b[1])
        for ns, units, total in (*self._resume.values(), *((self._orphan,) if self._orphan else ())):
            if units and total > 0:
                u += units * max(0.0, 1.0 - ns / total)
        return u

    def kick(self, source: str = "event") -> None:
        """``vcpu_kick``: wake the vCPU if it is idle (``source``: what woke it, for the kernel's
        wake-up path)."""
        ev = self._wake_ev
        if ev is not None and not ev.triggered:
            now = self.engine.now_ns
            # a wake-up at the instant the vCPU blocked is its own last work completing (an event
            # that work succeeded, whose callbacks run after the Run's decision): no wake-up path
            own = self._idle_since is not None and now == self._idle_since
            self._wake_src = None if own else source
            if self._halt_start is not None and not own:
                self._halt_done(now, hit=False)
            if self._idle_since is not None:
                if self._idle_io:
                    self.iowait_ns += self.engine.now_ns - self._idle_since
                self._idle_since = None
            ev.succeed()

    def iowait_until(self, now: int) -> int:
        """I/O-wait time, including an idle period still in progress at ``now``."""
        if self._idle_since is not None and self._idle_io:
            return self.iowait_ns + (now - self._idle_since)
        return self.iowait_ns

    def _ready_cb(self, gen, io: bool, source: str = "thread"):
        def cb(_ev):
            if io:
                self.io_waiting -= 1
            self.ready.append(gen)
            self._woken_set.add(gen)
            self._woken += 1
            self.poke(source)
        return cb

    # ------------------------------------------------------------------ halt polling (KVM)
    def _poll_window(self) -> int:
        """The halt-poll window of this idle period: KVM's per-vCPU ``halt_poll_ns`` (0 without
        halt polling)."""
        mx = getattr(self.kernel, "halt_poll_ns", 0)
        return min(self._poll_ns, mx) if mx > 0 else 0

    def _halt_done(self, now: int, hit: bool) -> None:
        """The halt ended (``hit``: inside the poll window): KVM's adaptive window update
        (``kvm_vcpu_halt``: grow when the vCPU blocked for less than the maximum, shrink when it
        blocked for longer; see :mod:`guest_kernels.hvm`)."""
        t0, self._halt_start = self._halt_start, None
        if t0 is None:
            return
        self._poll_ns = self.kernel.next_halt_poll_ns(self._poll_ns, now - t0, hit)
        self.count("idle.halt_poll_hit" if hit else "idle.halt_poll_miss")

    def _set_cur(self, gen, is_irq: bool, tag) -> None:
        self.cur, self.cur_irq = gen, is_irq
        self.meter.tee = tag

    def next(self, now_ns: int):
        if self.burst is not None:
            self.dom_os.units += self.burst[0]
            self.burst = None
        if self.polling:  # the poll window passed with nothing to do: the vCPU blocks now
            self.polling = False
        meter = self.meter
        if self._wake_src is not None:  # first decision after a block: the wake-up path
            src, self._wake_src = self._wake_src, None
            if hasattr(self.kernel, "wake"):  # every GuestKernel has one (a test's stub may not)
                self.k("wake", src)
        if self.cur is not None and not self.cur_irq and self.ready:
            # CFS-like: a runnable thread takes over when the current one has used its slice, or
            # when one woke from a sleep and the current one has run past the wake-up granularity
            used = now_ns - self._turn_start
            if used >= THREAD_SLICE_NS or (self._woken and used >= WAKEUP_GRANULARITY_NS):
                self.ready.append(self.cur)
                self.cur = None
                meter.tee = None
        while True:
            if self.irqs and (self.cur is None or not self.cur_irq):
                if self.cur is not None:
                    self.ready.appendleft(self.cur)
                    self._irq_held = self.cur  # resumes after the handler with its turn as it was
                factory, tag = self.irqs.popleft()
                self._set_cur(factory(), True, tag)
                self._polled = False  # the handler returns to the idle loop, which halts (and polls) again
            if self.cur is None:
                if self._orphan is not None:
                    stash, self._orphan = self._orphan, None
                    return self._run_resumed(stash)
                if self.ready:
                    gen = self.ready.popleft()
                    self._set_cur(gen, False, self.tags.get(gen))
                    if gen is not self._irq_held:  # an interrupt does not restart a thread's turn (CFS
                        self._turn_start = now_ns  # keeps its vruntime), else one thread starves the rest
                    self._irq_held = None
                    self._woken = max(0, self._woken - 1) if gen in self._woken_set else self._woken
                    self._woken_set.discard(gen)
                    self.switched_in = self.last_thread is not None and gen is not self.last_thread
                    if self.switched_in:
                        meter.add(_SWITCH[0], _SWITCH[1])
                    self.last_thread = gen
                    self._idle_charged = False
                    self._polled = False
                else:
                    meter.tee = None
                    if not self._idle_charged:
                        self._idle_charged = True
                        self.k("idle")
                        if self.irqs or self.ready:  # something arrived meanwhile: do not sleep
                            self.kernel.p.cancel_block()
                            continue
                    if not self.kernel.p.blocking():  # a hypercall block waits now; its cost runs on wake
                        ns = int(meter.take())
                        if ns > 0:
                            self.busy_ns += ns
                            return Run(ns)
                    if not self._polled:
                        self._polled = True
                        if getattr(self.kernel, "halt_poll_ns", 0) > 0:
                            self._halt_start = now_ns
                        poll = self._poll_window()
                        if poll > 0:  # halt polling: spin on the pCPU, cut short by any wake-up
                            self.polling = True
                            meter.add_ns("idle.halt_poll", poll)
                            meter.count("idle.halt_poll")
                            ns = int(meter.take())
                            self.busy_ns += ns
                            return Run(ns)
                    self._wake_ev = ev = self.engine.event()
                    self._idle_since = now_ns
                    self._idle_io = self.io_waiting > 0
                    return Wait(ev)
            if self._resume:
                stash = self._resume.pop(self.cur, None)
                if stash is not None:
                    return self._cap(stash[0], stash[1], stash[2], now_ns, True)
            try:
                cmd = next(self.cur)
            except StopIteration:
                self.tags.pop(self.cur, None)
                self.cur = None
                meter.tee = None
                ns = int(meter.take())
                if ns > 0:
                    self.busy_ns += ns
                    return Run(ns)
                continue
            kind = cmd[0]
            if kind == "run":
                ns = int(cmd[1])
                units = cmd[2] if len(cmd) > 2 else 0
                if ns > 0:
                    return self._cap(ns, units, ns, now_ns, False)
                if units:
                    self.dom_os.units += units
                continue
            if kind in ("wait", "iowait"):
                val = cmd[1]
                if val.callbacks is None:  # already processed (a Timeout is "triggered" at birth)
                    continue
                if self.cur_irq:
                    raise RuntimeError(f"{self.name}: an interrupt handler may not sleep")
                io = kind == "iowait"
                if io:
                    self.io_waiting += 1
                val.callbacks.append(self._ready_cb(self.cur, io))
                self.cur = None
                meter.tee = None
                continue
            if kind == "sleep":
                ns = int(cmd[1])
                if ns <= 0:
                    continue
                if self.cur_irq:
                    raise RuntimeError(f"{self.name}: an interrupt handler may not sleep")
                self.engine.timeout_ns(ns).callbacks.append(self._ready_cb(self.cur, False, "timer"))
                self.cur = None
                meter.tee = None
                continue
            if kind == "bwait":
                val = cmd[1]
                if val.callbacks is None:
                    continue
                self._wake_ev = None
                self._idle_since = now_ns
                self._idle_io = True
                val.callbacks.append(self._bwake)
                return Wait(val)
            raise ValueError(f"{self.name}: unknown command {kind!r}")

    def _cap(self, ns: int, units, total: int, now_ns: int, resumed: bool):
        """The Run of ``ns`` for the current thread (``units`` complete when all ``total`` ns of it is
        done), cut where CFS would let a runnable thread in (the rest kept to resume)."""
        if self.ready and not self.cur_irq:
            limit = (WAKEUP_GRANULARITY_NS if self._woken else THREAD_SLICE_NS) - (now_ns - self._turn_start)
            run = min(ns, max(limit, CUT_MIN_NS))  # a turn already used up (kept across interrupts)
            if ns - limit > CUT_MIN_NS and run < ns:
                self._resume[self.cur] = (ns - run, units, total)
                self.busy_ns += run
                return Run(run)
        if units:
            self.burst = (units, total)
        self.busy_ns += ns
        return Run(ns)

    def _bwake(self, _ev) -> None:
        if self._idle_since is not None:
            self.iowait_ns += self.engine.now_ns - self._idle_since
            self._idle_since = None


class DomainOS:
    """A running OS: its vCPUs, kernels, event-channel port handlers and what it has done."""

    def __init__(self, name: str, domain, engine, hv, kernels, pricer, *, scan_ports=None):
        self.name = name
        self.domain = domain
        self.engine = engine
        self.hv = hv
        self.pricer = pricer
        self.kernels = list(kernels)
        self.vcpus = [VcpuOS(self, v, k, LiveMeter(pricer)) for v, k in enumerate(self.kernels)]
        self.scan_ports = scan_ports  # vcpu_id -> pending event-channel ports (the 2-level scan)
        self.port_handlers: dict[int, object] = {}
        self.accounts: dict[int, LiveMeter] = {}  # domid served -> work done for it
        self.units = 0.0
        self.latencies_us: list[float] = []
        self._next_vcpu = 0
        self.mmu = None  # the guest-side MMU (page tables as data), when built

    @property
    def kernel(self):
        return self.kernels[0]

    @property
    def boot(self) -> VcpuOS:
        """vCPU 0: where event channels and device interrupts are delivered."""
        return self.vcpus[0]

    def account(self, domid: int) -> LiveMeter:
        """The account of the work this OS does on behalf of domain ``domid``."""
        acc = self.accounts.get(domid)
        if acc is None:
            acc = self.accounts[domid] = LiveMeter(self.pricer)
        return acc

    def spawn(self, gen, *, vcpu: int | None = None, serves: int | None = None) -> VcpuOS:
        """Start a thread (on ``vcpu``, or the next vCPU round-robin)."""
        if vcpu is None:
            vcpu = self._next_vcpu % len(self.vcpus)
            self._next_vcpu += 1
        v = self.vcpus[vcpu]
        v.spawn(gen, None if serves is None else self.account(serves))
        return v

    def raise_irq(self, handler_factory, *, serves: int | None = None, vcpu: int = 0) -> None:
        self.vcpus[vcpu].raise_irq(handler_factory, None if serves is None else self.account(serves))

    def record(self, t0_ns: int, units: float = 1.0, pending_ns: int = 0) -> None:
        """A unit of work completed (started at ``t0_ns``; ``pending_ns`` of its work still to run)."""
        self.units += units
        self.latencies_us.append((self.engine.now_ns + pending_ns - t0_ns) / 1000.0)

    # ------------------------------------------------------------------ event channels
    def bind_port(self, port: int, fn) -> None:
        self.port_handlers[port] = fn

    def on_kick(self, vcpu_id: int = 0) -> None:
        """Xen marked an upcall pending for ``vcpu_id`` (``vcpu_mark_events_pending``) and kicks it
        (``vcpu_kick``: a vCPU blocked in the hypervisor is unblocked)."""
        v = self.vcpus[vcpu_id if vcpu_id < len(self.vcpus) else 0]
        v.raise_irq(lambda v=v: self._upcall(v), source="event")
        v.kernel.p.kick()

    def _upcall(self, v: VcpuOS):
        """The event-channel upcall: delivery as the kernel takes it, the 2-level scan, then each
        pending port's driver handler."""
        v.k("irq", "evtchn")
        v.count("evtchn.upcall")
        for port in (self.scan_ports(v.vcpu_id) if self.scan_ports is not None else ()):
            h = self.port_handlers.get(port)
            if h is not None:
                h()
        yield v.flush()
