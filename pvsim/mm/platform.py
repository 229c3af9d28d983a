"""Build-time glue: the machine-side MMU a guest kernel's platform carries, and the guest MMU.

Design note
-----------
:func:`attach_mmu` is what the builder (``pvsim.pricing.make_kernel``) calls for one domain and
vCPU: it makes sure the host has a frame table (``hv.machine_mm``) and the domain its memory
(``dom.mm``), creates the mode's machine-side object (:mod:`pvsim.mm.machine`), sets it as
``platform.machine_mmu`` and returns the guest-side MMU from
:func:`guest_kernels.mmu.make_guest_mmu`, which the builder stores as ``platform.mmu``.

What ``platform`` must carry: ``meter`` (the current Meter; the same object as ``hv.meter``
while an action runs), ``guest_type``, ``hypercall(name, *args) -> int`` (bound to the vCPU,
through ``Hypervisor.hypercall``), and optionally ``trap(kind)``, ``vmexit(reason, handling)``,
``bt(kind, n)``, ``sw_mmu(cause, n)`` (:mod:`pvsim.hypervisor.traps`); this module adds
``machine_mmu``. :func:`make_platform` builds such a platform for tests and tools.
"""

from __future__ import annotations

from hypercalls.ops import DOMID_XEN
from pvsim.hypervisor.domain import Domain
from pvsim.hypervisor.hypervisor import Hypervisor
from pvsim.mm.host import add_domain_memory, attach_machine_memory
from pvsim.mm.machine import MODE_CLASSES

GUEST_TYPES = {"native": "native", "container": "native", "pv": "pv64", "pv32": "pv32", "bt": "native",
               "hvm-shadow": "hvm64", "hvm": "hvm64", "pvhvm": "hvm64", "pvh": "hvm64"}
DEFAULT_PAGES = 65536  # 256 MiB of guest memory when the domain does not say


def machine_for(mode: str, hv, vcpu, platform=None, *, nr_pages: int | None = None, **opts):
    """The machine-side MMU object of ``mode`` for ``vcpu`` (creating host/domain memory if absent)."""
    if mode not in MODE_CLASSES:
        raise ValueError(f"unknown mode {mode!r}; allowed: {', '.join(MODE_CLASSES)}")
    dom = vcpu.domain
    pages = int(nr_pages or min(dom.tot_pages or DEFAULT_PAGES, 1 << 20))
    if hv.machine_mm is None:
        attach_machine_memory(hv, pages + 8192 + (1 << 12))
    if dom.mm is None:
        mm = hv.machine_mm
        # start the domain on a 2 MiB boundary so the p2m can use superpages (Xen allocates
        # domain memory in high-order chunks where it can)
        while mm._free_frames and mm._free_frames[-1] % 512:
            mm.alloc_domheap_page(DOMID_XEN)
        add_domain_memory(hv, dom, pages)
    cls = MODE_CLASSES[mode]
    return cls(hv, vcpu, mode, platform=platform, **opts)


def attach_mmu(mode: str, platform, *, batch: int = 2048, **options):
    """Give ``platform`` (bound to one domain and vCPU of ``platform.hv``) its machine-side MMU and
    return the guest-side MMU of ``mode``."""
    from guest_kernels.mmu import make_guest_mmu

    hv, vcpu = platform.hv, platform.vcpu
    mopts = {k: options.pop(k) for k in ("early_unshadow", "pool_pages", "prefetch", "keep_shadows_on_switch", "oos",
                                          "oos_pages") if k in options}
    platform.machine_mmu = machine_for(mode, hv, vcpu, platform, **mopts)
    return make_guest_mmu(mode, platform, batch=batch, **options)


def make_platform(hv: Hypervisor | None, vcpu=None, mode: str = "native", meter=None, *, profile=None,
                  nr_pages: int = 4096, batch: int = 2048, **options):
    """A complete platform for ``mode`` (a new hypervisor and domain when none is given), with
    ``platform.mmu`` the guest MMU and ``platform.machine_mmu`` the machine side."""
    from pvsim.hypervisor.platform import HvPlatform

    if hv is None:
        hv = Hypervisor(profile)
    if meter is not None:
        hv.meter = meter
    if vcpu is None:
        domid = max(hv.domains, default=0) + 1
        dom = hv.add_domain(Domain(domid, f"dom{domid}", mode, GUEST_TYPES[mode], nr_vcpus=1, tot_pages=nr_pages))
        vcpu = dom.vcpus[0]
    p = HvPlatform(hv, vcpu)
    p.mmu = attach_mmu(mode, p, batch=batch, **options)
    return p
