"""The guest-visible Xen ABI, in the spirit of ``xen/include/public/``.

* :mod:`hypercalls.table`: hypercall numbers and names exactly as Xen has them
  (``__HYPERVISOR_*`` in ``xen/include/public/xen.h``) and which guest type may make which call
  (the pv32/pv64/hvm32/hvm64 columns of ``xen/include/hypercall-defs.c``).
* :mod:`hypercalls.errno`: Xen's errno values (``xen/include/public/errno.h``).
* :mod:`hypercalls.ops`: sub-op enums (``MMU_*``, ``MMUEXT_*``, ``UVMF_*``, ``SCHEDOP_*``,
  ``VCPUOP_*``, ``EVTCHNOP_*``, ``GNTTABOP_*``, ``XENMEM_*``, ...).
* :mod:`hypercalls.args`: argument records with every field marked IN, OUT or INOUT.

This package is data and pure functions only; it imports nothing from ``pvsim``.
"""
