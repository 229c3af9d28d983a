"""The compiled credit1 accounting core against its plain-Python reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pvsim.core import kernels
from pvsim.sched import credit_core as cc


def test_registered_and_listed():
    assert "pvsim.sched.credit_core" in kernels.KERNEL_MODULES
    reg = kernels.load_all()
    assert "csched_acct" in reg and reg["csched_acct"].reference is cc.csched_acct_ref


def test_kernel_equals_reference_on_registered_cases():
    rng = np.random.default_rng(5)
    n = 0
    for args in cc._cases(rng):
        a, b = args[-1].copy(), args[-1].copy()
        cc._csched_acct_kernel(*args[:-1], a)
        cc.csched_acct_ref(*args[:-1], b)
        np.testing.assert_array_equal(a, b)
        n += 1
    assert n >= 20


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nd=st.integers(1, 30), ncpus=st.integers(1, 16))
def test_kernel_equals_reference_property(seed, nd, ncpus):
    ustate, dstate, order, params = cc.random_case(np.random.default_rng(seed), nd, ncpus=ncpus)
    k = cc.csched_acct(ustate, dstate, order, params)
    r = cc.csched_acct(ustate, dstate, order, params, reference=True)
    np.testing.assert_array_equal(k, r)
    n = ustate.shape[1]
    s = k[3 * n + 2 * nd:]
    credit_before, credit_after = int(ustate[0].sum()), int(k[:n].sum())
    issued, clamp, halving = int(s[2]), int(s[3]), int(s[4])
    assert credit_after == credit_before + issued + clamp - halving
    # priorities follow the sign of the credit for every active vCPU; other flag bits pass through
    act = (ustate[2] & cc.FLAG_ACTIVE) != 0
    assert np.all(k[n:2 * n][act & (k[:n] < 0)] == cc.CSCHED_PRI_TS_OVER)
    assert np.all((k[2 * n:3 * n] & ~3) == (ustate[2] & ~3))
    # the active-domain count per domain equals the active flags after the pass
    cnt = np.bincount(ustate[3][(k[2 * n:3 * n] & cc.FLAG_ACTIVE) != 0], minlength=nd)
    np.testing.assert_array_equal(k[3 * n:3 * n + nd], cnt)


def _one(credit):
    ustate = np.array([[credit], [-1], [cc.FLAG_ACTIVE], [0]], dtype=np.int64)
    dstate = np.array([[256], [0], [1]], dtype=np.int64)
    return ustate, dstate, np.array([0]), np.array([1, 300, 300, 0, 256])


def test_halving_and_clamp():
    # one domain, one vCPU with 500 credits: earns 300 -> 800 > 300: leaves the active list, halved
    out = cc.csched_acct(*_one(500))
    assert out[0] == 400 and out[2] == 0  # credit 800 // 2, flags: not active
    assert out[3] == 0  # active_unit_count
    # -900 + 300 = -600 -> clamped to -300, OVER
    out2 = cc.csched_acct(*_one(-900))
    assert out2[0] == -300 and out2[1] == cc.CSCHED_PRI_TS_OVER


def test_bad_sizes_rejected():
    ustate, dstate, order, params = cc.random_case(np.random.default_rng(0), 3)
    with pytest.raises(ValueError):
        cc.csched_acct(ustate[:3], dstate, order, params)
    with pytest.raises(ValueError):
        cc.csched_acct(ustate, dstate, order[:-1], params)


# ---------------------------------------------------------------- RTDS pick
from pvsim.sched import rtds_core as rc  # noqa: E402


def test_rt_pick_registered_and_equal_on_cases():
    assert "pvsim.sched.rtds_core" in kernels.KERNEL_MODULES
    assert "rt_pick" in kernels.load_all()
    for args in rc._cases(np.random.default_rng(2)):
        a, b = args[-1].copy(), args[-1].copy()
        rc._rt_pick_kernel(*args[:-1], a)
        rc.rt_pick_ref(*args[:-1], b)
        assert a[0] == b[0]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 60), ncpu=st.integers(1, 8))
def test_rt_pick_is_edf_within_levels(seed, n, ncpu):
    rng = np.random.default_rng(seed)
    keys = np.stack([rng.integers(0, 3, n), rng.integers(0, 4, n), rng.permutation(n)]).astype(np.int64).reshape(3, n)
    queued = (rng.random(n) < 0.5).astype(np.int64)
    allowed = (rng.random((n, ncpu)) < 0.6).astype(np.int64)
    cpu = int(rng.integers(-1, ncpu))
    i = rc.rt_pick(keys, queued, allowed, cpu)
    assert i == rc.rt_pick(keys, queued, allowed, cpu, reference=True)
    elig = [j for j in range(n) if queued[j] and (cpu < 0 or allowed[j, cpu])]
    if not elig:
        assert i == -1
    else:
        assert i in elig
        assert all(tuple(keys[:, i]) <= tuple(keys[:, j]) for j in elig)
