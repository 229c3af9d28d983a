"""Platform cost profiles: every primitive cost, with its source cited beside it.

A profile is a TOML file. Top-level keys ``name``, ``description``, ``clock_ghz`` (with
``clock_source``); then one table per layer (``[cpu]``, ``[native]``, ``[xen]``, ``[hvm]``,
``[bt]``, ``[mmu]``, ``[io]``, ``[sched]``, ``[container]``). Every constant is an inline table::

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
from importlib import resources
from pathlib import Path

from pvsim.core.errors import ScenarioError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SECTIONS = ("cpu", "native", "xen", "hvm", "bt", "mmu", "io", "sched", "container", "migration")
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


def _parse(data: dict, where: str, path: str) -> Profile:
    for req in ("name", "clock_ghz"):
        if req not in data:
            raise ScenarioError(f"{where}.{req}", "required")
    clock = data["clock_ghz"]
    if not isinstance(clock, (int, float)) or not (0.1 <= clock <= 10):
        raise ScenarioError(f"{where}.clock_ghz", f"must be a number in 0.1..10, got {clock!r}")
    consts: dict[str, Constant] = {}
    for key, val in data.items():
        if key in ("name", "description", "clock_ghz", "clock_source", "base"):
            continue
        if key not in SECTIONS or not isinstance(val, dict):
            raise ScenarioError(f"{where}.{key}", f"unknown section; allowed: {', '.join(SECTIONS)}")
        for ck, cv in val.items():
            fp = f"{where}.{key}.{ck}"
            if not ck.endswith(UNIT_SUFFIXES):
                raise ScenarioError(fp, f"constant names carry their unit ({', '.join(UNIT_SUFFIXES)})")
            if not isinstance(cv, dict) or "value" not in cv:
                raise ScenarioError(fp, "must be an inline table { value = ..., source = \"...\" }")
            v = cv["value"]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ScenarioError(fp + ".value", f"must be a non-negative number, got {v!r}")
            src = cv.get("source")
            if not isinstance(src, str) or not src.strip():
                raise ScenarioError(fp + ".source", "every constant must cite its source")
            extra = set(cv) - {"value", "source", "calibrated_on"}
            if extra:
                raise ScenarioError(fp, f"unknown keys {sorted(extra)}; allowed: value, source, calibrated_on")
            consts[f"{key}.{ck}"] = Constant(float(v), src, cv.get("calibrated_on"))
    return Profile(str(data["name"]), str(data.get("description", "")), float(clock), consts, path)


def _fragment_text(frag: str, base: str) -> str:
    """A fragment may only add sections the base file does not have (no silent overrides)."""
    return frag


def load_profile(name_or_path: str, *, field_name: str = "profile") -> Profile:
    """Load a bundled profile by name (``modern``) or a user's TOML file by path.

    A user file may say ``base = "modern"`` to start from a bundled profile and override some
    constants.
    """
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.exists():
            raise ScenarioError(field_name, f"profile file {name_or_path!r} does not exist")
        text = p.read_text()
        path = str(p)
    else:
        root = resources.files("pvsim") / "profiles" / f"{name_or_path}.toml"
        if not root.is_file():
            raise ScenarioError(
                field_name, f"unknown profile {name_or_path!r}; allowed: {', '.join(bundled_profiles())} or a .toml path"
            )
        text = root.read_text()
        path = f"pvsim/profiles/{name_or_path}.toml"
        # fragments: pvsim/profiles/<name>.d/*.toml (one per subsystem), merged section by section
        frag_dir = resources.files("pvsim") / "profiles" / f"{name_or_path}.d"
        if frag_dir.is_dir():
            for frag in sorted(frag_dir.iterdir(), key=lambda f: f.name):
                if frag.name.endswith(".toml"):
                    text += "\n" + _fragment_text(frag.read_text(), text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(field_name, f"{path}: invalid TOML ({e})") from None
    if "base" in data:
        base = load_profile(data["base"], field_name=f"{field_name}.base")
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
            if isinstance(v, dict) and k in merged:
                merged[k].update(v)
            else:
                merged[k] = v
        data = merged
    return _parse(data, f"profile[{data.get('name', name_or_path)}]", path)
