"""Guest OS kinds: which OS a mode can run, in one place next to the mode table.

Design note
-----------
A domain names its OS (``os``: linux, bsd, solaris or windows; ``bits``: 32 or 64, or unset for the
mode's own width) and a host names the OS of its kernel (default linux, 64-bit). The rules follow
the survey of virtualization kinds (``shared/reference/survey.md``, rows 5 and 6) and read only
:class:`~guest_kernels.modes.ModeSpec` fields and profile constants, never a mode name:

* a mode runs only the OS kinds its row lists (``os_kinds``; UML is a port of Linux, SOSP'03 §4);
* paravirtualization (``cpu = "paravirt"``) needs a kernel that can be modified: open systems (Linux,
  the BSDs, Solaris had Xen PV ports) but not Windows (survey row 5; SOSP'03's Windows XP port was
  never distributed). PV *drivers* in an HVM guest (pvhvm) are allowed for every OS;
* a container runs the host's own kernel, so its OS must be the host's, at most as wide (survey row 6);
* a host-kernel VMM (``control = "host"``: KVM-style, UML) is part of a Linux host;
* a PV ABI has a fixed width (``bits``): a 32-bit guest under the 64-bit PV mode is Xen's 32-bit PV
  ABI, which pvsim names as its own mode, so the domain is refused with a message naming that mode
  (rather than silently run as another mode than the one the scenario asked for);
* a binary translator runs 64-bit guests only where the profile says its era's VMM could
  (``bt.guest_64bit_count``).

Simplification: the OS kind is a constraint only; it does not change the cost of any action (every
guest kernel models Linux's paths).
"""

from __future__ import annotations

from guest_kernels.modes import MODES, ModeSpec

UNMODIFIABLE = frozenset({"windows"})  # proprietary: no paravirtualized port (survey row 5)
HOST_KERNEL_OS = "linux"  # the OS of a host-kernel VMM (KVM, UML's host)


def _same_family(spec: ModeSpec, bits: int) -> str | None:
    """The mode of the same kind as ``spec`` whose ABI is ``bits`` wide (pv <-> pv32), if any."""
    return next((m.name for m in MODES.values() if m.bits == bits and m.cpu == spec.cpu and m.paging == spec.paging
                 and m.control == spec.control), None)


def refusal(spec: ModeSpec, os: str, bits: int | None, host_os: str, host_bits: int, profile) -> tuple[str, str] | None:
    """(field, message) of the first rule a domain of OS ``os``/``bits`` under ``spec`` breaks on a host
    of OS ``host_os``/``host_bits`` with ``profile``; ``None`` if it may run. ``field`` is the domain's
    ``os``, ``bits`` or ``mode``."""
    if os not in spec.os_kinds:
        return "os", f"mode {spec.name!r} runs only {', '.join(sorted(spec.os_kinds))} guests, not {os!r}"
    if spec.cpu == "paravirt" and os in UNMODIFIABLE:
        return "os", (f"mode {spec.name!r} needs a modified (paravirtualized) kernel and {os!r} cannot be modified; "
                      "run it fully virtualized (PV drivers are allowed under pvhvm)")
    if spec.shares_host_kernel and os != host_os:
        return "os", f"a container runs the host's OS ({host_os}), not {os!r}"
    if spec.control == "host" and host_os != HOST_KERNEL_OS:
        return "mode", f"mode {spec.name!r} runs on a {HOST_KERNEL_OS} host kernel; the host's os is {host_os!r}"
    if bits is None:
        return None
    if spec.bits is not None and bits != spec.bits:
        alt = _same_family(spec, bits)
        hint = f"; a {bits}-bit guest of this kind is mode {alt!r}" if alt else ""
        return "bits", f"mode {spec.name!r} is a {spec.bits}-bit guest ABI{hint}"
    if spec.shares_host_kernel and bits > host_bits:
        return "bits", f"a container cannot be wider than its host's kernel ({host_bits}-bit)"
    if (bits == 64 and spec.cpu == "translated" and profile is not None and profile.has("bt.guest_64bit_count")
            and profile.value("bt.guest_64bit_count") < 1):
        return "bits", f"profile {profile.name!r}: the binary translator of its era runs only 32-bit guests"
    return None
