"""``do_grant_table_op`` (after ``xen/common/grant_table.c``).

Design note
-----------
``HYPERVISOR_grant_table_op(cmd, uop, count)``: every op is batched; per-op results go into each
record's ``status``; the call returns 0, or ``-EINVAL``/``-EFAULT``/``-ENOSYS``/``-EOPNOTSUPP``
for a malformed call. The work is in :mod:`pvsim.io.gnttab`, reported under ``io.grant``.

Simplifications: see :mod:`pvsim.io.gnttab` (v1 only, no preemption of long batches).
"""

from __future__ import annotations

from pvsim.hypervisor.dispatch import handler
from pvsim.io import gnttab


@handler("grant_table_op")
def do_grant_table_op(hv, vcpu, cmd=None, uop=None, count=None, *rest) -> int:
    if count is None and isinstance(uop, (list, tuple)):
        count = len(uop)
    return gnttab.grant_table_op(hv, vcpu.domain, cmd, uop, count)
