"""The dirty-page kernels against their plain-Python references, and the write model's shape."""

from types import SimpleNamespace as S

import numpy as np
import pytest

from pvsim.migrate import dirty as D


def _w(pattern, **kw):
    base = dict(mib=8, ram_frac=None, mb_per_s=100, pattern=pattern, hot_frac=0.1, hot_share=0.9, free_frac=0.2)
    return S(**{**base, **kw})


@pytest.mark.parametrize("pattern", ["uniform", "hot", "sequential"])
@pytest.mark.parametrize("seed", [0, 1, 2**63 + 5])
def test_write_kernel_equals_reference(pattern, seed):
    m = D.WriteModel.of(_w(pattern), 64, seed_offset=seed)
    a, b = D.GuestMemory(m, seed), D.GuestMemory(m, seed, compiled=False)
    for ns in (1e6, 3.3e6, 2e7):
        assert a.write_for(ns) == b.write_for(ns)
        assert np.array_equal(a.version, b.version) and np.array_equal(a.dirty, b.dirty)
        assert a.state == b.state and a.cursor == b.cursor
    ca, cb = a.clean(), b.clean()
    assert np.array_equal(ca, cb) and len(ca) > 0
    assert not a.dirty.any() and not b.dirty.any()
    dst1, dst2 = np.zeros_like(a.version), np.zeros_like(a.version)
    D.copy_pages(ca, a.version, dst1)
    D.copy_pages(cb, b.version, dst2, compiled=False)
    assert np.array_equal(dst1, dst2) and np.array_equal(dst1[ca], a.version[ca])


def test_writes_stay_in_the_working_set_and_versions_count_every_write():
    m = D.WriteModel.of(_w("uniform"), 64, seed_offset=99)
    g = D.GuestMemory(m, 3)
    g.write(50_000)
    assert g.version.sum() == 50_000 == g.writes
    touched = np.flatnonzero(g.version)
    assert touched.min() >= m.ws_base and touched.max() < m.ws_base + m.ws_pages
    assert not g.version[m.n_pages - m.free_pages:].any()  # free pages never written
    assert g.dirty_count() == len(touched)


def test_hot_set_takes_its_share():
    m = D.WriteModel.of(_w("hot", hot_frac=0.1, hot_share=0.9), 64)
    g = D.GuestMemory(m, 5)
    g.write(100_000)
    hot = g.version[m.ws_base:m.ws_base + m.hot_pages].sum() / 100_000
    assert 0.88 < hot < 0.92


def test_sequential_sweep_dirties_min_of_writes_and_set():
    m = D.WriteModel.of(_w("sequential"), 64)
    g = D.GuestMemory(m, 11)
    assert g.write(100) == 100
    assert g.write(m.ws_pages) == m.ws_pages - 100  # wraps onto pages already dirty


def test_rate_carry_is_exact():
    m = D.WriteModel.of(_w("uniform", mb_per_s=4.096e-3 * 1000), 64)  # 1000 pages/s
    g = D.GuestMemory(m, 1)
    for _ in range(1000):
        g.write_for(1e6 + 0.0)  # 1 ms at a time
    assert g.writes == 1000
