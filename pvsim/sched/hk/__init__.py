"""The compiled host dispatcher: :class:`~pvsim.sched.runner.HostRunner`'s core, the schedulers and the
programs (:mod:`guest_kernels.program`) as Numba kernels over one arena.

``layout`` (the arena), ``base`` (the dispatcher's services the schedulers use), one module per
scheduler (``rr``, ``credit``, ``credit2``, ``rtds``, ``null``, ``bvt``; a module with ``READY`` False is
not used yet), ``core`` (the loop, the programs, the entries from Python), ``runner``
(:class:`~pvsim.sched.hk.runner.CompiledRunner`, the Python side). Checked as a whole against the
Python dispatcher by ``tests/sched/test_hk_equivalence.py``.
"""
