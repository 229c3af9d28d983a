"""Parameter sweeps: a grid over scenario fields and seeds, run serially or on a process pool.

In the manner of Mesa's ``batch_run``: each run returns flat rows that carry their parameters and a
stable ``run_id`` (a hash of the scenario's canonical form and seed), so the same sweep gives the same
rows whether run in one process or across workers, in any order.

Field paths use the scenario's own names: ``host.pcpus``, ``scheduler.name``, ``run.duration_ms``,
``domains[1].weight``, ``domains[0].options.batch``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from copy import deepcopy
from pathlib import Path
from typing import Any, Callable, Iterable

from pvsim.core.errors import ScenarioError
from pvsim.scenario import Scenario
from pvsim.system import build

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_PATH = re.compile(r"^([a-z_]+)(?:\[(\d+)\])?$")


def set_path(data: dict, path: str, value: Any) -> None:
    """Set ``domains[1].weight`` style paths in a scenario dict (creating tables as needed)."""
    parts = path.split(".")
    cur: Any = data
    for i, part in enumerate(parts):
        m = _PATH.match(part)
        if not m:
            raise ScenarioError(f"--param {path}", "not a field path like host.pcpus or domains[1].weight")
        key, idx = m.group(1), m.group(2)
        last = i == len(parts) - 1
        here = ".".join(parts[:i + 1])
        if not isinstance(cur, dict):
            raise ScenarioError(f"--param {path}", f"{'.'.join(parts[:i])} is a value, not a table")
        if idx is None and isinstance(cur.get(key), list):
            raise ScenarioError(f"--param {path}", f"{here} is an array; name one entry, like {key}[0]")
        if idx is not None:
            seq = cur.get(key)
            if not isinstance(seq, list) or int(idx) >= len(seq):
                raise ScenarioError(f"--param {path}", f"{key}[{idx}] does not exist in the base scenario")
            if last:
                seq[int(idx)] = value
            else:
                cur = seq[int(idx)]
        elif last:
            cur[key] = value
        else:
            cur = cur.setdefault(key, {})
            if not isinstance(cur, dict):
                raise ScenarioError(f"--param {path}", f"{here} is a value, not a table")


def run_id(data: dict) -> str:
    d = {k: v for k, v in data.items() if k != "_base_dir"}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


def load_base(path: str | Path) -> dict:
    """The base scenario of a sweep, as a table (checked: a readable UTF-8 TOML file)."""
    p = Path(path)
    if not p.exists():
        raise ScenarioError("scenario", f"file {str(path)!r} does not exist")
    if not p.is_file():
        raise ScenarioError("scenario", f"{str(path)!r} is not a file")
    try:
        base = tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ScenarioError("scenario", f"{path}: not a UTF-8 text file") from None
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError("scenario", f"{path}: invalid TOML ({e})") from None
    base.setdefault("name", p.stem)
    base["_base_dir"] = str(p.parent.resolve())
    scenario_of(deepcopy(base))  # the base itself is valid (its seed too, though --seeds replaces it)
    return base


def scenario_of(data: dict) -> Scenario:
    d = {k: v for k, v in data.items() if k != "_base_dir"}
    return Scenario.from_dict(d, name=str(d.get("name", "sweep")), base_dir=data.get("_base_dir"))


def _run_one(args: tuple[dict, dict]) -> list[dict]:
    data, params = args
    res = build(scenario_of(data)).run()
    rid = run_id(data)
    rows = []
    for r in res.rows:
        row = dict(r)
        row["run_id"] = rid
        row.update({f"param.{k}": v for k, v in params.items()})
        rows.append(row)
    return rows


def expand(base: dict, grid: dict[str, Iterable], seeds: Iterable[int] = (0,)) -> list[tuple[dict, dict]]:
    """Every combination of the grid's values, for every seed: (scenario dict, parameters)."""
    keys = list(grid)
    runs = []
    for combo in itertools.product(*(list(grid[k]) for k in keys)):
        for seed in seeds:
            data = deepcopy(base)
            params = dict(zip(keys, combo))
            for k, v in params.items():
                set_path(data, k, v)
            data["seed"] = int(seed)
            params["seed"] = int(seed)
            runs.append((data, params))
    # validate all before running any
    for data, _ in runs:
        scenario_of(deepcopy(data))
    return runs


def sweep(base: dict, grid: dict[str, Iterable], seeds: Iterable[int] = (0,), *, workers: int = 1,
          progress: Callable[[int, int], None] | None = None) -> list[dict]:
    runs = expand(base, grid, seeds)
    rows: list[dict] = []
    if workers <= 1:
        for i, r in enumerate(runs):
            rows.extend(_run_one(r))
            if progress:
                progress(i + 1, len(runs))
    else:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            for i, out in enumerate(ex.map(_run_one, runs)):
                rows.extend(out)
                if progress:
                    progress(i + 1, len(runs))
    return rows


def parse_param(spec: str) -> tuple[str, list]:
    """``domains[0].weight=128,256`` -> ("domains[0].weight", [128, 256]) (ints, floats, or strings)."""
    if "=" not in spec:
        raise ScenarioError("--param", f"expected PATH=V1,V2,..., got {spec!r}")
    path, vals = spec.split("=", 1)

    def conv(v: str):
        for t in (int, float):
            try:
                return t(v)
            except ValueError:
                pass
        return v

    path = path.strip()
    if not path:
        raise ScenarioError("--param", f"expected PATH=V1,V2,..., got {spec!r}")
    if path.split(".")[0].split("[")[0] == "seed":
        raise ScenarioError(f"--param {path}", "the seed is swept with --seeds")
    values = [conv(v.strip()) for v in vals.split(",") if v.strip()]
    if not values:
        raise ScenarioError("--param", f"{path}: no values")
    return path.strip(), values
