"""Memory virtualization: frame table, PV direct paging, shadow paging, HAP, TLBs.

Modules: ``x86`` (hardware paging bits and Xen-internal page types; the guest ABI is
:mod:`hypercalls.ops`), ``frames`` (machine frame table, P2M/M2P),
``pv`` (PV direct paging after ``xen/arch/x86/mm.c``), ``audit`` (reference-count audit),
``host`` (frame-table set-up), ``walk`` (TLB and page-walk kernels), ``hap`` (EPT/NPT p2m),
``machine`` (the machine-side MMU of each paging kind: ``PAGING``), ``workloads`` (access traces and
page-table churn).
"""
