"""Wiring one guest onto a hypervisor: its memory, machine-side MMU, guest MMU, platform and kernel.

Design note
-----------
:func:`attach_guest` is the one place where a domain's OS is assembled from the mode table
(:mod:`guest_kernels.modes`): the platform (:class:`~pvsim.hypervisor.platform.HvPlatform`, the
kernel's only door into the hypervisor), the machine-side MMU of the mode's paging kind
(:data:`pvsim.mm.machine.PAGING`: hardware, PV direct paging, shadow, HAP) over the host's frame
table, the guest-side MMU of real page tables (:func:`guest_kernels.mmu.make_guest_mmu`), and the
mode's :class:`~guest_kernels.base.GuestKernel`. The builder (:mod:`pvsim.system`) calls it for every
vCPU of every domain; :mod:`pvsim.pricing` calls it on a scratch hypervisor to price an op mix.

Memory: :func:`ensure_memory` gives the host a frame table (``hv.machine_mm``) when it has none and
the domain its frames, starting on a 2 MiB boundary so the p2m can use superpages (Xen allocates
domain memory in high-order chunks where it can: libxc's ``meminit_hvm`` asks ``populate_physmap``
for 1 GiB extents first, then 2 MiB, then 4 KiB, xc_dom_x86.c). A HAP domain whose p2m may use
1 GiB leaves (:func:`memory_alignment`) and has at least 1 GiB of frames starts on a 1 GiB
boundary, so its first gigabyte is one PDPTE leaf.
"""

from __future__ import annotations

from guest_kernels.mmu import make_guest_mmu
from guest_kernels.modes import MODES, ModeSpec
from pvsim.hypervisor.domain import Domain
from pvsim.hypervisor.hypervisor import Hypervisor
from pvsim.hypervisor.platform import HvPlatform
from pvsim.mm.host import add_domain_memory, attach_machine_memory
from pvsim.mm.machine import PAGING
from pvsim.mm.x86 import PAGE_LEVELS

DEFAULT_PAGES = 65536  # 256 MiB of guest memory when the domain does not say
MAX_STRUCTURAL_PAGES = 1 << 20  # frames modelled as data per domain (4 GiB)
SHADOW_OPTIONS = ("early_unshadow", "pool_pages", "prefetch", "keep_shadows_on_switch", "oos", "oos_pages")


ALIGN_2M = 512  # frames per 2 MiB: every domain's memory starts on such a boundary


def host_leaf_level(spec: ModeSpec, profile, host_page_size: str | None) -> int:
    """The largest leaf of the domain's p2m (1: no p2m of its own, or 4 KiB host pages): the
    domain option beats the profile's default (``mmu.hap_host_leaf_level_count``), as in
    :class:`~pvsim.mm.machine.HapMMU`."""
    if spec.paging != "hap":
        return 1
    if host_page_size is not None:
        return PAGE_LEVELS[host_page_size]
    if profile is not None and profile.has("mmu.hap_host_leaf_level_count"):
        return int(profile.value("mmu.hap_host_leaf_level_count"))
    return 2


def memory_alignment(spec: ModeSpec, profile, host_page_size: str | None, pages: int) -> int:
    """Frames the domain's memory is aligned to: 1 GiB when its p2m may use 1 GiB leaves and it
    has at least that much memory (else no such leaf could be installed), else 2 MiB."""
    span = 1 << (9 * (host_leaf_level(spec, profile, host_page_size) - 1))
    return span if span > ALIGN_2M and pages >= span else ALIGN_2M


def ensure_memory(hv, dom, nr_pages: int | None = None, align: int = ALIGN_2M) -> None:
    """The host's frame table (created if absent) and ``dom``'s frames in it, from a multiple of
    ``align`` frames."""
    pages = int(nr_pages or min(dom.tot_pages or DEFAULT_PAGES, MAX_STRUCTURAL_PAGES))
    pad = align if align > ALIGN_2M else 0  # room to reach a 1 GiB boundary
    if hv.machine_mm is None:
        attach_machine_memory(hv, pages + 8192 + (1 << 12) + pad)
    if dom.mm is None:
        mm = hv.machine_mm
        if len(mm._free_frames) < pages + max(align, ALIGN_2M):
            raise MemoryError(f"host frame table too small for domain {dom.domid} ({pages} pages)")
        mm.pad_to(align, 0x7FF2)  # DOMID_XEN: padding up to the next boundary
        add_domain_memory(hv, dom, pages)


def attach_guest(hv, dom, spec: ModeSpec, *, vcpu_id: int = 0, structural: bool = True, nr_pages: int | None = None,
                 kernel_options: dict | None = None, mmu_options: dict | None = None):
    """(platform, kernel) for vCPU ``vcpu_id`` of ``dom`` running mode ``spec``; with ``structural``,
    the platform carries the machine-side MMU (``platform.machine_mmu``) and the guest MMU over real
    page tables (``platform.mmu``)."""
    vcpu = dom.vcpus[vcpu_id]
    platform = HvPlatform(hv, vcpu)
    kopts = dict(kernel_options or {})
    if structural:
        mopts = {k: v for k, v in (mmu_options or {}).items() if v is not None}
        pages = int(nr_pages or min(dom.tot_pages or DEFAULT_PAGES, MAX_STRUCTURAL_PAGES))
        ensure_memory(hv, dom, nr_pages,
                      memory_alignment(spec, getattr(hv, "profile", None), mopts.get("host_page_size"), pages))
        if spec.paging != "shadow":
            mopts = {k: v for k, v in mopts.items() if k not in SHADOW_OPTIONS}
        if spec.paging != "hap":
            mopts.pop("host_page_size", None)  # only a p2m has host pages of its own
        platform.machine_mmu = PAGING[spec.paging](hv, vcpu, cpu=spec.cpu, platform=platform, **mopts)
        platform.mmu = make_guest_mmu(spec.paging, platform, batch=int(kopts.get("batch", 2048)))
    kernel = spec.kernel(platform, **kopts)
    return platform, kernel


def scratch_platform(mode: str, profile=None, *, nr_pages: int = 4096, batch: int = 2048, meter=None, **mmu_options):
    """A complete platform for ``mode`` on a new hypervisor (one domain, one vCPU, real page tables):
    ``platform.mmu`` the guest MMU, ``platform.machine_mmu`` the machine side. For tests, notebooks
    and pricing."""
    from_spec = MODES[mode]
    hv = Hypervisor(profile)
    if meter is not None:
        hv.meter = meter
    dom = hv.add_domain(Domain(1, "dom1", mode, from_spec.hypercall_type, nr_vcpus=1, tot_pages=nr_pages))
    platform, _kernel = attach_guest(hv, dom, from_spec, nr_pages=nr_pages, kernel_options={"batch": batch},
                                     mmu_options=mmu_options)
    return platform
