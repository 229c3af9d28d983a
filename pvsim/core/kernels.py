"""Registry of compiled (Numba) kernels and their plain-Python references.

Every hot path is three things in one module: ``<name>_ref`` (plain Python, readable, ideally a
different formulation), ``_<name>_kernel`` (``@njit(cache=True)``, arrays and scalars only, writes
into ``out``, draws no random numbers) and a public ``<name>(...)`` that validates and allocates.

Each module registers its kernels here with :func:`register`, giving a ``cases(rng)`` callable that
yields argument tuples (seeded random and edge cases). ``tests/test_kernels_equivalence.py`` runs
every registered kernel against its reference on those cases, and
``tests/test_kernels_registered.py`` fails if any ``@njit`` function in the source tree is not
registered. Modules that define kernels are listed in :data:`KERNEL_MODULES` so the registry can be
populated without import-time side effects elsewhere.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

# Modules that define kernels; imported by load_all(). Add yours here.
KERNEL_MODULES: list[str] = ["pvsim.mm.walk", "pvsim.sched.credit_core", "pvsim.io.devices", "pvsim.mm.pvkern",
                             "pvsim.sched.rtds_core", "pvsim.sched.hk.core", "pvsim.migrate.dirty", "pvsim.ha.disk"]


@dataclass(frozen=True)
class KernelEntry:
    name: str
    kernel: Callable  # the @njit function (writes into its last argument, `out`)
    reference: Callable  # plain-Python reference with the same signature
    cases: Callable[[object], Iterable[tuple]]  # rng -> iterable of argument tuples
    compare: Callable | None = None  # optional (out_kernel, out_ref) -> None, raising on mismatch


_REGISTRY: dict[str, KernelEntry] = {}


def register(name: str, *, kernel: Callable, reference: Callable, cases: Callable, compare=None) -> None:
    if name in _REGISTRY and _REGISTRY[name].kernel is not kernel:
        raise ValueError(f"kernel {name!r} registered twice")
    _REGISTRY[name] = KernelEntry(name, kernel, reference, cases, compare)


@dataclass(frozen=True)
class SystemEntry:
    """A compiled *system*: a package of kernels that together replace a Python implementation of a
    whole (the dispatcher and its schedulers), checked as a whole -- same inputs, identical decision
    traces and results -- by ``test`` rather than function by function."""

    package: str  # e.g. "pvsim.sched.hk"
    reference: str  # the Python implementation, e.g. "pvsim.sched.runner.HostRunner"
    test: str  # the equivalence test file, relative to the repository


_SYSTEMS: dict[str, SystemEntry] = {}


def register_system(package: str, *, reference: str, test: str) -> None:
    _SYSTEMS[package] = SystemEntry(package, reference, test)


def systems() -> dict[str, SystemEntry]:
    load_all()
    return dict(_SYSTEMS)


def load_all() -> dict[str, KernelEntry]:
    for mod in KERNEL_MODULES:
        importlib.import_module(mod)
    return dict(_REGISTRY)


def kernel_names() -> set[str]:
    """Names of the compiled functions (``kernel.__name__``) registered so far."""
    out = set()
    for e in _REGISTRY.values():
        fn = getattr(e.kernel, "py_func", e.kernel)
        out.add(fn.__name__)
    return out


def guard_cache(package_dir: str | Path) -> bool:
    """Drop a package's Numba cache when any of its sources changed.

    Numba checks a cached function against *its own* file only: when a kernel in ``core.py`` calls
    (and so compiles in) a kernel of ``credit.py``, an edit of ``credit.py`` alone leaves the cached
    ``core`` running the old code. A compiled *system* (``register_system``) calls across its
    modules, so its package calls this before importing them: a digest of all its ``.py`` files is
    kept beside the cache, and when it differs every ``.nbi``/``.nbc`` of the package is removed
    (recompiled on first use). Returns True when the cache was dropped. Best effort: an unwritable
    folder (an installed package using Numba's user-wide cache) is left alone.
    """
    d = Path(package_dir)
    h = hashlib.sha256()
    for f in sorted(d.glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    digest = h.hexdigest()
    cache = d / "__pycache__"
    stamp = cache / "sources.sha256"
    try:
        if stamp.is_file() and stamp.read_text() == digest:
            return False
        cache.mkdir(exist_ok=True)
        for f in list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")):
            f.unlink()
        stamp.write_text(digest)
    except OSError:
        return False
    return True
