"""Shared I/O rings with Xen's exact index semantics (after ``xen/include/public/io/ring.h``).

Design note
-----------
:class:`SharedRing` is ``struct name_sring``: ``req_prod``, ``req_event``, ``rsp_prod``,
``rsp_event`` (free-running 32-bit ``RING_IDX``) and the slot array shared by requests and
responses. :class:`FrontRing` / :class:`BackRing` hold the private indices
(``req_prod_pvt``/``rsp_cons`` and ``rsp_prod_pvt``/``req_cons``). Method names map 1:1 to the
macros:

=====================================  ===============================================
``ring_size(bytes, entry, pages)``     ``__CONST_RING_SIZE`` (round down to a power of 2)
``SharedRing(...)``                    ``SHARED_RING_INIT`` (events start at 1)
``FrontRing.free_requests()``          ``RING_FREE_REQUESTS``; ``full()`` = ``RING_FULL``
``push_requests_and_check_notify()``   ``RING_PUSH_REQUESTS_AND_CHECK_NOTIFY``
``has_unconsumed_responses()``         ``RING_HAS_UNCONSUMED_RESPONSES``
``final_check_for_responses()``        ``RING_FINAL_CHECK_FOR_RESPONSES``
``BackRing.has_unconsumed_requests()`` ``RING_HAS_UNCONSUMED_REQUESTS``
``request_cons_overflow(cons)``        ``RING_REQUEST_CONS_OVERFLOW``
``request_prod_overflow(prod)``        ``RING_REQUEST_PROD_OVERFLOW`` (backend sanity check)
``push_responses_and_check_notify()``  ``RING_PUSH_RESPONSES_AND_CHECK_NOTIFY``
``final_check_for_requests()``         ``RING_FINAL_CHECK_FOR_REQUESTS``
=====================================  ===============================================

Notify rule (u32 arithmetic): ``notify = (new - event) < (new - old)``, i.e. the peer's event
index lies in ``(old, new]``. Final check: if nothing is pending, arm ``event = cons + 1``, barrier,
re-check (closing the race with a producer that pushed in between).

Sizes: blkif request 112 B, so (4096 - 64) // 112 = 36 -> 32 slots; netif TX request 12 B /
response 4 B (union 12 B) -> 256; RX request 8 B / response 8 B -> 256 (``blkif.h``, ``netif.h``,
sizes verified in the reference). Multi-page rings multiply the byte size by ``2**order``.

Simplifications: barriers are implicit (Python is sequentially consistent here); a "hostile" peer
is modelled by writing the shared fields directly; the ``pvt`` word is not used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MASK32 = 0xFFFFFFFF
RING_HEADER_BYTES = 64
PAGE_SIZE = 4096

# sizeof(union { req; rsp }) in bytes (verified sizes in the reference, xen.md sections 5.3/5.4)
BLKIF_SLOT_BYTES = 112
NETIF_TX_SLOT_BYTES = 12
NETIF_RX_SLOT_BYTES = 8
BLKIF_MAX_SEGMENTS_PER_REQUEST = 11
BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST = 8
SEGS_PER_INDIRECT_FRAME = 512
XEN_NETIF_NR_SLOTS_MIN = 18


def u32(x: int) -> int:
    return x & MASK32


def ring_size(slot_bytes: int, pages: int = 1) -> int:
    """``__CONST_RING_SIZE``: entries fitting after the 64-byte header, rounded down to 2**k."""
    if slot_bytes <= 0 or pages <= 0:
        raise ValueError("slot size and page count must be positive")
    n = (pages * PAGE_SIZE - RING_HEADER_BYTES) // slot_bytes
    if n < 1:
        raise ValueError("no slot fits")
    return 1 << (n.bit_length() - 1)


class RingError(Exception):
    """A peer broke the ring protocol (raised by checked consumer helpers)."""


@dataclass
class SharedRing:
    size: int
    start: int = 0  # SHARED_RING_INIT uses 0; tests start near 2**32 to exercise wrapping
    req_prod: int = 0
    req_event: int = 1
    rsp_prod: int = 0
    rsp_event: int = 1
    slots: list = field(default_factory=list)

    def __post_init__(self):
        if self.size <= 0 or self.size & (self.size - 1):
            raise ValueError(f"ring size must be a power of two, got {self.size}")
        s = u32(self.start)
        self.req_prod = self.rsp_prod = s
        self.req_event = self.rsp_event = u32(s + 1)
        self.slots = [None] * self.size


@dataclass
class FrontRing:
    sring: SharedRing
    req_prod_pvt: int = 0
    rsp_cons: int = 0

    def __post_init__(self):
        self.req_prod_pvt = self.rsp_cons = self.sring.req_prod

    @property
    def nr_ents(self) -> int:
        return self.sring.size

    def free_requests(self) -> int:
        return self.nr_ents - u32(self.req_prod_pvt - self.rsp_cons)

    def full(self) -> bool:
        return self.free_requests() == 0

    def put_request(self, req) -> None:
        """Write ``RING_GET_REQUEST(r, req_prod_pvt)`` and advance the private producer."""
        if self.full():
            raise RingError("front ring full")
        self.sring.slots[self.req_prod_pvt & (self.nr_ents - 1)] = req
        self.req_prod_pvt = u32(self.req_prod_pvt + 1)

    def push_requests_and_check_notify(self) -> bool:
        s = self.sring
        old, new = s.req_prod, self.req_prod_pvt
        s.req_prod = new
        return u32(new - s.req_event) < u32(new - old)

    def push_requests(self) -> None:
        self.sring.req_prod = self.req_prod_pvt

    def has_unconsumed_responses(self) -> int:
        return u32(self.sring.rsp_prod - self.rsp_cons)

    def get_response(self):
        rsp = self.sring.slots[self.rsp_cons & (self.nr_ents - 1)]
        self.rsp_cons = u32(self.rsp_cons + 1)
        return rsp

    def final_check_for_responses(self, between=None) -> int:
        work = self.has_unconsumed_responses()
        if work:
            return work
        if between is not None:
            between()
        self.sring.rsp_event = u32(self.rsp_cons + 1)
        return self.has_unconsumed_responses()


@dataclass
class BackRing:
    sring: SharedRing
    rsp_prod_pvt: int = 0
    req_cons: int = 0

    def __post_init__(self):
        self.rsp_prod_pvt = self.req_cons = self.sring.req_prod

    @property
    def nr_ents(self) -> int:
        return self.sring.size

    def has_unconsumed_requests(self) -> int:
        req = u32(self.sring.req_prod - self.req_cons)
        rsp = u32(self.nr_ents - u32(self.req_cons - self.rsp_prod_pvt))
        return min(req, rsp)

    def request_cons_overflow(self, cons: int) -> bool:
        return u32(cons - self.rsp_prod_pvt) >= self.nr_ents

    def request_prod_overflow(self, prod: int) -> bool:
        return u32(prod - self.rsp_prod_pvt) > self.nr_ents

    def get_request(self):
        """Copy the request out of its slot (backends must: the slot is reused for the response)."""
        req = self.sring.slots[self.req_cons & (self.nr_ents - 1)]
        self.req_cons = u32(self.req_cons + 1)
        return req

    def put_response(self, rsp) -> None:
        self.sring.slots[self.rsp_prod_pvt & (self.nr_ents - 1)] = rsp
        self.rsp_prod_pvt = u32(self.rsp_prod_pvt + 1)

    def push_responses_and_check_notify(self) -> bool:
        s = self.sring
        old, new = s.rsp_prod, self.rsp_prod_pvt
        s.rsp_prod = new
        return u32(new - s.rsp_event) < u32(new - old)

    def final_check_for_requests(self, between=None) -> int:
        """``between`` (tests only) runs after the first check and before arming the event,
        which is where a concurrent producer push races with the consumer."""
        work = self.has_unconsumed_requests()
        if work:
            return work
        if between is not None:
            between()
        self.sring.req_event = u32(self.req_cons + 1)
        return self.has_unconsumed_requests()

    def checked_requests(self) -> int:
        """How many requests may be consumed now; raises RingError if ``req_prod`` is bogus
        (blkback's ``RING_REQUEST_PROD_OVERFLOW`` check: "Frontend provided bogus ring requests")."""
        rp = self.sring.req_prod
        if self.request_prod_overflow(rp):
            raise RingError(f"bogus req_prod {rp} (rsp_prod_pvt {self.rsp_prod_pvt}, size {self.nr_ents})")
        return u32(rp - self.req_cons)


BLKIF_RING_SIZE = ring_size(BLKIF_SLOT_BYTES)
NET_TX_RING_SIZE = ring_size(NETIF_TX_SLOT_BYTES)
NET_RX_RING_SIZE = ring_size(NETIF_RX_SLOT_BYTES)
