"""xentrace's binary trace file: ``t_rec`` records in per-pCPU chunks, written from the trace bus.

Design note
-----------
Models the file ``xentrace`` writes (``tools/xentrace/xentrace.c``, records as
``xen/include/public/trace.h`` ``struct t_rec`` defines them): each record is a 32-bit header --
the 28-bit event id, the number of extra 32-bit words in bits 28-30 (``TRC_HD_EXTRA_SHIFT``) and
bit 31 (``TRC_HD_CYCLE_FLAG``) when a 64-bit TSC follows -- then the TSC (low word first) and the
words, little-endian as on x86. xentrace copies each pCPU's buffer window after a
``TRC_TRACE_CPU_CHANGE`` record ``{cpu, byte_count}``; :class:`XentraceWriter` keeps one buffer of
``t_buf`` size (32 pages, xentrace's ``-S`` default) per pCPU and writes it the same way when it
fills and at the end. The TSC is simulated nanoseconds times the profile's clock
(``clock_ghz``), rounded to the cycle. The class filter is Xen's (``xen/common/trace.c``
``__trace_var``): a record is kept when the mask shares its class and subclass bits, as
``xentrace -e MASK`` asks.

Simplifications: no buffer wrap or lost records (the writer is synchronous, so nothing is lost);
a data word is taken modulo 2**32. Two records that real xentrace files lack, both in the
guest class so that ``xenalyze`` passes over them: :data:`PVSIM_TRC_CLOCK` (the TSC rate, so
the file alone converts cycles to time) at the start and :data:`PVSIM_TRC_END` (the simulated
time the trace stops) at the end; both are written whatever the mask.
"""

from __future__ import annotations

import heapq
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from hypercalls.trace import (
    PVSIM_TRC_CLOCK,
    PVSIM_TRC_END,
    TRACE_EXTRA_MAX,
    TRC_ALL,
    TRC_CLS_SHIFT,
    TRC_HD_CYCLE_FLAG,
    TRC_HD_EXTRA_MASK,
    TRC_HD_EXTRA_SHIFT,
    TRC_SUBCLS_SHIFT,
    TRC_TRACE_CPU_CHANGE,
)
from pvsim.core.engine import TraceRecord
from pvsim.core.errors import ScenarioError

_EVENT_BITS = 0x0FFFFFFF  # TRC_HD_TO_EVENT
PAGE_SIZE = 4096
T_BUF_PAGES = 32  # xentrace -S default


_U32 = 0xFFFFFFFF


def parse_mask(text: str | int | None) -> int:
    """``xentrace -e``'s event mask: a number (``0x0002f000``, ``all``) -> int."""
    if text is None:
        return TRC_ALL
    if isinstance(text, int):
        return text
    s = str(text).strip().lower()
    if s == "all":
        return TRC_ALL
    try:
        v = int(s, 0)
    except ValueError:
        raise ScenarioError("--trace-mask", f"must be a number such as 0x0002f000 or 'all', got {text!r}") from None
    if v <= 0 or v > 0xFFFFFFFF:
        raise ScenarioError("--trace-mask", f"must be a 32-bit event mask, got {text!r}")
    return v


def mask_keeps(mask: int, event: int) -> bool:
    """Whether Xen's ``__trace_var`` records ``event`` under ``tb_event_mask`` = ``mask``."""
    if not (mask & event):
        return False
    if not ((mask >> TRC_CLS_SHIFT) & (event >> TRC_CLS_SHIFT)):
        return False
    return bool(((mask >> TRC_SUBCLS_SHIFT) & 0xF) & ((event >> TRC_SUBCLS_SHIFT) & 0xF))


def encode(event: int, tsc: int | None, words=()) -> bytes:
    """One ``t_rec``: header, optional TSC, up to 7 words."""
    n = len(words)
    if n > TRACE_EXTRA_MAX:
        raise ValueError(f"event {event:#x}: {n} words, t_rec carries at most {TRACE_EXTRA_MAX}")
    hdr = (event & _EVENT_BITS) | (n << TRC_HD_EXTRA_SHIFT)
    if tsc is not None:
        hdr |= TRC_HD_CYCLE_FLAG
        return struct.pack(f"<IQ{n}I", hdr, tsc, *[int(w) & _U32 for w in words])
    return struct.pack(f"<I{n}I", hdr, *[int(w) & _U32 for w in words])


