"""The host world of a *hosted* binary-translating VMM (VMware Workstation's architecture).

Design note
-----------
After Sugerman, Venkitachalam & Lim, "Virtualizing I/O Devices on VMware Workstation's Hosted
Virtual Machine Monitor", USENIX ATC'01 §2: a hosted VMM is three parts -- the VMM, which owns the
CPU while the guest runs (its own address space, IDT and GDT: the *VMM world*); a driver in the
host OS (``vmmon``) that switches between that world and the *host world*; and the VMApp, a user
process of the host OS that emulates devices with the host's system calls. The VMM handles the
CPU alone (binary translation, shadow paging: :class:`guest_kernels.bt.BTKernel`); everything it
cannot do alone costs a **world switch** (the VMM world saved, the host's CR3/IDT/GDT restored, and
back: ``bt.world_switch_cycles`` per round trip) plus the host OS's own work on the guest's
behalf, priced with the *native* costs of the same profile:

* **device emulation** (``world_switch.device``): an access to a device the VMApp emulates
  (disk, NIC; the VMM's own chipset model answers port 0x80, the PIC and the timer without one)
  switches to the host, where the vmmon ``ioctl`` returns to the VMApp and is re-entered, and the
  VMApp makes its own host system call for the I/O (``device.host_vmapp``:
  ``bt.host_vmapp_syscalls_count`` x ``native.syscall_cycles``);
* **page faults the VMM cannot handle alone** (``world_switch.host_fault``): guest-physical memory
  is memory of the VMApp process, allocated lazily by the host; the first time the guest puts a
  guest frame to use, the VMM must ask the host to back and pin it (``mmu.host_backing``: the
  host's demand fault ``native.page_fault_cycles`` plus ``bt.host_lock_page_refs_count`` memory
  references to look the page up, take a reference and hand the VMM its machine address). Which
  faults do that follows pvsim's guest model: a ``file`` fault brings the page into a new
  page-cache frame (the page cache never frees), so each one is a frame the guest uses for the
  first time -- lat_pagefault's and lat_mmap's faults; anonymous pages (fork's copy-on-write
  copies, exec's and the shell's demand-zero pages) come from the guest's free list, whose frames
  were freed by the last exit or munmap and are backed already (Linux hands out the most recently
  freed pages first);
* **timer interrupts** (``world_switch.host_timer``): the physical timer interrupt arrives in the
  host world (the VMM forwards every host interrupt to the host), so each host tick while the guest
  runs costs a world switch out and back and the host's tick handler (``kernel.host_timer``,
  ``native.timer_tick_cycles``); the guest's virtual tick is then delivered by the VMM's gate as
  under a bare-metal VMM. ``bt.host_ticks_per_guest_tick_count`` host ticks happen per guest tick.

Which VMM a profile has is a profile choice (``bt.hosted_count``: 1 for VMware Workstation 3.2 on
xeon-2003, SOSP'03's VMW column; 0 where the BT VMM is modelled bare-metal, as the ASPLOS'06
nanobenchmarks in FrobOS see it).

Simplifications: the host never reclaims a frame it backed (SOSP'03 sized the guests to fit the
host), so recycled anonymous frames never fault in the host; the guest's first use of a frame is
read from the fault's kind, not from frame identities (pvsim prices an action once and multiplies
it, so an allocator's momentary state must not decide it); host ticks are charged per
guest ``timer_tick`` action (the same HZ on both sides), not from elapsed time; the VMApp's
device work runs where pvsim runs a bt guest's device model (the control domain's vCPU, which
stands for the host OS), while the page-backing and tick work is charged to the guest's vCPU.
"""

from __future__ import annotations

from guest_kernels.base import Platform

#: world-switch causes, one per reason the VMM must leave its world
WS_DEVICE = "world_switch.device"
WS_FAULT = "world_switch.host_fault"
WS_TIMER = "world_switch.host_timer"


class HostWorld:
    """What the host OS does for one hosted VMM (all work reported to the platform's meter)."""

    def __init__(self, platform: Platform):
        self.p = platform
        self.frames_backed = 0  # guest frames the host backed for this guest while it ran

    @property
    def meter(self):
        return self.p.meter

    def world_switch(self, cause: str, n: float = 1) -> None:
        """``n`` round trips VMM world -> host world -> VMM world."""
        self.meter.add(cause, "bt.world_switch_cycles", n)
        self.meter.count(cause, n)

    def back_frames(self, n: int) -> None:
        """The host backs and pins ``n`` guest frames the guest uses for the first time."""
        if n <= 0:
            return
        self.frames_backed += n
        self.world_switch(WS_FAULT, n)
        self.meter.add("mmu.host_backing", "native.page_fault_cycles", n)
        self.meter.add("mmu.host_backing", "native.mem_ref_cycles", n * self.p.value("bt.host_lock_page_refs_count"))
        self.meter.count("host.page_backed", n)

    def page_fault(self, kind: str) -> None:
        """A guest demand fault of ``kind``: a ``file`` fault puts a fresh page-cache frame to use."""
        if kind == "file":
            self.back_frames(1)

    def timer_tick(self) -> None:
        """The host ticks that happen while the guest runs, one guest tick's worth."""
        n = self.p.value("bt.host_ticks_per_guest_tick_count")
        self.world_switch(WS_TIMER, n)
        self.meter.add("kernel.host_timer", "native.timer_tick_cycles", n)

    def device_prices(self) -> tuple:
        """Per device access the VMApp emulates: ((cause, price, units), ...) for the device model."""
        return ((WS_DEVICE, "bt.world_switch_cycles", 1.0),
                ("device.host_vmapp", "native.syscall_cycles", self.p.value("bt.host_vmapp_syscalls_count")))
