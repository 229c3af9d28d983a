"""Memory virtualization (issue 3): frame table, PV direct paging, shadow paging, HAP, TLBs.

Modules: ``x86`` (hardware paging bits and Xen-internal page types; the guest ABI is
:mod:`hypercalls.ops`), ``frames`` (machine frame table, P2M/M2P),
``pv`` (PV direct paging after ``xen/arch/x86/mm.c``), ``audit`` (reference-count audit),
``host`` (build-time wiring), ``walk`` (TLB and page-walk kernels), ``shadow`` (shadow paging),
``machine`` (the machine-side MMU per mode), ``platform`` (what guest kernels receive),
``workloads`` (access traces).
"""
