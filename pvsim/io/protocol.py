"""What a backend accepts from a frontend: every field of a block or network ring request checked
against the protocol before anything is mapped, copied or sent to a device.

Design note
-----------
Follows the checks of Linux ``drivers/block/xen-blkback/blkback.c`` (``dispatch_rw_block_io``:
the operation code, ``nr_segments`` in ``1..BLKIF_MAX_SEGMENTS_PER_REQUEST`` (or the indirect
maximum), each segment within one page, "access beyond end of device" against the vbd size) and
``drivers/net/xen-netback/netback.c`` (``xenvif_tx_build_gops``: a size of 1..65535, the
``netif_tx_request`` id is a ``uint16_t``), with the field types of
``xen/include/public/io/blkif.h`` and ``netif.h``. A request record in the shared ring is
written by the frontend, so it can hold anything: a check returns a one-line reason (the device
is then closed through the xenbus state machine by the caller) or ``None``.

Simplifications: a block request carries its byte count (``nbytes``) instead of per-segment
``first_sect``/``last_sect``; a network request is a tuple ``(id, gref, size, meta)`` (tx) or
``(id, gref)`` (rx).
"""

from __future__ import annotations

from pvsim.io.ring import BLKIF_MAX_SEGMENTS_PER_REQUEST

BLKIF_OP_READ = 0  # xen/include/public/io/blkif.h
BLKIF_OP_WRITE = 1
BLKIF_OP_INDIRECT = 6
SECTOR_BYTES = 512
PAGE = 4096
U8, U16, U32, U64 = 0xFF, 0xFFFF, 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF
BLK_FIELDS = ("id", "operation", "indirect_op", "nr_segments", "sector_number", "grefs", "nbytes")


def _uint(v, top: int) -> bool:
    return type(v) is int and 0 <= v <= top


def check_blk_request(r, *, max_segs: int, indirect: bool, capacity_sectors: int, inflight) -> str | None:
    """Why blkback must refuse request ``r`` (a record copied out of the ring), or ``None``."""
    if not isinstance(r, dict):
        return f"request is a {type(r).__name__}, not a blkif_request"
    missing = [k for k in BLK_FIELDS if k not in r]
    if missing:
        return f"request without {', '.join(missing)}"
    rid = r["id"]
    if not _uint(rid, U64):
        return f"request id {rid!r} is not a uint64"
    if rid in inflight:
        return f"request id {rid} already in flight"
    op, iop = r["operation"], r["indirect_op"]
    if op not in (BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_OP_INDIRECT) or type(op) is not int:
        return f"request {rid} with operation {op!r}"
    if op == BLKIF_OP_INDIRECT and not indirect:
        return f"request {rid}: indirect operation without feature-max-indirect-segments"
    if type(iop) is not int or iop not in (BLKIF_OP_READ, BLKIF_OP_WRITE) or (op != BLKIF_OP_INDIRECT and iop != op):
        return f"request {rid} with indirect_op {iop!r}"
    nseg = r["nr_segments"]
    lim = max_segs if op == BLKIF_OP_INDIRECT else min(max_segs, BLKIF_MAX_SEGMENTS_PER_REQUEST)
    if type(nseg) is not int or not (1 <= nseg <= lim):
        return f"request {rid} with {nseg!r} segments (max {lim})"
    grefs = r["grefs"]
    if not isinstance(grefs, list) or len(grefs) != nseg or not all(_uint(g, U32) for g in grefs):
        return f"request {rid}: grefs {grefs!r} are not {nseg} grant references"
    nbytes = r["nbytes"]
    if type(nbytes) is not int or not (0 < nbytes <= nseg * PAGE):
        return f"request {rid} with {nbytes!r} bytes in {nseg} segments"
    sec = r["sector_number"]
    if not _uint(sec, U64):
        return f"request {rid} with sector {sec!r}"
    if sec + -(-nbytes // SECTOR_BYTES) > capacity_sectors:
        return f"request {rid}: access beyond end of device (sector {sec}, {capacity_sectors} sectors)"
    return None


def check_tx_request(r) -> str | None:
    """Why netback must refuse a ``netif_tx_request`` ``(id, gref, size, meta)``, or ``None``."""
    if not isinstance(r, tuple) or len(r) != 4:
        return f"tx request {r!r:.40} is not a netif_tx_request"
    rid, ref, size, _meta = r
    if not _uint(rid, U16):
        return f"tx request id {rid!r} is not a uint16"
    if not _uint(ref, U32):
        return f"tx request {rid}: gref {ref!r}"
    if type(size) is not int or not (0 < size <= U16):
        return f"tx request {rid}: size {size!r} out of range"
    return None


def check_rx_request(r) -> str | None:
    """Why netback must refuse a ``netif_rx_request`` ``(id, gref)``, or ``None``."""
    if not isinstance(r, tuple) or len(r) != 2:
        return f"rx request {r!r:.40} is not a netif_rx_request"
    rid, ref = r
    if not _uint(rid, U16):
        return f"rx request id {rid!r} is not a uint16"
    if not _uint(ref, U32):
        return f"rx request {rid}: gref {ref!r}"
    return None
