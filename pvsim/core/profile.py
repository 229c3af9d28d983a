"""Platform cost profiles: every primitive cost, with its source cited beside it.

A profile is a TOML file. Top-level keys ``name``, ``description``, ``clock_ghz`` (with
``clock_source``); then one table per layer (``[cpu]``, ``[native]``, ``[xen]``, ``[hvm]``,
``[bt]``, ``[mmu]``, ``[io]``, ``[sched]``, ``[cache]``, ``[container]``). Every constant is an inline table::

    syscall_cycles = { value = 1080, source = "SOSP'03 Table 3, L-UP null call 0.45 us x 2.4 GHz [MEM]" }

and may carry ``calibrated_on = "nano.pgfault"`` when it was calibrated on one named
micro-benchmark (that benchmark is then excluded from validation; see docs/calibration.md).
Units are in the key: ``_cycles`` (converted with ``clock_ghz``), ``_ns``, ``_us``, ``_bytes``,
``_mbps``, ``_frac``, ``_count``. Bundled profiles live in ``pvsim/profiles/``; a user passes a path
to their own file anywhere a profile name is accepted.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pvsim.core.errors import ScenarioError
from pvsim.core.schema import suggest, unknown, validate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SECTIONS = ("cpu", "native", "xen", "hvm", "bt", "mmu", "io", "sched", "cache", "container", "migration", "uml")
UNIT_SUFFIXES = ("_cycles", "_ns", "_us", "_ms", "_bytes", "_mbps", "_frac", "_count", "_pages", "_factor", "_iops")


@dataclass(frozen=True)
class Constant:
    value: float
    source: str
    calibrated_on: str | None = None


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    clock_ghz: float
    constants: dict[str, Constant] = field(default_factory=dict)  # "section.key" -> Constant
    path: str = ""

    def has(self, key: str) -> bool:
        return key in self.constants

    def value(self, key: str) -> float:
        try:
            return self.constants[key].value
        except KeyError:
            raise ScenarioError(f"profile[{self.name}].{key}", "missing constant in this profile") from None

    def cycles(self, key: str) -> float:
        """The constant ``key`` in CPU cycles (``_ns``/``_us`` keys converted with the clock)."""
        v = self.value(key)
        if key.endswith("_cycles"):
            return float(v)
        if key.endswith("_ns"):
            return float(v) * self.clock_ghz
        if key.endswith("_us"):
            return float(v) * 1000.0 * self.clock_ghz
        raise ScenarioError(f"profile[{self.name}].{key}", "not a time constant (_cycles, _ns or _us)")

    def ns(self, key: str) -> float:
        return self.cycles(key) / self.clock_ghz

    def cycles_to_ns(self, cycles: float) -> float:
        return cycles / self.clock_ghz

    @property
    def key(self) -> str:
        """What :func:`load_profile` takes to load this profile again (bundled name or file path)."""
        return self.path if self.path and not self.path.startswith("pvsim/profiles/") else self.name

    def calibrations(self) -> dict[str, str]:
        return {k: c.calibrated_on for k, c in self.constants.items() if c.calibrated_on}


def bundled_profiles() -> list[str]:
    root = resources.files("pvsim") / "profiles"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


class ConstantSpec(BaseModel):
    """One constant of a profile file: ``{ value = ..., source = "...", calibrated_on = "..." }``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    value: float = Field(ge=0)
    source: str
    calibrated_on: str | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _number(cls, v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"must be a non-negative number, got {v!r}")
        return v

    @field_validator("source")
    @classmethod
    def _cited(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("every constant must cite its source")
        return v


class ProfileHead(BaseModel):
    """The top-level keys of a profile file (its sections are checked constant by constant)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    description: str = ""
    clock_ghz: float = Field(ge=0.1, le=10)
    clock_source: str = ""


def known_constants() -> set[str]:
    """Every constant a bundled profile defines: the names the model reads. A user's file may not
    introduce another (a misspelt name would otherwise be silently ignored)."""
    global _KNOWN
    if _KNOWN is None:
        _KNOWN = set()
        for n in bundled_profiles():
            _KNOWN |= set(_load(n, "profile", check_names=False).constants)
    return _KNOWN


_KNOWN: set[str] | None = None


def _parse(data: dict, where: str, path: str, check_names: bool = True) -> Profile:
    head = {k: v for k, v in data.items() if k not in SECTIONS}
    consts: dict[str, Constant] = {}
    for key, val in data.items():
        if key not in SECTIONS:
            continue
        if not isinstance(val, dict):
            raise ScenarioError(f"{where}.{key}", "must be a table of constants")
        for ck, cv in val.items():
            fp = f"{where}.{key}.{ck}"
            if not ck.endswith(UNIT_SUFFIXES):
                raise ScenarioError(fp, f"constant names carry their unit ({', '.join(UNIT_SUFFIXES)})")
            if not isinstance(cv, dict):
                raise ScenarioError(fp, "must be an inline table { value = ..., source = \"...\" }")
            c = validate(ConstantSpec, cv, fp)
            consts[f"{key}.{ck}"] = Constant(float(c.value), c.source, c.calibrated_on)
    for k in head:
        if k not in ProfileHead.model_fields:
            raise unknown(where, k, [*ProfileHead.model_fields, *SECTIONS])
    h = validate(ProfileHead, head, where)
    if check_names:
        known = known_constants()
        for k in consts:
            if k not in known:
                sec, ck = k.split(".", 1)
                same = [x.split(".", 1)[1] for x in known if x.startswith(sec + ".")]
                raise ScenarioError(f"{where}.{k}", f"unknown constant{suggest(ck, same)}; a profile sets the "
                                                    f"constants the model reads ({len(same)} in [{sec}])")
    return Profile(h.name, h.description, float(h.clock_ghz), consts, path)


def load_profile(name_or_path: str, *, field_name: str = "profile") -> Profile:
    """Load a bundled profile by name (``modern``) or a user's TOML file by path.

    A user file may say ``base = "modern"`` to start from a bundled profile and override some of its
    constants; it may not add constants the model does not read (a misspelt name is refused, with
    the nearest valid one).
    """
    return _load(name_or_path, field_name)


@lru_cache(maxsize=64)
def _load_cached(name_or_path: str, field_name: str, check_names: bool, mtime: float) -> Profile:
    return _load_uncached(name_or_path, field_name, check_names)


def _load(name_or_path: str, field_name: str, check_names: bool = True) -> Profile:
    p = Path(str(name_or_path))
    mtime = p.stat().st_mtime if p.is_file() else 0.0
    return _load_cached(str(name_or_path), field_name, check_names, mtime)


def _load_uncached(name_or_path: str, field_name: str, check_names: bool) -> Profile:
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ScenarioError(field_name, f"must name a bundled profile ({', '.join(bundled_profiles())}) or a "
                                        ".toml file, got {name_or_path!r}")
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.exists():
            raise ScenarioError(field_name, f"profile file {name_or_path!r} does not exist")
        if not p.is_file():
            raise ScenarioError(field_name, f"{name_or_path!r} is not a file")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ScenarioError(field_name, f"{name_or_path}: not a UTF-8 text file") from None
        except OSError as e:
            raise ScenarioError(field_name, f"{name_or_path}: cannot be read ({e.strerror})") from None
        path = str(p)
    else:
        root = resources.files("pvsim") / "profiles" / f"{name_or_path}.toml"
        if not root.is_file():
            raise ScenarioError(field_name, f"unknown profile {name_or_path!r}{suggest(name_or_path, bundled_profiles())}; "
                                            f"allowed: {', '.join(bundled_profiles())} or a .toml path")
        text = root.read_text(encoding="utf-8")
        path = f"pvsim/profiles/{name_or_path}.toml"
        # fragments: pvsim/profiles/<name>.d/*.toml (one per subsystem), merged section by section
        frag_dir = resources.files("pvsim") / "profiles" / f"{name_or_path}.d"
        if frag_dir.is_dir():
            for frag in sorted(frag_dir.iterdir(), key=lambda f: f.name):
                if frag.name.endswith(".toml"):
                    text += "\n" + frag.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(field_name, f"{path}: invalid TOML ({e})") from None
    where = f"profile[{data.get('name', name_or_path)}]"
    if "base" in data:
        if not isinstance(data["base"], str):
            raise ScenarioError(f"{where}.base", "must name a profile")
        base = _load(data["base"], f"{field_name}.base", check_names)
        merged: dict = {"name": base.name, "description": base.description, "clock_ghz": base.clock_ghz}
        for k, c in base.constants.items():
            sec, ck = k.split(".", 1)
            entry = {"value": c.value, "source": c.source}
            if c.calibrated_on:
                entry["calibrated_on"] = c.calibrated_on
            merged.setdefault(sec, {})[ck] = entry
        for k, v in data.items():
            if k == "base":
                continue
            if isinstance(v, dict) and k in SECTIONS:
                for ck, cv in v.items():
                    if ck not in merged.get(k, {}):
                        same = list(merged.get(k, {}))
                        raise ScenarioError(f"{where}.{k}.{ck}", f"unknown constant{suggest(ck, same)}; the base "
                                                                 f"profile {base.name!r} has no {k}.{ck}")
                merged.setdefault(k, {}).update(v)
            else:
                merged[k] = v
        data = merged
    return _parse(data, where, path, check_names)
