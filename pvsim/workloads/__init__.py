"""The workload catalogue: every workload by name, built-in or a user's, in one schema.

Design note
-----------
:data:`BUILTIN` holds the built-in workloads -- lmbench operations (``lmbench.*``), the ASPLOS'06
nanobenchmarks (``nano.*``), the macro op mixes (:mod:`pvsim.workloads.macro`), and the I/O
generators, memory benchmarks and scheduler behaviours of ``builtin.toml`` -- as
:class:`~pvsim.workloads.spec.WorkloadSpec` objects. A :class:`Catalogue` is the built-ins plus a
scenario's own workloads (``[[workloads]]`` tables or ``workload_files``); a user workload may not
reuse a built-in name. Every command resolves names through a catalogue, so a workload added here
or in a file is seen by ``run``, ``compare``, ``sweep`` and ``pvsim list`` alike.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from pvsim.core.errors import ScenarioError
from pvsim.core.schema import unknown
from pvsim.workloads.lmbench import LMBENCH, TABLES
from pvsim.workloads.macro import MACRO
from pvsim.workloads.nanobench import CALIBRATION_SET, NANO, PUBLISHED
from pvsim.workloads.spec import Workload, WorkloadSpec, parse_spec, resolve

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def parse_workloads(data, where: str = "workloads") -> list[WorkloadSpec]:
    """Workload specs from the ``[[workloads]]`` array of a TOML document."""
    if not isinstance(data, list):
        raise ScenarioError(where, "must be an array of tables ([[workloads]])")
    out = []
    for i, d in enumerate(data):
        w = f"{where}[{i}]"
        if not isinstance(d, dict):
            raise ScenarioError(w, "must be a table")
        out.append(parse_spec(d, w))
    return out


def load_workload_file(path: str | Path, where: str = "workload_files") -> list[WorkloadSpec]:
    """The workloads of a TOML file holding ``[[workloads]]`` tables."""
    p = Path(path)
    if not p.is_file():
        raise ScenarioError(where, f"workload file {str(path)!r} does not exist or is not a file")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ScenarioError(where, f"{path}: not a UTF-8 text file") from None
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(where, f"{path}: invalid TOML ({e})") from None
    extra = set(data) - {"workloads"}
    if extra:
        raise unknown(f"{where}[{path}]", sorted(extra)[0], ("workloads",))
    return parse_workloads(data.get("workloads", []), f"{p.name}: workloads")


def _builtin() -> dict[str, WorkloadSpec]:
    text = (resources.files("pvsim") / "workloads" / "builtin.toml").read_text(encoding="utf-8")
    specs = parse_workloads(tomllib.loads(text)["workloads"], "builtin.toml: workloads")
    out: dict[str, WorkloadSpec] = {}
    for d in (LMBENCH, NANO, MACRO, {s.name: s for s in specs}):
        for name, spec in d.items():
            if name in out:
                raise ValueError(f"built-in workload {name!r} defined twice")
            out[name] = spec
    return out


BUILTIN: dict[str, WorkloadSpec] = _builtin()


class Catalogue:
    """The built-in workloads plus a scenario's own (immutable; ``with_specs`` returns a new one)."""

    def __init__(self, extra: tuple[WorkloadSpec, ...] = ()):
        self.extra = tuple(extra)
        self._all = dict(BUILTIN)
        for s in self.extra:
            if s.name in BUILTIN:
                raise ScenarioError(f"workloads.{s.name}", f"{s.name!r} is a built-in workload; choose another name")
            if s.name in self._all:
                raise ScenarioError(f"workloads.{s.name}", f"workload {s.name!r} defined twice")
            self._all[s.name] = s

    def with_specs(self, specs) -> "Catalogue":
        return Catalogue(self.extra + tuple(specs))

    def names(self) -> list[str]:
        return list(self._all)

    def __contains__(self, name: str) -> bool:
        return name in self._all

    def get(self, name: str, where: str = "workload") -> WorkloadSpec:
        try:
            return self._all[name]
        except KeyError:
            raise unknown(where, name, self._all, what="workload") from None

    def resolve(self, name: str, params: dict | None = None, where: str = "workload") -> Workload:
        return resolve(self.get(name, where), params, where)


DEFAULT = Catalogue()


def get(name: str) -> WorkloadSpec:
    return DEFAULT.get(name)


def workload_names() -> list[str]:
    return DEFAULT.names()


__all__ = ["BUILTIN", "Catalogue", "DEFAULT", "WorkloadSpec", "Workload", "get", "workload_names",
           "load_workload_file", "parse_workloads", "resolve", "LMBENCH", "NANO", "MACRO", "TABLES", "PUBLISHED",
           "CALIBRATION_SET"]
