"""Native and container kernels.

Design note
-----------
``native``: the baseline every action in :mod:`guest_kernels.base` implements -- a kernel in ring 0
on the bare machine. ``container``: one shared host kernel (Linux namespaces and cgroups); every
action is native, plus ``container.syscall_extra_cycles`` per system call for namespace and cgroup
bookkeeping (zero in the bundled profiles: Felter et al. found no measurable CPU overhead).

Simplifications: no cgroup CPU throttling; the container's processes are scheduled by the host
kernel, which pvsim models as the domain's vCPUs on pCPUs.
"""

from __future__ import annotations

from guest_kernels.base import GuestKernel


class NativeKernel(GuestKernel):
    mode = "native"


class ContainerKernel(GuestKernel):
    mode = "container"

    def syscall(self) -> None:
        super().syscall()
        self._add("kernel.syscall", "container.syscall_extra_cycles")

    def nic_packets(self, n: int) -> None:
        """Bridged container networking: each frame also crosses the veth pair and the bridge."""
        super().nic_packets(n)
        self._add("kernel.container_bridge", "io.container_bridge_packet_cycles", n)
