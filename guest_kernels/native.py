"""Native and container kernels.

Design note
-----------
``native``: the baseline every action in :mod:`guest_kernels.base` implements -- a kernel in ring 0
on the bare machine. ``container``: one shared host kernel (Linux namespaces and cgroups); every
action is native, plus ``container.syscall_extra_cycles`` per system call for namespace and cgroup
bookkeeping (zero in the bundled profiles: Felter et al. found no measurable CPU overhead).

Networking (option ``container_net``): host network, bridge (veth + Linux bridge) or NAT with
per-packet connection tracking (Felter et al., IBM RC25482: Docker's NAT adds per-packet cost
that ``--net=host`` avoids).

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
        """The container's network (domain option ``container_net``, Docker's ``--net``): ``host``
        (the host's stack and namespace, nothing added), ``bridge`` (default: each frame also
        crosses the veth pair and the Linux bridge), ``nat`` (bridge plus, per frame, one
        connection-tracking lookup, ``nf_conntrack_in``, and the NAT rewrite from the
        connection's binding, ``nf_nat_packet``; the NAT rule itself is evaluated only for a
        connection's first packet)."""
        super().nic_packets(n)
        net = self.options.get("container_net", "bridge")
        if net == "host":
            return
        self._add("kernel.container_bridge", "io.container_bridge_packet_cycles", n)
        self.meter.count("net.bridge", n)
        if net == "nat":
            self._add("kernel.conntrack", "io.conntrack_lookup_cycles", n)
            self.meter.count("net.conntrack_lookup", n)
            self._add("kernel.nat", "io.nat_rewrite_cycles", n)
            self.meter.count("net.nat_rewrite", n)
