"""The save image of ``pvsim xl save`` / ``pvsim xl restore``: written atomically, checked on read.

Design note
-----------
Models the file ``xl save`` writes (``tools/xl/xl_saverestore.c``: ``save_domain`` writes the xl
header -- the 32-byte magic ``"Xen saved domain, xl format\\n \\0 \\r"``, byte order, version,
optional data holding the domain's config -- then ``libxl_domain_suspend`` appends the libxl
image and the migration stream v2 records of a non-live save, ``tools/libs/guest/xg_sr_save.c``
with ``live = false``). pvsim holds no guest memory contents, so the image holds pvsim's model
state, not memory bytes: a one-line header naming the format and its version, the body's length
and SHA-256, then a JSON body with the domain's spec (its config), the page count and the bytes the
stream of the non-live save carries (computed by :mod:`pvsim.migrate.save`), and the workload's
progress (work units done, budget left) the restore continues from. A file that is foreign, of
another version, truncated or altered is refused naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from pvsim.core.errors import ScenarioError

MAGIC = "pvsim-xl-save"  # pvsim's, not xl's: the file does not hold a libxl image
VERSION = 1


def encode(body: dict) -> bytes:
    data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    head = f"{MAGIC} v{VERSION} {len(data)} {hashlib.sha256(data).hexdigest()}\n".encode()
    return head + data


def write(path: Path, body: dict) -> int:
    """Write the image to ``path`` atomically (a temporary file in its directory, then rename)."""
    path = Path(path)
    blob = encode(body)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent or "."))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return len(blob)


def read(path: Path, where: str = "FILE") -> dict:
    """The body of the image at ``path``; a bad file raises naming ``where``."""
    try:
        blob = Path(path).read_bytes()
    except OSError as e:
        raise ScenarioError(where, f"cannot read {str(path)!r}: {e.strerror}") from None
    nl = blob.find(b"\n")
    head = blob[:nl].decode("ascii", "replace").split() if nl > 0 else []
    if len(head) != 4 or head[0] != MAGIC:
        raise ScenarioError(where, f"{str(path)!r} is not a pvsim xl save image (no {MAGIC!r} header)")
    if head[1] != f"v{VERSION}":
        raise ScenarioError(where, f"{str(path)!r} has image version {head[1]!r}; this pvsim reads v{VERSION}")
    data = blob[nl + 1:]
    if not head[2].isdigit() or len(data) != int(head[2]):
        raise ScenarioError(where, f"{str(path)!r} is truncated or padded: body has {len(data)} bytes, "
                                   f"header says {head[2]}")
    if hashlib.sha256(data).hexdigest() != head[3]:
        raise ScenarioError(where, f"{str(path)!r} is corrupt: SHA-256 of the body does not match its header")
    try:
        body = json.loads(data)
    except ValueError:
        raise ScenarioError(where, f"{str(path)!r} has a body that is not JSON") from None
    for k in ("domain", "pages", "stream_bytes", "progress"):
        if k not in body:
            raise ScenarioError(where, f"{str(path)!r} lacks the {k!r} record")
    return body