class XentraceWriter:
    """A trace-bus subscriber writing a xentrace file to ``fh`` (a binary file the caller owns).

    ``cycles_per_ns`` is the profile's ``clock_ghz``; ``mask`` is ``xentrace -e``'s."""

    def __init__(self, fh: BinaryIO, cycles_per_ns: float, mask: int = TRC_ALL,
                 buf_bytes: int = T_BUF_PAGES * PAGE_SIZE, start_ns: int = 0):
        self.fh = fh
        self.ghz = float(cycles_per_ns)
        self.mask = int(mask)
        self.buf_bytes = int(buf_bytes)
        self.bufs: dict[int, bytearray] = {}
        self.records = 0
        self.bytes = 0
        self._keep: dict[int, bool] = {}
        khz = int(round(self.ghz * 1e6))
        self._put(0, encode(PVSIM_TRC_CLOCK, self.tsc(start_ns), (khz & _U32, khz >> 32)))

    def tsc(self, ns: int) -> int:
        return int(round(ns * self.ghz))

    def __call__(self, rec: TraceRecord) -> None:
        ev = rec.event
        keep = self._keep.get(ev)
        if keep is None:
            keep = self._keep[ev] = mask_keeps(self.mask, ev)
        if keep:
            self._put(rec.pcpu, encode(ev, self.tsc(rec.time_ns), rec.words[:TRACE_EXTRA_MAX]))

    def _put(self, cpu: int, data: bytes) -> None:
        b = self.bufs.get(cpu)
        if b is None:
            b = self.bufs[cpu] = bytearray()
        b += data
        self.records += 1
        if len(b) >= self.buf_bytes:
            self._flush(cpu)

    def _flush(self, cpu: int) -> None:
        b = self.bufs.get(cpu)
        if b:
            head = encode(TRC_TRACE_CPU_CHANGE, None, (cpu, len(b)))
            self.fh.write(head)
            self.fh.write(bytes(b))
            self.bytes += len(head) + len(b)
            b.clear()

    def close(self, end_ns: int) -> None:
        """Write the end marker and every buffer that holds records."""
        self._put(0, encode(PVSIM_TRC_END, self.tsc(end_ns)))
        for cpu in sorted(self.bufs):
            self._flush(cpu)
        self.fh.flush()


# ----------------------------------------------------------------------------------------- reading
@dataclass(frozen=True, slots=True)
class Rec:
    cpu: int
    tsc: int | None
    event: int
    words: tuple[int, ...]


def _records(data: bytes, where: str) -> Iterator[tuple[int, Rec]]:
    """(index of the chunk's first byte, record) for every record of a file, in file order."""
    off = 0
    n = len(data)
    cpu = None
    while off < n:
        if off + 4 > n:
            raise ScenarioError(where, f"truncated record header at byte {off}")
        (hdr,) = struct.unpack_from("<I", data, off)
        ev = hdr & _EVENT_BITS
        nx = (hdr >> TRC_HD_EXTRA_SHIFT) & TRC_HD_EXTRA_MASK
        cyc = bool(hdr & TRC_HD_CYCLE_FLAG)
        size = 4 + (8 if cyc else 0) + 4 * nx
        if off + size > n:
            raise ScenarioError(where, f"truncated record at byte {off} (event {ev:#010x})")
        p = off + 4
        tsc = None
        if cyc:
            (tsc,) = struct.unpack_from("<Q", data, p)
            p += 8
        words = struct.unpack_from(f"<{nx}I", data, p)
        if ev == TRC_TRACE_CPU_CHANGE:
            if nx < 1:
                raise ScenarioError(where, f"TRC_TRACE_CPU_CHANGE without a cpu at byte {off}")
            cpu = words[0]
        elif cpu is None:
            raise ScenarioError(where, "not a xentrace file (no TRC_TRACE_CPU_CHANGE record first)")
        else:
            yield off, Rec(cpu, tsc, ev, tuple(words))
        off += size


def read_trace(path: str | Path, field: str = "TRACE") -> list[Rec]:
    """Every record of a xentrace file, merged over pCPUs in TSC order (each pCPU's order kept;
    a record without TSC takes its predecessor's)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ScenarioError(field, f"{str(path)!r} cannot be read ({e.strerror})") from None
    per: dict[int, list[tuple[int, int, Rec]]] = {}
    last: dict[int, int] = {}
    for i, (_off, r) in enumerate(_records(data, field)):
        t = r.tsc if r.tsc is not None else last.get(r.cpu, 0)
        last[r.cpu] = t
        per.setdefault(r.cpu, []).append((t, i, r))
    return [r for _t, _i, r in heapq.merge(*per.values(), key=lambda x: (x[0], x[1]))]
