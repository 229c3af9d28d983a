"""Build and run: a :class:`~pvsim.scenario.Scenario` becomes a :class:`System`, which runs to results.

Design note
-----------
:func:`build` is the only code that wires simulated hosts. For each host of the scenario it makes
the hypervisor (:class:`~pvsim.hypervisor.hypervisor.Hypervisor`) with its frame table, the
scheduler by its Xen name under the pCPU dispatcher (:class:`~pvsim.sched.HostRunner`), the
xenstore, the physical devices (a disk, a NIC on the link to the outside, a bridge, and remote
disks over links to shared storage), the control domain its modes need (``Domain-0`` for Xen
modes, the ``host`` kernel for the KVM-style mode), and every domain placed on it: its record in the
hypervisor, one guest kernel per vCPU from the mode table (wired by :func:`pvsim.wiring.attach_guest`),
its running OS (:class:`guest_kernels.os.DomainOS`, one behaviour per vCPU on the dispatcher), its
device paths of the mode's kind (:data:`pvsim.io.paths.DEVICE_PATHS`: host stack, split drivers
with their backends on the control domain, emulated devices with a device model there, virtio with
vhost in the host kernel), its peer beyond the NIC, and its workload's threads
(:func:`pvsim.workloads.threads.thread`). All hosts share one engine: one clock, one seed.

Accounting (:meth:`System.run`): the run is measured between two snapshots (after ``warmup_ms``,
and at the end; a domain with a fixed number of units is measured until it finishes). A domain's
row splits each vCPU's elapsed time exactly: *running* time by cause in the proportions of the work
its vCPUs reported (their :class:`~pvsim.core.meter.LiveMeter`), less the hypervisor's vCPU switch time
(``world_switch.vcpu``); *blocked* time into ``idle.io_wait`` (a thread waited on a block request:
Linux's iowait) and ``idle``; *runnable* time into ``sched.wait``. Rounding to integer ns uses largest
remainders, so every breakdown sums to the row's elapsed time. The work a control domain did on a
guest's behalf (its backends, grant operations, device model) is also reported on the guest's row
(``dom0_breakdown_ns``, counts merged), so per-request costs include it.

Simplifications: hosts are joined only by the links the scenario declares; each link is a separate
NIC port (a domain with ``net_peer`` gets one on the link to that host); event channels and device
interrupts are delivered to vCPU 0; a domain's structural MMU
(for its memory steps) is vCPU 0's.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from guest_kernels.modes import CONTROL_DOMAIN, MODES
from guest_kernels.os import DomainOS
from guest_kernels.program import ProgramOS
from pvsim.core.engine import Engine
from pvsim.core.errors import ScenarioError
from pvsim.core.meter import Meter, Pricer
from pvsim.core.profile import load_profile
from pvsim.core.version import __version__
from pvsim.ha import inrun as failures_inrun
from pvsim.hypervisor.domain import Domain
from pvsim.hypervisor.hypervisor import Hypervisor
from pvsim.io import evtchn as ev
from pvsim.io.devices import NIC, Bridge, Disk, Link, Outside, Peer, RemoteDisk
from pvsim.io.paths import DEVICE_PATHS, DeviceModel, Socket
from pvsim.io.xenstore import XenStore
from pvsim.migrate import inrun
from pvsim.mm import workloads as mmw
from pvsim.mm.host import attach_machine_memory
from pvsim.mm.x86 import PAGE_LEVELS
from pvsim.pricing import price_actions, price_step
from pvsim.programs import eligible as program_eligible
from pvsim.programs import make_program
from pvsim.results import Results, round_breakdown
from pvsim.scenario import OUTSIDE, DomainSpec, HostSpec, Scenario, parse_cpulist
from pvsim.sched import HostRunner, make_scheduler
from pvsim.sched.costs import switch_cost_from_profile
from pvsim.sched.footprint import NONE, FootprintTracker, cache_model, footprint_of
from pvsim.sched.hk.runner import CompiledRunner, has_kernel
from pvsim.sched.topology import HostTopology, placement
from pvsim.wiring import ALIGN_2M, MAX_STRUCTURAL_PAGES, attach_guest, host_leaf_level
from pvsim.workloads.spec import RATE_METRICS, A
from pvsim.workloads.threads import thread

TCPIP_HEADER_BYTES = 40
LOG_OFFSET_BYTES = 32 << 30  # where an op mix's synchronous writes go (a sequential log)


# ============================================================================== device attachment
class Attachment:
    """What a domain's device paths are connected to: the guest's OS and kernel, the OS running
    their backends (the control domain, or the guest itself natively), the host's xenstore, disk,
    NIC and bridge. The per-mode steps of a path go to the kernel of the OS taking them."""

    def __init__(self, host: "HostRuntime", guest: "DomainRuntime", backend: "DomainRuntime"):
        self.host = host
        self.engine = host.engine
        self.hv = host.hv
        self.xs = host.xs
        self.gdom, self.bdom = guest.domain, backend.domain
        self.guest_os, self.backend_os = guest.os, backend.os
        self.g = guest.os.boot
        n = len(backend.os.vcpus)
        self.d = backend.os.vcpus[len(backend.served) % n] if backend is not guest else guest.os.boot
        if backend is not guest:
            backend.served.append(guest)
        self.account = backend.os.account(guest.domain.domid) if backend is not guest else None
        self.dm_price = guest.os.kernel.dm_access_price

    def spawn_backend(self, gen) -> None:
        self.d.spawn(gen, self.account)

    def bridge_rx(self, handler) -> None:
        self.host.bridge.attach(self.gdom.domid, handler)

    def bind_port(self, dom, port: int, fn) -> None:
        (self.guest_os if dom is self.gdom else self.backend_os).bind_port(port, fn)

    # the per-mode work of a path, done by the kernel of the OS that takes the step
    @staticmethod
    def syscall(os_, n: int = 1) -> None:
        for _ in range(n):
            os_.k("syscall")

    @staticmethod
    def dom0_irq_entry(os_, physical: bool = True) -> None:
        os_.k("irq", "physical" if physical else "evtchn")

    @staticmethod
    def guest_irq_entry(os_, evtchn: bool = False) -> None:
        os_.k("irq", "evtchn" if evtchn else "device")

    @staticmethod
    def trapped_access(os_, n: int, reason: str) -> None:
        if n:
            os_.k("device_access", n, reason)

    def dm_access(self, os_, n: int) -> None:
        if n and self.dm_price:
            if isinstance(self.dm_price, str):
                os_.work("device.emulation", self.dm_price, n)
            else:  # the kernel's own steps, each its cause (a hosted VMM's world switch, VMApp calls)
                for cause, price, units in self.dm_price:
                    os_.work(cause, price, n * units)
            os_.count("device_model.access", n)


# ============================================================================== the threads' view
class GuestEnv:
    """A workload thread's view of its domain (what :func:`pvsim.workloads.threads.thread` drives)."""

    def __init__(self, dom: "DomainRuntime", vcpu, rng):
        self.dom = dom
        self.v = vcpu
        self.rng = rng
        self.engine = dom.host.engine

    @property
    def now(self) -> int:
        return self.engine.now_ns

    # ------------------------------------------------------------------ budget and records
    def budget(self, n: float) -> float:
        return self.dom.claim(n)

    def record(self, t0: int, units: float) -> None:
        """A unit completed; work still pending on the vCPU runs before anything else of it, so the
        unit's latency ends when that work will have run."""
        self.dom.os.record(t0, units, int(self.v.meter.pending))

    def spawn(self, gen) -> None:
        """Start a unit of an open-loop workload as a thread of its own."""
        self.dom.inflight += 1
        self.dom.os.spawn(self.dom._wrap(gen, unit=True))

    def take(self) -> int:
        return self.v.meter.take()

    def take_upto(self, ns: int) -> int:
        return self.v.meter.take_upto(ns)

    def pending(self) -> float:
        return self.v.meter.pending

    def flush_run(self):
        ns = self.v.meter.take()
        if ns > 0:
            yield ("run", ns)

    # ------------------------------------------------------------------ CPU
    def charge_actions(self, step, k: float) -> None:
        cost = self.dom.price(step)
        self._charge(cost, k)

    def _charge(self, cost, k: float) -> None:
        m = self.v.meter
        g = self.dom.host.pricer.ghz
        for cause, cyc in cost.cycles.items():
            m.add_ns(cause, cyc * k / g)
        for name, c in cost.counts.items():
            m.count(name, c * k)

    def cpu(self, body) -> None:
        p = self.dom.host.pricer
        if body.key is not None:
            ns = p.ns(body.key)
        elif body.cycles is not None:
            ns = body.cycles / p.ghz
        else:
            ns = float(body.ns)
        if body.dist == "exp":
            ns = max(1.0, float(self.rng.exponential(ns)))
        self.v.meter.add_ns(body.cause, ns)

    def unit_ns(self, steps) -> float:
        p = self.dom.host.pricer
        total = 0.0
        for s in steps:
            if s.kind == "actions":
                total += self.dom.price(s).cpu_cycles / p.ghz * s.times
            else:
                b = s.body
                total += (p.ns(b.key) if b.key is not None else b.cycles / p.ghz if b.cycles is not None
                          else float(b.ns)) * s.times
        return total

    def charge_units(self, steps, n: float) -> int:
        for s in steps:
            if s.kind == "actions":
                self._charge(self.dom.price(s), n * s.times)
            else:
                b = s.body
                p = self.dom.host.pricer
                ns = p.ns(b.key) if b.key is not None else b.cycles / p.ghz if b.cycles is not None else float(b.ns)
                self.v.meter.add_ns(b.cause, ns * n * s.times)
        return self.v.meter.take()

    def syscalls(self, n: int) -> None:
        for _ in range(int(n)):
            self.v.k("syscall")

    # ------------------------------------------------------------------ block I/O
    def _blk(self):
        blk = self.dom.blk
        if blk is None:
            raise RuntimeError(f"{self.dom.spec.name}: no block device")
        return blk

    def blk_io(self, op: int, sector: int, nbytes: int):
        box: list = []
        yield from self._blk().submit_gen(op, sector, nbytes, box)
        yield ("iowait", box[0].ev)

    def disk(self, step):
        b = step.body
        op = 0 if b.op == "read" else 1 if b.op == "write" else (0 if self.rng.random() < b.read_frac else 1)
        cap = self.dom.disk_port.capacity_sectors * 512
        span = min(cap, b.span_bytes)
        if b.pattern == "random":
            align = b.align
            sector = int(self.rng.integers(0, max(1, span // align))) * (align // 512)
        else:
            cur = self.dom.cursors.get(step.key, 0)
            self.dom.cursors[step.key] = cur + b.bytes
            sector = ((b.offset_bytes + cur % span) % cap) // 512
        yield from self.blk_io(op, sector, b.bytes)

    def disk_io(self, nbytes: int, write: bool):
        nbytes = max(512, -(-int(nbytes) // 512) * 512)
        cap = self.dom.disk_port.capacity_sectors * 512
        if write:
            cur = self.dom.cursors.get("disk_io.log", 0)
            self.dom.cursors["disk_io.log"] = cur + nbytes
            sector = ((LOG_OFFSET_BYTES + cur % (1 << 29)) % cap) // 512
        else:
            sector = int(self.rng.integers(0, max(1, cap // 4096))) * 8
        yield from self.blk_io(1 if write else 0, sector, nbytes)

    # ------------------------------------------------------------------ network
    def _net(self):
        net = self.dom.net
        if net is None:
            raise RuntimeError(f"{self.dom.spec.name}: no network device")
        return net

    def packets_bytes(self, packets: float) -> int:
        return max(1, int(round(float(packets) * self.dom.mss)))

    def send(self, nbytes: int):
        yield from self._net().send(int(nbytes), ("bulk", None, False, self.dom.domid))

    def request(self, nbytes: int, response_bytes: int):
        key = self.dom.next_request_id()
        event = self.dom.sock.expect(key)
        yield from self._net().send(int(nbytes), ("req", key, True, self.dom.domid))
        yield ("wait", event)

    def await_request(self, conn: int):
        event = self.dom.sock.expect(("req", conn))
        yield ("wait", event)
        return self.dom.peer.sent_at.get(conn, self.now)

    def respond(self, nbytes: int, conn: int):
        yield from self._net().send(int(nbytes), ("rsp", conn, True, self.dom.domid))

    # ------------------------------------------------------------------ memory on real page tables
    def _mmu(self):
        mmu = self.dom.os.mmu
        if mmu is None:
            raise ScenarioError(f"domains.{self.dom.spec.name}.options.mmu",
                                "memory steps need the structural MMU (mmu = \"structural\")")
        return mmu

    def memory(self, step) -> None:
        b = step.body
        mmu = self._mmu()
        need = b.pages
        with self.dom.metered_into(self.meter_for_now()):
            level = PAGE_LEVELS[b.page_size]
            if level > 1:  # a hugetlbfs / THP region (set up once, unmetered)
                pages = mmu.huge_region(need, level)
            else:
                if len(mmu.current.pages) < need:
                    mmu.populate(need)
                pages = self.dom.page_vas(need)
            n = b.accesses
            if b.pattern == "uniform":
                idx = self.rng.integers(0, len(pages), size=n)
                vas = pages[idx] + (self.rng.integers(0, 512, size=n) << 3)
                writes = self.rng.random(n) < b.write_frac
            elif b.pattern == "hot":
                vas, writes = mmw.locality_trace(self.rng, pages, n, hot_frac=b.hot_frac, hot_prob=b.hot_prob,
                                                 write_ratio=b.write_frac)
            else:
                arrays = max(1, int(b.arrays))
                per_bytes = (len(pages) // arrays) * 4096
                k0 = self.dom.cursors.get(step.key, 0)
                self.dom.cursors[step.key] = k0 + n
                k = np.arange(k0, k0 + n, dtype=np.int64)
                arr = k % arrays
                off = ((k // arrays) % max(1, per_bytes // 64)) * 64
                vas = pages[0] + arr * np.int64(per_bytes) + off
                writes = arr == arrays - 1
            mmu.access_trace(vas, writes)
        self.meter_for_now().add("user", b.ref, n)

    def churn(self, step) -> None:
        b = step.body
        mmu = self._mmu()
        with self.dom.metered_into(self.meter_for_now()):
            ops = mmw.page_table_churn(self.rng, kind=b.kind, loops=1, pages=b.pages, touch_frac=b.touch_frac,
                                       parent_writes=b.parent_writes)
            mmw.run_churn(mmu, ops)

    # ------------------------------------------------------------------ set-up (unmetered)
    def meter_for_now(self):
        return self._setup_meter if getattr(self, "_setup_meter", None) is not None else self.v.meter

    def setup(self, steps):
        """Run the set-up steps once, unmetered: a benchmark's initialisation takes no simulated time."""
        if not steps:
            return
        self._setup_meter = Meter()
        try:
            for s in steps:
                if s.kind == "memory":
                    self.memory(s)
                elif s.kind == "churn":
                    self.churn(s)
                else:
                    raise ScenarioError(f"workloads.{self.dom.workload.name}.setup",
                                        f"set-up steps may be memory or churn, not {s.kind}")
        finally:
            self._setup_meter = None
        if False:  # pragma: no cover - makes this a generator
            yield


# ============================================================================== domains and hosts
class DomainRuntime:
    """One domain on one host: its hypervisor record, OS, devices, workload and measurements."""

    def __init__(self, host: "HostRuntime", spec: DomainSpec, domid: int, control: bool = False,
                 incarnation: str = ""):
        self.host = host
        self.spec = spec
        self.incarnation = incarnation  # "" as built; "@host" once migrated there (its own random streams)
        self.mode = MODES[spec.mode]
        self.domid = domid
        self.control = control
        sc = host.system.scenario
        self.workload = sc.catalogue.resolve(spec.workload, spec.params, f"domains.{spec.name}.workload")
        self.served: list[DomainRuntime] = []
        self.blk = self.net = self.dm = self.peer = None
        self.disk_port = host.disk
        self.sock = Socket(host.engine)
        self.cursors: dict = {}
        self._req = 0
        self.finished_ns: int | None = None
        self._threads_left = 0
        self.inflight = 0  # open-loop units in progress
        self._page_vas = None
        self._prices: dict = {}
        hv = host.hv
        self.domain = hv.add_domain(Domain(domid, spec.name, spec.mode, self.mode.hypercall_type, nr_vcpus=spec.vcpus,
                                           tot_pages=spec.memory_mib * 256, weight=spec.weight, cap=spec.cap,
                                           privileged=control))
        pl = placement(HostTopology.from_profile(host.profile, host.spec.pcpus),
                       parse_cpulist(spec.cpus, host.spec.pcpus, "cpus"), spec.vcpus,
                       pinned=spec.options.pin_vcpus, guest_topology=spec.options.topology)
        self.options = opts = spec.options.model_copy(update={"placement": (pl.wake, pl.migrate)})
        prof = host.profile
        top = int(prof.value("mmu.max_page_level_count")) if prof.has("mmu.max_page_level_count") else 2
        if opts.host_page_size is not None and PAGE_LEVELS[opts.host_page_size] > top:
            raise ScenarioError(f"domains.{spec.name}.options.host_page_size",
                                f"{opts.host_page_size} pages: profile {prof.name!r}'s processor has none"
                                f" (mmu.max_page_level_count = {top})")
        structural = self.workload.uses_memory and opts.mmu == "structural"
        kernels = []
        for v in range(spec.vcpus):
            _p, k = attach_guest(hv, self.domain, self.mode, vcpu_id=v, structural=structural and v == 0,
                                 nr_pages=host.structural_pages.get(spec.name), kernel_options=opts.kernel_options(),
                                 mmu_options=opts.mmu_options())
            kernels.append(k)
        dom = self.domain
        sc_ops = sc.run.ops
        self.budget = math.inf if (sc_ops is None or control or spec.workload == "idle") else float(sc_ops)
        self.claimed = 0.0
        for st in self.workload.action_steps():  # price the op mix now: building, not running
            self.price(st)
        self.program = make_program(self, kernels[0]) if not structural and program_eligible(self) else None
        if self.program is not None:  # one thread of CPU and sleeps per vCPU: the OS reduced to its loop
            self.os = ProgramOS(spec.name, self.program,
                                [host.engine.rng(f"workload/{spec.name}{incarnation}/{t}") for t in range(spec.vcpus)], kernels)
        else:
            self.os = DomainOS(spec.name, dom, host.engine, hv, kernels, host.pricer,
                               scan_ports=lambda v, dom=dom: ev.guest_upcall(dom, v))
            self.os.mmu = kernels[0].p.mmu if structural else None
        ev.evtchn_for(dom).on_kick = self.os.on_kick

    # ------------------------------------------------------------------ workload
    def claim(self, n: float) -> float:
        left = self.budget - self.claimed
        if left <= 0:
            return 0.0
        take = min(n, left)
        self.claimed += take
        return take

    def next_request_id(self) -> int:
        self._req += 1
        return self._req

    def price(self, step):
        """The memoised price of an op-mix step in this domain's mode (per step object: the workload's
        steps live as long as the domain)."""
        c = self._prices.get(id(step))
        if c is None:
            sc = self.host.system.scenario
            c = price_step(step, self.workload.spec, sc.catalogue, self.spec.mode, self.host.profile,
                           self.options)
            self._prices[id(step)] = c
        return c

    def page_vas(self, n: int):
        if self._page_vas is None or len(self._page_vas) < n:
            self._page_vas = np.fromiter(self.os.mmu.current.pages.keys(), dtype=np.int64) << 12
        return self._page_vas[:n]

    def metered_into(self, meter):
        return self.host.hv.metering(meter)

    @property
    def n_threads(self) -> int:
        return self.workload.threads if self.workload.threads is not None else self.spec.vcpus

    def start_threads(self) -> None:
        if self.program is not None:
            return  # the program is the vCPUs' behaviour itself
        w = self.workload
        self._threads_left = self.n_threads
        for t in range(self.n_threads):
            v = self.os.vcpus[t % len(self.os.vcpus)]
            env = GuestEnv(self, v, self.host.engine.rng(f"workload/{self.spec.name}{self.incarnation}/{t}"))
            self.os.spawn(self._wrap(thread(env, w, t)), vcpu=v.vcpu_id)

    def _wrap(self, gen, unit: bool = False):
        yield from gen
        if unit:
            self.inflight -= 1
        else:
            self._threads_left -= 1
        if self._threads_left == 0 and self.inflight == 0:
            self.finished_ns = self.host.engine.now_ns
            self.host.system.domain_finished(self)

    @property
    def mss(self) -> int:
        return min(self.workload.mtu, self.host.mtu) - TCPIP_HEADER_BYTES

    def packets_for(self, packets) -> int:
        """Payload bytes of ``packets`` full-sized segments."""
        return max(1, int(round(float(packets) * self.mss)))


class HostRuntime:
    """One simulated host: hypervisor, frame table, dispatcher, devices and the domains on it."""

    def __init__(self, system: "System", spec: HostSpec, index: int):
        self.system = system
        self.spec = spec
        self.name = spec.name
        self.index = index
        sc = system.scenario
        self.engine = system.engine
        self.profile = load_profile(spec.profile, field_name=f"{sc.host_path(index)}.profile")
        self.pricer = Pricer(self.profile)
        self.hv = Hypervisor(self.profile, self.engine)
        self.hv.nr_pcpus = spec.pcpus
        self.hv.host_pages = spec.memory_mib * 256
        self.xs = XenStore()
        self.switch_ns: Counter = Counter()
        # cache/TLB footprints of switches (pvsim.sched.footprint): a profile without [cache] has none
        self.footprint = (FootprintTracker(cache_model(self.profile), spec.pcpus)
                          if self.profile.has("cache.line_bytes") else None)
        self.footprint_ns: dict[int, list[int]] = {}
        # a bare-metal OS's host: the dispatcher is that kernel's scheduler, a switch a process switch
        self.native_kernel = any(MODES[d.mode].sole for d in sc.domains_on(self.name))
        self.switch_cause = "kernel.process_switch" if self.native_kernel else "world_switch.vcpu"
        base_cost = switch_cost_from_profile(self.profile, tracker=self.footprint, native=self.native_kernel)

        def switch_cost(prev, nxt):
            c = int(base_cost(prev, nxt))
            d = nxt.dom.domid
            self.switch_ns[d] += c
            fc, ft = base_cost.last_parts
            if fc or ft:
                f = self.footprint_ns.setdefault(d, [0, 0])
                f[0] += fc
                f[1] += ft
            return c

        def refund(unit, c):
            d = unit.dom.domid
            self.switch_ns[d] -= c
            if self.footprint is not None:
                fc, ft = self.footprint.undo(unit.cpu)
                if fc or ft:
                    f = self.footprint_ns[d]
                    f[0] -= fc
                    f[1] -= ft

        sched = make_scheduler(spec.scheduler.name, spec.scheduler.params)
        if spec.scheduler.dispatcher == "compiled" and has_kernel(sched.name):
            self.runner = CompiledRunner(self.engine, sched, spec.pcpus, switch_costs=(base_cost.lazy_ns, base_cost.full_ns),
                                         footprint=self.footprint)
        else:
            self.runner = HostRunner(self.engine, sched, spec.pcpus, switch_cost_ns=switch_cost)
        self.hv.sched = self.runner  # SCHEDOP_*, set_timer_op and VCPUOP_* act on the dispatcher
        self.runner.switch_refund = refund
        # physical devices: the local disk, the NIC on the link to the outside, the bridge
        self.disk = Disk(self.engine, self.pricer, self.engine.rng(f"io/disk/{self.name}"), spec.disk.kind,
                         float(spec.disk.mean_service_ns or 0.0))
        out = sc.link_between(self.name, OUTSIDE)
        self.mtu = out.mtu if out is not None else 1500
        self.outside = Outside()
        self.nic = NIC(self.engine, self.pricer, self.outside, rate_mbps=out.rate_mbps if out else None,
                       latency_us=out.latency_us if out else None)
        self.bridge = Bridge(self.nic)
        self.ports: dict[str, tuple] = {}  # NIC ports on links to other hosts (domains' net_peer)
        self.remote: dict[str, RemoteDisk] = {}
        for st in sc.storage:
            link = system.links.get(frozenset((self.name, st.name)))
            if link is not None:
                self.remote[st.name] = RemoteDisk(self.engine, link, self.name, st.name, latency_us=st.latency_us,
                                                  throughput_mbps=st.throughput_mbps, iops=st.iops)
        # domains: the control domain first (domid 0), then the others in scenario order
        specs = sc.domains_on(self.name)
        coming = {t.get("domain") for t in sc.migrations if isinstance(t, dict) and t.get("to") == self.name}
        if system.failure_plan is not None:  # [[failures]]: the domains that will restart here
            coming |= system.failure_plan.coming(self.name)
        kinds = {MODES[d.mode].control for d in specs + [d for d in sc.domains if d.name in coming]} - {None}
        control_name = None
        if kinds:
            kind = kinds.pop()
            control_name, control_mode = CONTROL_DOMAIN[kind]
            if not any(d.name == control_name for d in specs):
                specs.insert(0, DomainSpec(name=control_name, mode=control_mode, workload="idle", vcpus=1,
                                           memory_mib=512, host=self.name))
            else:
                specs.sort(key=lambda d: d.name != control_name)
        self.structural_pages = self._plan_memory(specs)
        self.domains: list[DomainRuntime] = []
        for domid, d in enumerate(specs, start=0 if control_name else 1):
            self.domains.append(DomainRuntime(self, d, domid, control=(d.name == control_name)))
        self.control = self.domains[0] if control_name else None
        self.incoming: list[DomainRuntime] = []
        for dr in self.domains:
            self._attach_devices(dr)
            self._add_vcpus(dr)

    def _add_vcpus(self, dr: DomainRuntime) -> None:
        if self.footprint is not None:
            self.footprint.register(dr.domid, self.footprint_of(dr))
        aff = set(parse_cpulist(dr.spec.cpus, self.spec.pcpus, "cpus"))
        order = sorted(aff)
        for v, vos in enumerate(dr.os.vcpus):
            one = {order[v % len(order)]} if dr.spec.options.pin_vcpus else aff  # 1:1 (vcpupin)
            self.runner.add_vcpu(dr.domid, v, vos, weight=dr.spec.weight, cap=dr.spec.cap, affinity=one,
                                 name=f"{dr.spec.name}.{v}", params=dr.spec.sched_params or None,
                                 vcpu=dr.domain.vcpus[v])

    def receive(self, spec: DomainSpec, incarnation: str) -> DomainRuntime:
        """``xl migrate-receive``: an incoming domain built here (the next domid, its frontends on this
        host's backends); its vCPUs join the dispatcher only at :meth:`admit`."""
        domid = max((d.domid for d in self.domains + self.incoming), default=0) + 1
        dr = DomainRuntime(self, spec, domid, incarnation=incarnation)
        self._attach_devices(dr)
        self.incoming.append(dr)
        return dr

    def admit(self, dr: DomainRuntime, start_threads: bool = True) -> None:
        """A restored domain resumes here: its threads start, its vCPUs join the running dispatcher."""
        self.incoming.remove(dr)
        self.domains.append(dr)
        if start_threads:
            dr.start_threads()
        self._add_vcpus(dr)
        if start_threads and dr.peer is not None and dr.peer.kind == "clients":
            for conn in range(dr.n_threads):
                dr.peer.send_request(conn, dr.peer.turnaround_ns)

    def footprint_of(self, dr: DomainRuntime):
        """The cache/TLB working set of ``dr``'s contexts: its workload's ``footprint``, a TLB page priced
        as one miss of the mode's own walk (the guest kernel's ``tlb_walks``)."""
        fs = dr.workload.spec.footprint
        if fs is None or self.footprint is None:
            return NONE
        walk = price_actions((A("tlb_walks", (1,)),), dr.spec.mode, self.profile, dr.spec.options)
        return footprint_of(self.footprint.model, fs.cache_kib, fs.tlb_pages, walk.cpu_cycles / self.profile.clock_ghz)

    def footprint_ns_of(self, domid: int) -> tuple[int, int]:
        """(cache refill ns, TLB refill ns) of domain ``domid``'s switch-ins so far."""
        if isinstance(self.runner, CompiledRunner):
            return self.runner.footprint_ns_of(domid)
        f = self.footprint_ns.get(domid, (0, 0))
        return int(f[0]), int(f[1])

    def switch_ns_of(self, domid: int) -> int:
        """The hypervisor's vCPU-switch time charged to domain ``domid`` so far."""
        if isinstance(self.runner, CompiledRunner):
            return self.runner.switch_ns_of(domid)
        return int(self.switch_ns.get(domid, 0))

    def _plan_memory(self, specs) -> dict:
        """Frames modelled as data for each domain with memory steps, and the host frame table."""
        pages = {}
        pad = 0
        for d in specs:
            w = self.system.scenario.catalogue.resolve(d.workload, d.params)
            if w.uses_memory and d.options.mmu == "structural":
                need = max([int(s.body.pages) * (int(s.body.arrays) if s.kind == "memory" else 4)
                            for s in _walk_steps(w.steps + w.setup) if s.kind in ("memory", "churn")] or [0])
                # a large-page region: whole aligned leaves, and up to one leaf skipped for alignment
                span = max([1 << (9 * (PAGE_LEVELS[s.body.page_size] - 1))
                            for s in _walk_steps(w.steps + w.setup) if s.kind == "memory"] or [1])
                extra = 0 if span == 1 else (-(-need // span) + 1) * span
                want = max(need * 2 + 8192, 16384) + extra
                if extra and want > min(d.memory_mib * 256, MAX_STRUCTURAL_PAGES):
                    raise ScenarioError(f"domains.{d.name}.memory_mib",
                                        f"large pages need {want} frames ({-(-want // 256)} MiB) of modelled memory,"
                                        f" at most {min(d.memory_mib * 256, MAX_STRUCTURAL_PAGES)}")
                have = min(d.memory_mib * 256, MAX_STRUCTURAL_PAGES)
                # 1 GiB host leaves (HAP): model at least the first aligned gigabyte of the guest's
                # memory, which the p2m maps with one PDPTE leaf (fewer frames could get none)
                host = 1 << (9 * (host_leaf_level(MODES[d.mode], self.profile, d.options.host_page_size) - 1))
                if host > ALIGN_2M and have >= host:
                    want = max(want, host)
                    pad += host  # the padding up to a 1 GiB boundary (wiring.ensure_memory)
                pages[d.name] = min(have, want)
        if pages:
            attach_machine_memory(self.hv, sum(pages.values()) + 8192 + 4096 + 1024 * len(pages) + pad)
        return pages

    def _attach_devices(self, dr: DomainRuntime) -> None:
        w = dr.workload
        if not w.has_devices:
            return
        backend = self.control if dr.mode.control is not None else dr
        if backend is None:  # pragma: no cover - validation gives every virtualized host a control domain
            raise ScenarioError(f"domains.{dr.spec.name}", "no control domain to run its backends")
        if dr.spec.disk != "local":
            dr.disk_port = self.remote[dr.spec.disk]
        att = Attachment(self, dr, backend)
        path = DEVICE_PATHS[dr.mode.devices]
        o = dr.spec.options
        if path.needs_device_model:
            dr.dm = DeviceModel(att)
        if w.uses_disk:
            dr.blk = path.blk(att, dr.disk_port, dr.dm, o)
        if w.uses_network:
            resp = next((s.body.response_bytes for s in _walk_steps(w.steps) if s.kind == "request"), 1)
            req = next((s.body.bytes for s in _walk_steps(w.steps) if s.kind == "await"), None)
            if req is None:
                req = next((dr.packets_for(a.args[0]) for s in w.action_steps() for a in s.body
                            if a.name == "net_io" and not a.args[1]), 300)
            kind = w.peer if w.peer != "none" else "sink"
            nic, outside = self._port_to(dr.spec.net_peer)
            dr.peer = outside.add(Peer(self.engine, self.pricer, kind, resp_bytes=int(resp), mss=dr.mss,
                                       domid=dr.domid, request_bytes=int(req)))
            dr.net = path.net(att, nic, dr.sock, dr.mss, dr.dm, o)

    def _port_to(self, peer_host: str):
        """The NIC and the network beyond it for a domain whose peer is on ``peer_host``: the outside
        link's NIC, or (another host, linked to this one) a NIC port on the link between the two
        hosts, its frames one flow on the link's pipe each way, received by this host's bridge. A
        domain migrated to its peer's host talks to it over the outside NIC [simplification]."""
        link = self.system.links.get(frozenset((self.name, peer_host))) if peer_host else None
        if link is None or peer_host == self.name:
            return self.nic, self.outside
        if peer_host not in self.ports:
            ls = self.system.scenario.link_between(self.name, peer_host)
            port = NIC(self.engine, self.pricer, Outside(), rate_mbps=ls.rate_mbps, latency_us=ls.latency_us,
                       tx_pipe=link.pipe_from(self.name), rx_pipe=link.pipe_from(peer_host))
            port.on_rx = self.bridge.rx
            self.ports[peer_host] = (port, port.peer)
        return self.ports[peer_host]

    def start(self) -> None:
        for dr in self.domains:  # threads first: a vCPU's first decision is its workload, not idling
            dr.start_threads()
        self.runner.start()
        for dr in self.domains:
            if dr.peer is not None and dr.peer.kind == "clients":
                for conn in range(dr.n_threads):
                    dr.peer.send_request(conn, dr.peer.turnaround_ns)


def _walk_steps(steps):
    for s in steps:
        yield s
        if s.kind == "choice":
            for _p, sub in s.body:
                yield from _walk_steps(sub)


# ============================================================================== the system
class System:
    """A built scenario, ready to :meth:`run` once."""

    def __init__(self, scenario: Scenario):
        scenario.validate()
        self.scenario = scenario
        self.failure_plan = failures_inrun.prepare(scenario)  # [[failures]]: checked and planned, or None
        self.engine = Engine(seed=scenario.seed)
        self.links: dict[frozenset, Link] = {}
        for ls in scenario.links:
            self.links[frozenset(ls.between)] = Link(self.engine, ls.between[0], ls.between[1], ls.rate_mbps,
                                                     ls.latency_us, ls.mtu)
        self.hosts = [HostRuntime(self, h, i) for i, h in enumerate(scenario.hosts)]
        self.domains = [d for h in self.hosts for d in h.domains]
        self._finite_left = sum(1 for d in self.domains if math.isfinite(d.budget))
        self._all_done = self.engine.event()
        self._end_snaps: dict = {}
        for t in scenario.timeline:
            self._add_timeline(t)
        self.migrations = inrun.plan(self)  # [[migrations]]: the target incarnations built, nothing run
        self.failures = failures_inrun.plan(self, self.failure_plan)  # the restarts' incarnations built
        self._ran = False
        self._started = False

    # compatibility views for one-host tools (xl): the first host's
    @property
    def runner(self) -> HostRunner:
        return self.hosts[0].runner

    @property
    def profile(self):
        return self.hosts[0].profile

    def domain(self, name: str) -> DomainRuntime:
        for d in self.domains:
            if d.spec.name == name:
                return d
        raise ScenarioError("domain", f"no domain named {name!r}")

    def _add_timeline(self, t) -> None:
        at = int(round(t.at_ms * 1_000_000))
        if not t.domain:
            h = next(h for h in self.hosts if h.name == (t.host or self.hosts[0].name))
            h.runner.at(at, lambda _r, p=dict(t.params), h=h: h.runner.adjust_global(**p))
            return
        dr = self.domain(t.domain)
        h = dr.host
        params = dict(t.params)
        cpus = params.pop("cpus", None)

        def apply(_r, dr=dr, h=h, params=params, cpus=cpus):
            if params:
                h.runner.adjust(dr.domid, **params)
            if cpus is not None:
                h.runner.pin(dr.domid, None, hard=set(parse_cpulist(cpus, h.spec.pcpus, "cpus")))

        h.runner.at(at, apply)

    def snap(self, dr: DomainRuntime) -> dict:
        """A measurement snapshot of ``dr`` now (for migrations' before / during / after windows)."""
        dr.host.runner.sync()
        return _snapshot(dr)

    def migrated_in(self, src: DomainRuntime, dst: DomainRuntime) -> None:
        """``dst`` continues ``src``'s finite workload: the run waits for ``dst`` instead."""
        if src not in self._end_snaps:
            self._end_snaps[src] = self.snap(src)
            self._finite_left -= 1
        self._finite_left += 1

    def stop_waiting(self, dr: DomainRuntime, snap: dict | None, successor: DomainRuntime | None = None) -> None:
        """``dr`` stopped for good (its host failed; ``snap`` measured it then): the run no longer waits
        for its finite workload, but for ``successor``'s (its restarted incarnation) if one is given."""
        if not math.isfinite(dr.budget) or dr in self._end_snaps:
            return
        self._end_snaps[dr] = snap
        if successor is not None:
            return  # one incarnation takes the other's place: as many to wait for
        self._finite_left -= 1
        if self._finite_left == 0 and not self._all_done.triggered:
            self._all_done.succeed()

    def domain_finished(self, dr: DomainRuntime) -> None:
        if math.isfinite(dr.budget) and dr not in self._end_snaps:
            dr.host.runner.sync()
            self._end_snaps[dr] = _snapshot(dr)
            self._finite_left -= 1
            if self._finite_left == 0 and not self._all_done.triggered:
                self._all_done.succeed()

    def start(self) -> None:
        """Bring every host up (threads spawned, dispatchers started); :meth:`run` does it too."""
        if not self._started:
            self._started = True
            for h in self.hosts:
                h.start()
            inrun.start(self, self.migrations)
            failures_inrun.start(self, self.failures)

    def advance(self, until_ns: int) -> None:
        """Run the simulation up to simulated time ``until_ns`` (for harnesses and notebooks)."""
        self.start()
        self.engine.run(until_ns=until_ns)

    def _snapshots(self) -> dict:
        for h in self.hosts:
            h.runner.sync()
        return {d: _snapshot(d) for d in self.domains}

    def run(self, progress=None) -> Results:
        if self._ran:
            raise RuntimeError("a System runs once; build() again for another run")
        self._ran = True
        self.start()
        run = self.scenario.run
        start = self._snapshots()
        if run.duration_ms is not None:
            until = int(run.duration_ms * 1_000_000)
            warm = int(run.warmup_ms * 1_000_000)
            if warm:
                self.engine.run(until_ns=warm)
                start = self._snapshots()
            step = max(1, (until - warm) // 50)
            t = warm
            while t < until:
                t = min(until, t + step)
                self.engine.run(until_ns=t)
                if progress:
                    progress((t - warm) / max(1, until - warm))
            end = self._snapshots()
        else:
            if self._finite_left:
                self.engine.run_until(self._all_done)
            for h in self.hosts:
                h.runner.sync()
            end = {d: self._end_snaps.get(d) or _snapshot(d) for d in self.domains}
            if progress:
                progress(1.0)
        mig_rows: list[dict] = []
        if self.migrations:
            for m in self.migrations:  # the source incarnation is measured until it left its host
                gone = m.snaps.get("destroyed")
                if gone is not None:
                    end[m.src] = gone
                if m.dst in end and (m.dst not in start or m.snaps["resume"]["t"] > start[m.dst]["t"]):
                    start[m.dst] = m.snaps["resume"]  # the target incarnation from its resume
            mig_rows = [r for rs in inrun.rows(self.migrations, lambda d, a, b: _row(d, a, b, self), start, end)
                        for r in rs]
        moved = {x for m in self.migrations for x in (m.src, m.dst)}
        if self.failures is not None:  # each incarnation measured while it ran: to its stop, from its restart
            for dr, snap in self.failures.stop_snaps.items():
                end[dr] = snap
                moved.add(dr)
            for r in self.failures.restarts:
                if r.dst is not None and r.dst in end:
                    moved.add(r.dst)
                    if r.dst not in start or r.snaps["restart"]["t"] > start[r.dst]["t"]:
                        start[r.dst] = r.snaps["restart"]
        rows = [_row(d, start[d], end[d], self) for d in self.domains
                if d not in moved or end[d]["t"] > start[d]["t"]]
        host_rows = [_host_row(h, start, end) for h in self.hosts]
        sched_rows = [r for h in self.hosts for r in _sched_rows(h)]
        meta = {"pvsim_version": __version__, "profile": self.hosts[0].profile.name, "seed": self.scenario.seed,
                "scenario": self.scenario.name, "scheduler": self.hosts[0].spec.scheduler.name,
                "pcpus": self.hosts[0].spec.pcpus, "hosts": [h.name for h in self.hosts]}
        res = Results(rows, meta, sched_rows, host_rows)
        if mig_rows:
            res.migration_rows = mig_rows
        if self.failures is not None:
            res.failure_rows = failures_inrun.rows(self.failures)
        return res


def build(scenario: Scenario) -> System:
    """Wire the scenario's hosts and domains; :meth:`System.run` runs it."""
    return System(scenario)


# ============================================================================== measurement
def _snapshot(dr: DomainRuntime) -> dict:
    h = dr.host
    now = h.engine.now_ns
    units = dr.domain.units
    inflight = 0.0
    for v, u in zip(dr.os.vcpus, units):
        inflight += v.units_in_flight(h.runner.remaining_now(u))
    ctl = h.control
    acc = ctl.os.accounts.get(dr.domid) if ctl is not None and ctl is not dr else None
    return {
        "t": now,
        "rs": [h.runner.runstate_ns(u, now) for u in units],
        "switch": h.switch_ns_of(dr.domid),
        "fp": h.footprint_ns_of(dr.domid),
        "ns": [dict(v.meter.ns) for v in dr.os.vcpus],
        "counts": [dict(v.meter.counts) for v in dr.os.vcpus],
        "iowait": [v.iowait_until(now) for v in dr.os.vcpus],
        "units": dr.os.units + inflight,
        "nlat": len(dr.os.latencies_us),
        "dom0": (dict(acc.ns), dict(acc.counts)) if acc is not None else ({}, {}),
        "peer": (dr.peer.received_pkts, dr.peer.received_bytes) if dr.peer is not None else (0, 0),
        "ring": _ring_requests(dr),
        "ctx": [u.ctx_in for u in units],
        "migr": [u.migrations for u in units],
    }


def _ring_requests(dr) -> int:
    n = 0
    for dev in (dr.net, dr.blk):
        n += getattr(dev, "tx_requests", 0) + getattr(dev, "rx_requests", 0) + getattr(dev, "requests", 0)
    return n


def _delta(a: dict, b: dict) -> dict:
    out = dict(b)
    for k, v in a.items():
        out[k] = out.get(k, 0) - v
    return {k: v for k, v in out.items() if v}


def _row(dr: DomainRuntime, a: dict, b: dict, system: System) -> dict:
    h = dr.host
    prof = h.profile
    ghz = prof.clock_ghz
    n = len(dr.os.vcpus)
    elapsed = b["t"] - a["t"]
    rs = [[y - x for x, y in zip(ra, rb)] for ra, rb in zip(a["rs"], b["rs"])]
    running = sum(r[0] for r in rs)
    runnable = sum(r[1] for r in rs)
    blocked = sum(r[2] for r in rs)
    offline = sum(r[3] for r in rs)
    switch = b["switch"] - a["switch"]
    own = max(0, running - switch)
    work: dict[str, float] = {}
    for na, nb in zip(a["ns"], b["ns"]):
        for k, v in _delta(na, nb).items():
            work[k] = work.get(k, 0.0) + v
    total = sum(v for v in work.values() if v > 0)
    bd: dict[str, float] = {}
    if own > 0:
        if total > 0:
            f = own / total
            for k, v in work.items():
                if v > 0:
                    bd[k] = v * f
        else:
            bd["idle"] = float(own)
    iowait = min(float(blocked), float(sum(y - x for x, y in zip(a["iowait"], b["iowait"]))))
    if iowait > 0:
        bd["idle.io_wait"] = iowait
    bd["idle"] = bd.get("idle", 0.0) + (blocked - iowait) + offline
    if runnable:
        bd["sched.wait"] = float(runnable)
    fp_cache = b["fp"][0] - a["fp"][0]
    fp_tlb = b["fp"][1] - a["fp"][1]
    if switch - fp_cache - fp_tlb:
        bd[h.switch_cause] = float(switch - fp_cache - fp_tlb)
    if fp_cache:
        bd["cache.refill"] = float(fp_cache)
    if fp_tlb:
        bd["tlb.refill_after_switch"] = float(fp_tlb)
    breakdown = round_breakdown({k: v / n for k, v in bd.items()}, int(elapsed))
    counts = Counter()
    for ca, cb in zip(a["counts"], b["counts"]):
        counts.update(_delta(ca, cb))
    # the control domain's work on this domain's behalf
    dom0_ns = {k: v for k, v in _delta(a["dom0"][0], b["dom0"][0]).items() if v > 0}
    counts.update(_delta(a["dom0"][1], b["dom0"][1]))
    units = b["units"] - a["units"]
    w = dr.workload
    metric = w.metric
    if metric == "mbit_per_s":
        pk = b["peer"][0] - a["peer"][0]
        by = b["peer"][1] - a["peer"][1]
        value = (by - TCPIP_HEADER_BYTES * pk) * 8 / (elapsed / 1e9) / 1e6 if elapsed else 0.0
        requests = max(pk, 1)
    elif metric in RATE_METRICS:
        value = units / (elapsed / 1e9) if elapsed else 0.0
        requests = max(units, 1e-12)
    elif metric == "cycles_per_op":
        value = own / max(units, 1e-12) * ghz
        requests = max(units, 1e-12)
    else:
        value = own / max(units, 1e-12) / 1000.0
        requests = max(units, 1e-12)
    ctx = sum(y - x for x, y in zip(a["ctx"], b["ctx"]))
    migr = sum(y - x for x, y in zip(a["migr"], b["migr"]))
    counts = {k: int(round(v)) for k, v in sorted(counts.items()) if round(v)}
    counts["sched.context_switches"] = int(ctx)
    counts["sched.migrations"] = int(migr)
    row = {
        "workload": w.name, "mode": dr.spec.mode, "domain": dr.spec.name, "host": h.name,
        "metric": metric, "value": float(value), "relative_to_native": None,
        "elapsed_ns": int(elapsed), "units": float(units), "vcpus": n,
        "breakdown_ns": breakdown, "counts": counts,
        "cpu_share": running / max(1, elapsed),
        "profile": prof.name, "seed": system.scenario.seed, "pvsim_version": __version__,
        "scenario": system.scenario.name,
    }
    lat = np.asarray(dr.os.latencies_us[a["nlat"]:b["nlat"]]) if b["nlat"] > a["nlat"] else None
    if lat is not None and len(lat):
        row["latency_us"] = {"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)),
                             "p99": float(np.percentile(lat, 99)), "mean": float(lat.mean())}
    if w.has_devices:
        ring = b["ring"] - a["ring"]
        kicks = sum(v for k, v in counts.items() if k in ("notify.tx_req", "notify.rx_req", "notify.blk_req"))
        irqs = sum(v for k, v in counts.items() if k in ("notify.tx_rsp", "notify.rx_rsp", "notify.blk_rsp"))
        suppressed = sum(v for k, v in counts.items() if k.startswith("suppressed."))
        exits = sum(v for k, v in counts.items() if k.startswith("exit."))
        traps = sum(v for k, v in counts.items() if k.startswith("trap."))
        dom0_total = sum(dom0_ns.values())
        row.update({
            "requests": float(requests), "ring_requests": int(ring),
            "notifications_per_request": (kicks + irqs) / (2 * ring) if ring else None,
            "kicks_per_request": kicks / ring if ring else None,
            "interrupts_per_request": irqs / ring if ring else None,
            "suppressed_per_request": suppressed / ring if ring else None,
            "exits_per_request": exits / requests, "traps_per_request": traps / requests,
            "grant_ops_per_request": sum(counts.get(k, 0) for k in ("grant.copy", "grant.map", "grant.unmap"))
            / requests,
            "dom0_ns_per_request": dom0_total / requests,
            "guest_cpu_ns_per_request": own / requests,
            "dom0_breakdown_ns": {k: float(v) for k, v in sorted(dom0_ns.items())},
        })
        for dev in (dr.net, dr.blk):
            if getattr(dev, "error", None):
                row["device_error"] = dev.error
    return row


def _host_row(h: HostRuntime, start: dict, end: dict) -> dict:
    st = h.runner.stats()
    busy = sum(v.running_ns for v in st.vcpus)
    el = st.now_ns - st.start_ns
    return {"host": h.name, "pcpus": h.spec.pcpus, "scheduler": h.spec.scheduler.name, "profile": h.profile.name,
            "domains": [d.spec.name for d in h.domains], "elapsed_ns": int(el),
            "cpu_utilisation": busy / max(1, el * h.spec.pcpus),
            "pcpu_idle_ns": [int(x) for x in st.pcpu_idle_ns], "pcpu_switches": [int(x) for x in st.pcpu_switches],
            "disk_completed": int(getattr(h.disk, "completed", 0)), "nic_tx_packets": int(h.nic.tx_pkts),
            "nic_rx_packets": int(h.nic.rx_pkts)}


def _sched_rows(h: HostRuntime) -> list[dict]:
    rows = h.runner.stats().rows()
    for r in rows:
        r["host"] = h.name
    return rows
