"""Parameter sweeps: a grid over scenario fields and seeds, cached run by run, on one of three engines.

In the manner of Mesa's ``batch_run``: each run returns flat rows that carry their parameters and a
stable ``run_id`` (a hash of the scenario's canonical form with the swept values, the seed and the
pvsim version), so the same sweep gives the same rows serially, on a local process pool or on a
Dask cluster, in any order of completion. The grid, the seeds and the rows never depend on the
engine: every engine runs the same :func:`_run_chunk` and hands back ``(run index, rows)``; the
driver (:func:`sweep`) stores each finished run under its ``run_id`` as it arrives and orders the
rows by run index at the end.

* **Cache and resume.** With a cache folder (``pvsim sweep`` uses ``.pvsim-cache/sweeps`` unless
  told otherwise), each finished run is written as ``<run_id>.json`` (to a temporary file, then
  renamed), so a sweep that is killed loses only the runs in flight, and rerunning the command
  computes only the runs whose file is missing. A run's file is written once: a run that arrives
  twice (a retried task whose first attempt did finish) is counted once.
* **Engines.** ``workers=1`` runs in this process. ``workers>1`` uses a local process pool whose
  workers are forked after this process has loaded the compiled kernels once (:func:`warm`), and
  chunks the runs when they are many, so no task pays a Numba load; a worker that dies loses its
  chunk only, which is resubmitted on a fresh pool. ``engine="dask"`` submits the same chunks to a
  ``distributed`` scheduler (``address``) or to a ``LocalCluster`` of ``workers`` processes; Dask
  reschedules the tasks of a worker that dies.
* **Columns for people.** A swept path gets a column ``param.<name>``: ``domains[3].cap`` is named
  after the domain (``param.batch.cap``), ``hosts[1].pcpus`` after the host, other paths keep their
  spelling (``param.host.pcpus``), and ``names`` gives aliases. The seed is the rows' own ``seed``.

* **What each run is.** ``runner="run"`` (the default) builds and runs the scenario and gives its
  per-domain rows. ``runner="migrate"`` (``pvsim sweep --migrate``) runs only the scenario's
  ``[[migrations]]`` on an engine of their own, as ``pvsim migrate`` does
  (:func:`pvsim.migrate.live.run`: no guest runs, so a point costs a fraction of a second), and gives
  one ``kind = "migration"`` row per migration: total time, downtime and its parts, bytes and their
  ratio to RAM, rounds, stop reason. Each migration is checked against its scenario before any run.
  A migrate run's ``run_id`` hashes the runner too, so it never meets a full run's in the cache.

Field paths use the scenario's own names: ``host.pcpus``, ``scheduler.name``, ``run.duration_ms``,
``domains[1].weight``, ``domains[0].options.batch``; for a migration sweep ``migrations[0].policy``,
``domains[0].memory_mib``, ``links[0].rate_mbps``, ``hosts[1].memory_mib`` and a scenario workload's
dirty rate ``workloads[0].writable.mb_per_s``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import multiprocessing
import os
import re
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from pvsim.core.errors import ScenarioError
from pvsim.core.version import __version__
from pvsim.migrate import live as migration
from pvsim.scenario import Scenario
from pvsim.system import build

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_PATH = re.compile(r"^([a-z_]+)(?:\[(\d+)\])?$")
ENGINES = ("local", "dask")
RUNNERS = ("run", "migrate")
#: How many times a chunk lost with a dead worker is resubmitted before its runs count as failed.
POOL_RETRIES = 3


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


def run_id(data: dict, runner: str = "run") -> str:
    """A run's identity: its scenario (with the swept values and the seed), the pvsim version, and
    what is run if it is not the whole scenario (a full run's identity is as it always was)."""
    d = {k: v for k, v in data.items() if k != "_base_dir"}
    ident = {"scenario": d, "pvsim_version": __version__} | ({} if runner == "run" else {"runner": runner})
    blob = json.dumps(ident, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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


# ------------------------------------------------------------------------------------------ the grid
@dataclass(frozen=True)
class Run:
    """One point of a sweep: its index in the grid, its scenario, its column values and identity."""
    index: int
    data: dict
    params: dict
    run_id: str
    runner: str = "run"  # "run": the whole scenario; "migrate": its [[migrations]] only


def column_names(base: dict, paths: Iterable[str], names: dict[str, str] | None = None) -> dict[str, str]:
    """The column of each swept path: an alias from ``names``, else the path with ``domains[i]`` and
    ``hosts[i]`` spelled by that domain's or host's name (``domains[3].cap`` -> ``batch.cap``)."""
    names = dict(names or {})
    paths = list(paths)
    for p in names:
        if p not in paths:
            raise ScenarioError("--name", f"{p!r} is not a swept path (swept: {', '.join(paths) or 'none'})")
    out = {}
    for p in paths:
        if p in names:
            out[p] = names[p]
            continue
        m = re.match(r"^(domains|hosts)\[(\d+)\]\.(.+)$", p)
        col = p
        if m:
            seq = base.get(m.group(1)) or []
            i = int(m.group(2))
            nm = seq[i].get("name") if i < len(seq) and isinstance(seq[i], dict) else None
            if isinstance(nm, str) and re.match(r"^[A-Za-z0-9_-]+$", nm) and nm not in ("host", "scheduler", "run"):
                col = f"{nm}.{m.group(3)}"
        out[p] = col
    cols = list(out.values())
    dup = next((c for c in cols if cols.count(c) > 1), None)
    if dup is not None:
        raise ScenarioError("--name", f"two swept paths would share the column param.{dup}; give each its own --name")
    return out


def expand(base: dict, grid: dict[str, Iterable], seeds: Iterable[int] = (0,),
           names: dict[str, str] | None = None, runner: str = "run") -> list[Run]:
    """Every combination of the grid's values, for every seed, validated before any runs (with
    ``runner="migrate"``, each point's migrations against its scenario too)."""
    if runner not in RUNNERS:
        raise ScenarioError("runner", f"unknown runner {runner!r}; allowed: {', '.join(RUNNERS)}")
    keys = list(grid)
    cols = column_names(base, keys, names)
    seeds = [int(s) for s in seeds]
    for s in seeds:
        if s < 0 or s >= 2 ** 63:
            raise ScenarioError("--seeds", f"{s} is out of range (0..2**63-1)")
    runs = []
    for combo in itertools.product(*(list(grid[k]) for k in keys)):
        for seed in seeds:
            data = deepcopy(base)
            for k, v in zip(keys, combo):
                set_path(data, k, v)
            data["seed"] = seed
            params = {cols[k]: v for k, v in zip(keys, combo)}
            runs.append(Run(len(runs), data, params, run_id(data, runner), runner))
    for r in runs:
        sc = scenario_of(deepcopy(r.data))
        if runner == "migrate":
            try:
                migration.check(sc, migration_requests(sc))
            except ScenarioError as e:  # name the point of the grid it fails at
                raise ScenarioError(e.field, f"{e.message} (at {_point(r)})") from None
    return runs


def _point(run: Run) -> str:
    """How an error names a point of the grid: its swept values."""
    return ", ".join(f"{k}={v}" for k, v in run.params.items()) or "the base scenario"


def migration_requests(sc: Scenario) -> list:
    """The ``[[migrations]]`` of a migration sweep's scenario (refused if it has none)."""
    reqs = migration.parse_requests(list(sc.migrations))
    if not reqs:
        raise ScenarioError("migrations", "a migration sweep (--migrate) needs [[migrations]] in the scenario")
    return reqs


def timeline_overrides(base: dict, paths: Iterable[str]) -> list[str]:
    """Swept paths that the scenario's own timeline sets again later (``domains[3].cap`` while a
    timeline entry sets ``cap`` of that domain): one message each, for a warning."""
    out = []
    doms = base.get("domains") or []
    for p in paths:
        m = re.match(r"^domains\[(\d+)\]\.([a-z_]+)$", p)
        if not m or int(m.group(1)) >= len(doms):
            continue
        name = doms[int(m.group(1))].get("name")
        for t in base.get("timeline") or []:
            if isinstance(t, dict) and t.get("domain") == name and m.group(2) in t:
                out.append(f"sweep.{p}: the scenario's timeline sets {m.group(2)} of {name!r} again at "
                           f"{t.get('at_ms')} ms, so the swept value holds only before then")
    return out


# ------------------------------------------------------------------------------------------ one run
def _rows_of(run: Run) -> list[dict]:
    if run.runner == "migrate":
        sc = scenario_of(run.data)
        mig, _rounds = migration.run(sc, migration_requests(sc))
        got = [{"kind": "migration", **r, "seed": sc.seed} for r in mig]
    else:
        got = build(scenario_of(run.data)).run().rows
    rows = []
    for r in got:
        row = dict(r)
        row["run_id"] = run.run_id
        row.update({f"param.{k}": v for k, v in run.params.items()})
        rows.append(row)
    return rows


def _run_chunk(chunk: list[Run], cache: str | None = None) -> list[tuple[int, list[dict] | None, str | None]]:
    """Run each point of a chunk: ``(index, rows, None)``, or ``(index, None, error)`` for a run
    that raised (the others go on). With a cache folder the worker stores each run as soon as it
    finishes and skips runs already stored, so a worker that dies mid-chunk loses only the run it
    was on."""
    store = Store(cache) if cache else None
    out = []
    for run in chunk:
        got = store.get(run.run_id) if store else None
        if got is not None:
            out.append((run.index, got, None))
            continue
        try:
            rows = _rows_of(run)
        except Exception as e:  # a failed run is reported, not fatal to the sweep
            out.append((run.index, None, f"{type(e).__name__}: {e}"))
            continue
        if store:
            store.put(run.run_id, rows)
        out.append((run.index, rows, None))
    return out


_WARM: set = set()


def warm(base: dict, runner: str = "run") -> None:
    """Load the compiled kernels this sweep's runs need, once per process: a 1 ms run of the base
    scenario, or for a migration sweep its migrations with every domain shrunk to 16 MiB (forked
    pool workers inherit them)."""
    key = json.dumps({k: v for k, v in base.items() if k in ("scheduler", "host", "hosts")}, sort_keys=True,
                     default=str) + runner
    if key in _WARM:
        return
    data = deepcopy(base)
    data["run"] = {"duration_ms": 1.0}
    data.pop("timeline", None)
    try:
        if runner == "migrate":
            for d in data.get("domains") or []:
                if isinstance(d, dict):
                    d["memory_mib"] = 16
            sc = scenario_of(data)
            migration.run(sc, migration_requests(sc))
        else:
            build(scenario_of(data)).run()
    except ScenarioError:  # a base that only the swept values make valid: nothing to warm with
        pass
    _WARM.add(key)


# ---------------------------------------------------------------------------------------- the store
class Store:
    """Finished runs on disk, one ``<run_id>.json`` each, written once and atomically."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ScenarioError("--cache", f"{str(folder)!r} is not a directory")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ScenarioError("--cache", f"{str(folder)!r} cannot be made ({e.strerror})") from None

    def _path(self, rid: str) -> Path:
        return self.folder / f"{rid}.json"

    def get(self, rid: str) -> list[dict] | None:
        try:
            doc = json.loads(self._path(rid).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if doc.get("run_id") != rid or not isinstance(doc.get("rows"), list):
            return None
        return doc["rows"]

    def put(self, rid: str, rows: list[dict]) -> bool:
        """Store a run; False (and nothing written) if it is already there."""
        final = self._path(rid)
        if final.exists():
            return False
        tmp = final.with_name(f".{rid}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"run_id": rid, "rows": rows}, sort_keys=True, default=_plain), encoding="utf-8")
        tmp.replace(final)
        return True


def _plain(o):
    try:
        return o.item()  # numpy scalars
    except AttributeError:
        raise TypeError(type(o)) from None


# ------------------------------------------------------------------------------------------ engines
def _chunks(runs: list[Run], workers: int, chunk: int | None) -> list[list[Run]]:
    if chunk is None:  # four chunks per worker: short runs share a task, a lost worker loses little
        chunk = max(1, math.ceil(len(runs) / (4 * max(1, workers))))
    return [runs[i:i + chunk] for i in range(0, len(runs), chunk)]


def _serial(runs: list[Run], *, cache: str | None, **_) -> Iterator[tuple[int, list[dict] | None, str | None]]:
    for run in runs:
        yield from _run_chunk([run], cache)


def _local(runs: list[Run], *, workers: int, chunk: int | None, cache: str | None, resubmit: bool = True,
           **_) -> Iterator:
    """A forked process pool. ``resubmit=False`` is a deliberately broken variant (the mutant of
    tests/core/test_sweep.py) that drops the chunks lost with a dead worker."""
    pending = _chunks(runs, workers, chunk)
    tries = {id(c): 0 for c in pending}
    ctx = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
    while pending:
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
            futs = {ex.submit(_run_chunk, c, cache): c for c in pending}
            pending = []
            while futs:
                done, _ = wait(list(futs), return_when=FIRST_COMPLETED)
                for f in done:
                    c = futs.pop(f)
                    try:
                        yield from f.result()
                    except BrokenProcessPool:
                        tries[id(c)] += 1
                        if not resubmit:
                            continue
                        if tries[id(c)] > POOL_RETRIES:
                            for run in c:
                                yield run.index, None, "a pool worker died running it, too often"
                        else:
                            pending.append(c)
                if pending and futs:
                    # the pool is broken: every chunk still in it is lost with it; resubmit all
                    for f, c in futs.items():
                        if f.done() and f.exception() is None:
                            yield from f.result()
                        elif resubmit:
                            pending.append(c)
                    futs = {}


def _dask(runs: list[Run], *, workers: int, chunk: int | None, address: str | None, cache: str | None, **_) -> Iterator:
    # the engine's package is imported only when asked for (it costs a second of start-up)
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - declared in pyproject
        raise ScenarioError("--engine", "dask needs the 'distributed' package") from None
    cluster = None
    try:
        if address:
            client = Client(address, timeout="10s")
        else:
            cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
    except OSError as e:
        raise ScenarioError("--scheduler", f"cannot reach the Dask scheduler ({e})") from None
    try:
        chunks = _chunks(runs, workers, chunk)
        futs = [client.submit(_run_chunk, c, cache, pure=False, retries=POOL_RETRIES) for c in chunks]
        for f in as_completed(futs):
            try:
                yield from f.result()
            except Exception as e:  # the task failed on every try (its runs are reported failed)
                for run in chunks[futs.index(f)]:
                    yield run.index, None, f"dask: {type(e).__name__}: {e}"
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ------------------------------------------------------------------------------------------ driver
@dataclass
class Progress:
    """A sweep's state as it goes: runs done (computed here), cached, failed, of total."""
    total: int
    cached: int = 0
    done: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> int:
        return self.cached + self.done + self.failed

    @property
    def eta_s(self) -> float | None:
        """Seconds left, from the mean wall time of the runs computed so far."""
        if self.done + self.failed == 0:
            return None
        per = (time.monotonic() - self.started) / (self.done + self.failed)
        return per * (self.total - self.finished)

    def line(self) -> str:
        eta = self.eta_s
        left = "?" if eta is None else f"{eta:.0f} s"
        return (f"sweep: {self.finished}/{self.total} runs ({self.done} done, {self.cached} cached, "
                f"{self.failed} failed), about {left} left")


@dataclass
class SweepResult:
    rows: list[dict]
    progress: Progress
    failures: dict[int, str]


def run_sweep(runs: list[Run], *, workers: int = 1, engine: str = "local", address: str | None = None,
              chunk: int | None = None, cache: str | Path | None = None,
              progress: Callable[[Progress], None] | None = None, base: dict | None = None,
              _engine_options: dict | None = None) -> SweepResult:
    """Run every point not yet in the cache, store each as it finishes, and give all rows in grid order."""
    if engine not in ENGINES:
        raise ScenarioError("--engine", f"unknown engine {engine!r}; allowed: {', '.join(ENGINES)}")
    if workers < 1:
        raise ScenarioError("--workers", f"must be at least 1, got {workers}")
    store = Store(cache) if cache is not None else None
    state = Progress(len(runs))
    results: dict[int, list[dict]] = {}
    todo = []
    for run in runs:
        got = store.get(run.run_id) if store else None
        if got is not None:
            results[run.index] = got
            state.cached += 1
        else:
            todo.append(run)
    if progress:
        progress(state)
    failures: dict[int, str] = {}
    if todo:
        if engine == "local" and workers > 1 and base is not None:
            warm(base, todo[0].runner)  # forked workers inherit the loaded kernels
        run_on = _dask if engine == "dask" else (_local if workers > 1 else _serial)
        by_index = {r.index: r for r in runs}
        for index, rows, error in run_on(todo, workers=workers, chunk=chunk, address=address,
                                        cache=str(store.folder.resolve()) if store else None,
                                        **(_engine_options or {})):
            if index in results or index in failures:
                continue  # a retried task whose first attempt had finished: counted once
            if rows is None:
                failures[index] = error or "failed"
                state.failed += 1
            else:
                if store:
                    store.put(by_index[index].run_id, rows)
                results[index] = rows
                state.done += 1
            if progress:
                progress(state)
    lost = [r.index for r in runs if r.index not in results and r.index not in failures]
    if lost:  # an engine that dropped work: never hand back a sweep with holes in it
        raise RuntimeError(f"sweep lost {len(lost)} run(s) (first: run {lost[0]}); the engine dropped them")
    rows = [row for i in sorted(results) for row in results[i]]
    return SweepResult(rows, state, failures)


def sweep(base: dict, grid: dict[str, Iterable], seeds: Iterable[int] = (0,), *, workers: int = 1,
          engine: str = "local", address: str | None = None, cache: str | Path | None = None,
          names: dict[str, str] | None = None, chunk: int | None = None,
          progress: Callable[[Progress], None] | None = None, runner: str = "run") -> list[dict]:
    """The rows of every point of the grid (for every seed), in grid order, whatever the engine."""
    res = run_sweep(expand(base, grid, seeds, names, runner), workers=workers, engine=engine, address=address,
                    chunk=chunk, cache=cache, progress=progress, base=base)
    if res.failures:
        i, msg = next(iter(sorted(res.failures.items())))
        raise RuntimeError(f"{len(res.failures)} sweep run(s) failed; run {i}: {msg}")
    return res.rows


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


def parse_name(spec: str) -> tuple[str, str]:
    """``domains[3].cap=batch_cap`` -> ("domains[3].cap", "batch_cap")."""
    path, sep, alias = spec.partition("=")
    if not sep or not re.match(r"^[A-Za-z0-9_.-]+$", alias.strip()):
        raise ScenarioError("--name", f"expected PATH=ALIAS (letters, digits, _ . -), got {spec!r}")
    return path.strip(), alias.strip()
