"""The migration (pre- and post-copy) and disk kernels agree with their plain-Python references on their registered
cases (arrays written and values returned); the other kernels have their own tests (tests/mm,
tests/sched, tests/io)."""

import numpy as np
import pytest

from pvsim.core import kernels

ENTRIES = {n: e for n, e in kernels.load_all().items() if n.startswith(("dirty_", "postcopy_")) or n in ("disk_copy_used", "disk_sync")}


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_kernel_equals_reference(name):
    e = ENTRIES[name]
    n = 0
    for args in e.cases(np.random.default_rng(7)):
        ka = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
        ra = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
        got, want = e.kernel(*ka), e.reference(*ra)
        e.compare(ka, ra)
        if want is not None:
            assert np.array_equal(np.asarray(got, dtype=np.uint64), np.asarray(want, dtype=np.uint64)), name
        n += 1
    assert n >= 3


def test_all_nine_are_registered():
    assert len(ENTRIES) == 9
