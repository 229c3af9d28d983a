"""The guest-visible Xen ABI, in the spirit of ``xen/include/public/``.

* :mod:`hypercalls.table`: the one hypercall table, after ``xen/include/hypercall-defs.c``:
  per hypercall its number and name exactly as Xen has them (``__HYPERVISOR_*`` in
  ``xen/include/public/xen.h``, also as constants ``HYPERVISOR_<name>``), its parameters (64-bit
  and compat prototypes), which guest type may make it (the pv32/pv64/hvm32/hvm64 columns) and
  pvsim's handler ``do_<name>``; argument counts (``hypercall_nargs``) derive from it.
* :mod:`hypercalls.errno`: Xen's errno values (``xen/include/public/errno.h``).
* :mod:`hypercalls.ops`: sub-op enums (``MMU_*``, ``MMUEXT_*``, ``UVMF_*``, ``SCHEDOP_*``,
  ``VCPUOP_*``, ``EVTCHNOP_*``, ``GNTTABOP_*``, ``XENMEM_*``, ...).
* :mod:`hypercalls.args`: argument records with every field marked IN, OUT or INOUT.

This package is data and pure functions only; it imports nothing from ``pvsim``.
"""
