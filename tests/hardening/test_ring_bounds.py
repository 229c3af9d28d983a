"""RING_REQUEST_PROD_OVERFLOW at its exact boundary (xen/include/public/io/ring.h:
``((prod) - (r)->rsp_prod_pvt) > RING_SIZE(r)``), at a wrapping index too."""

import pytest

from pvsim.io.ring import BackRing, RingError, SharedRing, u32


@pytest.mark.parametrize("start", [0, 2 ** 32 - 3])
@pytest.mark.parametrize("size", [1, 8, 32])
def test_req_prod_overflow_boundary(start, size):
    s = SharedRing(size, start=start)
    b = BackRing(s)
    s.req_prod = u32(start + size)  # a full ring of requests: fine
    assert not b.request_prod_overflow(s.req_prod)
    assert b.checked_requests() == size
    s.req_prod = u32(start + size + 1)  # one more than the ring holds: bogus
    assert b.request_prod_overflow(s.req_prod)
    with pytest.raises(RingError):
        b.checked_requests()
