"""Validation of user files with pydantic, reported as pvsim's one-line errors.

Design note
-----------
Scenario, workload and profile files are validated by pydantic models (``extra="forbid"``: an
unknown key is an error, never ignored). :func:`validate` runs a model and turns the *first*
problem into a :class:`~pvsim.core.errors.ScenarioError` whose field is the dotted path of the value
(``domains[2].vcpus``) and whose message says what is allowed; an unknown key gets the nearest
valid name (``did you mean `vmexit_cycles`?``), found with :func:`difflib.get_close_matches`.
:func:`suggest` is the same suggestion for names checked outside a model (modes, workloads,
profile constants).
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

from pvsim.core.errors import ScenarioError


def suggest(name: str, allowed: Iterable[str]) -> str:
    """`` (did you mean `x`?)`` for the closest allowed name, or ``""``."""
    allowed = [str(a) for a in allowed]
    m = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
    return f" (did you mean `{m[0]}`?)" if m else ""


def unknown(where: str, name: str, allowed: Iterable[str], what: str = "key") -> ScenarioError:
    """The error for a name that is not one of ``allowed``: an unknown *key* is reported at its own
    path (``domains[0].colour``), an unknown *value* (a mode, a workload) at the field holding it."""
    allowed = sorted(str(a) for a in allowed)
    hint = suggest(name, allowed)
    listing = ", ".join(allowed) if len(allowed) <= 24 else ", ".join(allowed[:24]) + ", ..."
    if what == "key":
        return ScenarioError(f"{where}.{name}" if where else str(name), f"unknown key{hint}; allowed: {listing}")
    return ScenarioError(where, f"unknown {what} {name!r}{hint}; allowed: {listing}")


def join_path(prefix: str, loc: Iterable[Any]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


def _model_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names of the (nested) model that ``loc`` points into, for suggestions."""
    cur: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(cur, "model_fields", None)
        if fields is None or part not in fields:
            break
        ann = fields[part].annotation
        nxt = _inner_model(ann)
        if nxt is None:
            break
        cur = nxt
    fields = getattr(cur, "model_fields", None)
    return sorted(fields) if fields else []


def _inner_model(ann):
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for a in getattr(ann, "__args__", ()) or ():
        m = _inner_model(a)
        if m is not None:
            return m
    return None


def validate(model: type[BaseModel], data: Any, where: str = ""):
    """``model.model_validate(data)``, with the first error as a one-line :class:`ScenarioError`."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise from_validation_error(e, model, where) from None


def from_validation_error(e: ValidationError, model: type[BaseModel], where: str = "") -> ScenarioError:
    err = e.errors()[0]
    loc = tuple(err.get("loc", ()))
    typ = err.get("type", "")
    if typ == "extra_forbidden" and loc:
        name = loc[-1]
        allowed = _model_fields(model, loc[:-1])
        return unknown(join_path(where, loc[:-1]) or "scenario", str(name), allowed)
    path = join_path(where, loc) or where or "scenario"
    msg = err.get("msg", "invalid")
    inp = err.get("input")
    if typ == "missing":
        return ScenarioError(path, "required")
    if isinstance(err.get("ctx"), dict) and "error" in err["ctx"]:
        msg = str(err["ctx"]["error"])
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if typ not in ("value_error", "assertion_error") and inp is not None and not isinstance(inp, (dict, list)):
        msg = f"{msg}, got {inp!r}"
    return ScenarioError(path, msg)
