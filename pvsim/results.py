"""Results: tidy rows with a time breakdown, event counts and provenance.

Each row: ``workload``, ``mode``, ``domain``, ``host``, ``metric`` (``us_per_op``, ``cycles_per_op``,
``ops_per_s``, ``trans_per_s``, ``iops``, ``mbit_per_s``), ``value``, ``relative_to_native`` (filled by comparisons), ``elapsed_ns``,
``units`` (units of work completed), ``breakdown_ns`` (cause -> ns, summing to ``elapsed_ns``),
``counts`` (event name -> int), plus provenance (``pvsim_version``, ``profile``, ``seed``,
``scenario``); rows of domains with devices add per-request figures (notifications, exits, grant
operations, ``dom0_ns_per_request``, ``dom0_breakdown_ns``) and ``latency_us`` percentiles where units
record latencies. ``host_rows`` give each host's utilisation and device totals.
``Results.to_json`` writes ``{"pvsim_version", "profile", "seed", "results": [...], "hosts": [...]}``
with sorted keys, so the same scenario and seed give byte-identical files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pvsim.core.errors import ScenarioError
from pvsim.core.version import __version__


def round_breakdown(bd: dict[str, float], total: int) -> dict[str, int]:
    """Integer ns per cause, summing exactly to ``total`` (largest-remainder rounding)."""
    items = sorted(bd.items())
    floors = {k: int(v) for k, v in items}
    rem = total - sum(floors.values())
    order = sorted(items, key=lambda kv: (-(kv[1] - int(kv[1])), kv[0]))
    for k, _ in order[: max(0, rem)]:
        floors[k] += 1
    return {k: v for k, v in floors.items() if v}


@dataclass
class Results:
    rows: list[dict]
    meta: dict = field(default_factory=dict)
    sched_rows: list[dict] = field(default_factory=list)
    host_rows: list[dict] = field(default_factory=list)
    migration_rows: list[dict] = field(default_factory=list)  # kind "migration" and "round" rows of a run
    failure_rows: list[dict] = field(default_factory=list)  # kind "failure" and "restart" rows of a run

    # ------------------------------------------------------------------ output
    def to_dict(self) -> dict:
        out = {"pvsim_version": self.meta.get("pvsim_version", __version__), "profile": self.meta.get("profile"),
               "seed": self.meta.get("seed"), "meta": self.meta, "results": self.rows}
        if self.host_rows:
            out["hosts"] = self.host_rows
        if self.migration_rows:
            out["migrations"] = self.migration_rows
        if self.failure_rows:
            out["failures"] = self.failure_rows
        return out

    def to_json(self, path: str | Path | None = None, outputs: "Outputs | None" = None) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True, indent=1, default=_json_default) + "\n"
        if path is not None:
            if outputs is not None:
                outputs.write(path, text)
            else:
                write_atomic(path, text)
        return text

    def frame(self):
        """A pandas DataFrame of the rows: ``breakdown_ns`` flattened to ``bd.<cause>`` columns,
        ``counts`` to ``n.<event>``, other tables to ``<name>.<key>``."""
        return pd.DataFrame([flatten(r) for r in self.rows])

    def to_csv(self, path: str | Path, outputs: "Outputs | None" = None) -> None:
        text = self.frame().to_csv(index=False)
        if outputs is not None:
            outputs.write(path, text)
        else:
            write_atomic(path, text)

    def to_parquet(self, path: str | Path, outputs: "Outputs | None" = None) -> None:
        """The CSV's columns in a Parquet file (pyarrow), the provenance in its key-value metadata."""
        import pyarrow as pa  # a third-party import kept out of every command's start-up
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(_typed(self.frame()), preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[b"pvsim"] = json.dumps(self.meta, sort_keys=True, default=_json_default).encode()
        table = table.replace_schema_metadata(meta)
        with Outputs() if outputs is None else _Borrowed(outputs) as outs:
            tmp = outs.path_for(path)
            pq.write_table(table, tmp)


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Columns that mix numbers and text (a swept value that is 128 in one run and "pv" in another)
    become text, so Parquet has one type per column."""
    for c in df.columns:
        if df[c].dtype == object:
            kinds = {type(v) for v in df[c] if v is not None and not (isinstance(v, float) and np.isnan(v))}
            if len(kinds) > 1:
                df[c] = df[c].map(lambda v: None if v is None else str(v))
    return df


class _Borrowed:
    """Use a caller's Outputs inside ``with`` without committing it."""

    def __init__(self, outs: "Outputs"):
        self.outs = outs

    def __enter__(self) -> "Outputs":
        return self.outs

    def __exit__(self, *exc) -> bool:
        return False


def load(path: str | Path) -> pd.DataFrame:
    """A results file written by any pvsim command (``.json``, ``.csv`` or ``.parquet``) as a pandas
    DataFrame with the CSV's flat columns (``bd.<cause>``, ``n.<event>``, ``param.<name>``)."""
    p = Path(path)
    if not p.is_file():
        raise ScenarioError("results", f"{str(path)!r} is not a file")
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(p)
    if suffix == ".csv":
        return pd.read_csv(p)
    if suffix == ".json":
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ScenarioError("results", f"{path}: not a pvsim JSON results file ({e})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
            raise ScenarioError("results", f"{path}: no 'results' list (not a pvsim results file)")
        return pd.DataFrame([flatten(r) for r in doc["results"]])
    raise ScenarioError("results", f"{path}: unknown kind {suffix or '(none)'}; give .json, .csv or .parquet")


def flatten(r: dict) -> dict:
    """One flat record of a row (nested tables become dotted columns)."""
    f = {}
    for k, v in r.items():
        if k == "breakdown_ns":
            f.update({f"bd.{c}": x for c, x in v.items()})
        elif k == "counts":
            f.update({f"n.{c}": x for c, x in v.items()})
        elif isinstance(v, dict):
            f.update({f"{k}.{c}": x for c, x in v.items()})
        elif isinstance(v, (list, tuple)):
            f[k] = ",".join(str(x) for x in v)
        else:
            f[k] = v
    return f


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    raise TypeError(type(o))


def write_atomic(path: str | Path, text: str | bytes) -> None:
    """Write via a temporary file in the same folder and rename: nothing half-written on error."""
    with Outputs() as out:
        out.write(path, text)


def check_output_path(path: str | Path, field: str = "output") -> Path:
    """An output file's path must name a file in an existing folder (refused otherwise)."""
    p = Path(path)
    if p.exists() and p.is_dir():
        raise ScenarioError(field, f"{str(path)!r} is a directory; give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise ScenarioError(field, f"directory {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise ScenarioError(field, f"{str(parent)!r} is not a directory")
    probe = parent / f".{p.name}.{os.getpid()}.probe"
    try:  # a folder that exists but takes no file (/proc, read-only) is refused before any work
        probe.open("x").close()
        probe.unlink()
    except OSError as e:
        raise ScenarioError(field, f"{str(path)!r} cannot be written ({e.strerror})") from None
    return p


class Outputs:
    """All-or-nothing output files. Each file is written to a temporary file in its own folder;
    :meth:`commit` (the end of a ``with`` block without error) moves them all into place, and on an
    error every temporary file is removed and no output is left behind."""

    def __init__(self):
        self.staged: list[tuple[Path, Path]] = []

    def __enter__(self) -> "Outputs":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False

    def path_for(self, path: str | Path) -> Path:
        """A temporary path to write ``path``'s content to (moved into place on commit)."""
        final = Path(path)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp{final.suffix}")
        self.staged.append((tmp, final))
        return tmp

    def write(self, path: str | Path, text: str | bytes) -> None:
        tmp = self.path_for(path)
        try:
            with open(tmp, "wb" if isinstance(text, bytes) else "w", encoding=None if isinstance(text, bytes)
                      else "utf-8") as f:
                f.write(text)
        except OSError as e:
            raise ScenarioError(str(path), f"cannot be written ({e.strerror})") from None

    def commit(self) -> None:
        try:
            for tmp, final in self.staged:
                tmp.replace(final)
        except OSError as e:
            self.abort()
            raise ScenarioError("output", f"cannot be written ({e.strerror})") from None
        self.staged = []

    def abort(self) -> None:
        for tmp, _final in self.staged:
            try:
                tmp.unlink()
            except OSError:
                pass
        self.staged = []
