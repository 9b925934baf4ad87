"""Domain-based validation: a parent run fanned out over the workers as child runs.

``validation: {leave_one_domain_out: "<column>"}`` (or ``true`` with inline ``groups``) makes one
child run per domain, trained on the other domains and validated on it, and one child on a
random (stratified) split of all rows. ``validation: {time_split: {column, cutoff}}`` makes a
child trained on the past (``t < cutoff``) and validated on the future, and one on a random
split. Each child is a normal run (metrics history, evaluation, weights); its ``data.validation``
says which rows it holds out (``kind`` "domain", "time" or "fraction").

The parent is never trained: it is ``running`` from creation and is finished by whoever sees
its last child over — the worker that finished that child, a cancel request, or the reaper
(crash safety) — with one conditional UPDATE (:func:`app.db.run_families.finish_parent`), so
exactly one writes ``summary.domain_validation``: per-domain metrics (the headline metrics of
each child's validation evaluation, ECE included), their support-weighted mean, the worst
domain, and the random split's score beside them (:mod:`app.core.domains`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import wraps
from typing import Any, Final, ParamSpec

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray
from sqlalchemy.orm import Session, sessionmaker

from app.api.schemas.runs import RunCreate, ValidationSpec
from app.config import Settings, get_settings
from app.core import domains as core
from app.db import run_families as families
from app.db import runs as repo
from app.db.base import utcnow
from app.db.models import TERMINAL_STATUSES, Run
from app.db.session import get_sessionmaker, session_scope
from app.errors import Conflict, InvalidInput
from app.services import datasets, image_run_data, run_data

log = logging.getLogger(__name__)

#: Most domains one leave-one-domain-out run may fan out to (one child run each).
MAX_DOMAINS: Final = 64
#: Validation share of the random-split child of a leave-one-domain-out run.
RANDOM_SPLIT_FRACTION: Final = run_data.DEFAULT_VAL_FRACTION
_FIELD_LODO = "validation.leave_one_domain_out"
_FIELD_TIME = "validation.time_split"
#: ``data.validation.kind`` of a parent; its children's kinds are "domain", "time", "fraction".
PARENT_KINDS: Final = frozenset({"leave_one_domain_out", "time_split"})
CHILD_KINDS: Final = frozenset({"domain", "time"})


def requested(validation: ValidationSpec | None) -> bool:
    """Whether a run asks for domain-based validation (a parent run)."""
    return validation is not None and (
        validation.leave_one_domain_out not in (None, False) or validation.time_split is not None
    )


# -- creation --------------------------------------------------------------------------------------
def _refuse_combinations(body: RunCreate, v: ValidationSpec) -> str:
    lodo, time = v.leave_one_domain_out not in (None, False), v.time_split is not None
    if lodo and time:
        raise InvalidInput("give leave_one_domain_out or time_split, not both", field="validation")
    mode = "leave_one_domain_out" if lodo else "time_split"
    for name in ("fraction", "group_column", "dataset_id", "X", "y"):
        if getattr(v, name) is not None:
            raise InvalidInput(
                f"does not combine with {mode}: the domains (or the cutoff) decide the "
                "validation rows",
                field=f"validation.{name}",
            )
    assert body.data is not None
    inline = body.data.dataset_id is None
    if v.groups is not None and not (lodo and inline):
        raise InvalidInput(
            "are the domains of inline data with leave_one_domain_out: true",
            field="validation.groups",
        )
    if lodo and inline and v.leave_one_domain_out is not True:
        raise InvalidInput(
            "inline data: set it to true and give the domains as validation.groups "
            "(a column name applies to a dataset)",
            field=_FIELD_LODO,
        )
    if lodo and inline and v.groups is None:
        raise InvalidInput("needs validation.groups, one domain per row", field=_FIELD_LODO)
    if lodo and not inline and not isinstance(v.leave_one_domain_out, str):
        raise InvalidInput("must name a column of the dataset", field=_FIELD_LODO)
    if time and inline:
        raise InvalidInput("takes a dataset (data.dataset_id)", field=_FIELD_TIME)
    return mode


def _renamed(exc: InvalidInput, field: str) -> InvalidInput:
    return InvalidInput(exc.detail, field=field)


def _column_values(table: pa.Table, column: str, *, as_keys: bool = False) -> NDArray[Any]:
    """A column as domain keys (strings, as :func:`app.services.datasets.table_arrays` reads a
    group column), or as times: float64 for a numeric column, Python objects (ISO strings,
    dates, datetimes) otherwise."""
    col = table.column(column)
    if as_keys:
        return np.asarray(col.to_pylist(), dtype=str)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        return np.asarray(col.to_numpy(), dtype=np.float64)
    return np.asarray(col.to_pylist(), dtype=object)


def _single_class(task: str, y: NDArray[Any]) -> bool:
    return task != "regression" and np.unique(y).size < 2


def _npz(**arrays: NDArray[Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


@dataclass
class _Plan:
    """The child runs a parent will have: each one's ``data.validation``, inline data (None
    for a dataset run) and entry of the parent's summary."""

    parent_validation: dict[str, Any]
    children: list[tuple[dict[str, Any], bytes | None, dict[str, Any]]] = dataclass_field(
        default_factory=list
    )

    def add(
        self,
        vdoc: dict[str, Any],
        blob: bytes | None,
        role: str,
        domain: Any,
        n_train: int,
        n_val: int,
    ) -> None:
        vdoc["n_rows"] = n_val
        entry = {"role": role, "domain": domain, "n_train": n_train, "n_val": n_val}
        self.children.append((vdoc, blob, entry))


def _plan_domains(
    task: str,
    keys: NDArray[Any],
    y: NDArray[Any],
    X: NDArray[Any] | None,
    column: str | None,
    seed: int,
    field: str,
) -> _Plan:
    values = sorted(set(keys.tolist()))
    if len(values) < 2:
        raise InvalidInput(
            f"has a single domain ({values[0]!r}): leaving it out leaves nothing to train on",
            field=field,
        )
    if len(values) > MAX_DOMAINS:
        raise InvalidInput(
            f"has {len(values)} domains; at most {MAX_DOMAINS} (one run each)", field=field
        )
    plan = _Plan(
        {
            "kind": "leave_one_domain_out",
            "column": column,
            "domains": values,
            "seed": seed,
            "random_split_fraction": RANDOM_SPLIT_FRACTION,
        }
    )
    blob = None if X is None else _npz(X=X, y=y, groups=keys)
    for value in values:
        held = keys == value
        if _single_class(task, y[~held]):
            raise InvalidInput(
                f"holding out domain {value!r} leaves training with a single class "
                f"({y[~held][0]:g}): training needs at least two",
                field=field,
            )
        vdoc = {"kind": "domain", "column": column, "domain": value, "seed": seed}
        plan.add(vdoc, blob, "domain", value, int((~held).sum()), int(held.sum()))
    return plan


def _plan_time(
    task: str, times: NDArray[Any], y: NDArray[Any], column: str, cutoff: float | str, seed: int
) -> _Plan:
    past, future = core.time_masks(times, cutoff, field=_FIELD_TIME)
    n_past, n_future = int(past.sum()), int(future.sum())
    if n_past == 0 or n_future == 0:
        side = "training (column < cutoff)" if n_past == 0 else "validation (column >= cutoff)"
        raise InvalidInput(
            f"leaves the {side} side empty: {n_past} rows before {cutoff!r}, "
            f"{n_future} at or after it",
            field=f"{_FIELD_TIME}.cutoff",
        )
    if _single_class(task, y[past]):
        raise InvalidInput(
            f"the rows before {cutoff!r} hold a single class: training needs at least two",
            field=f"{_FIELD_TIME}.cutoff",
        )
    # the random split holds out as many rows as the future, for a like-for-like comparison
    fraction = float(min(max(n_future / (n_past + n_future), 0.05), 0.5))
    plan = _Plan(
        {
            "kind": "time_split",
            "column": column,
            "cutoff": cutoff,
            "comparison": "numeric" if isinstance(cutoff, float | int) else "instant (UTC)",
            "n_past": n_past,
            "n_future": n_future,
            "seed": seed,
            "random_split_fraction": fraction,
        }
    )
    vdoc = {"kind": "time", "column": column, "cutoff": cutoff, "seed": seed}
    plan.add(vdoc, None, "domain", "future", n_past, n_future)
    return plan


def _add_random_split(
    plan: _Plan, task: str, y: NDArray[Any], X: NDArray[Any] | None, seed: int
) -> None:
    fraction = plan.parent_validation["random_split_fraction"]
    train, val = run_data.split_indices(task, y, None, fraction, seed)
    if _single_class(task, y[train]):
        raise InvalidInput("a random split leaves training with a single class", field="data.y")
    vdoc = {"kind": "fraction", "fraction": fraction, "seed": seed}
    blob = None if X is None else _npz(X=X, y=y)  # no groups: a plain (stratified) split
    plan.add(vdoc, blob, "random_split", None, int(train.size), int(val.size))


def create_parent(
    session: Session, body: RunCreate, settings: Settings, api_key_id: str | None
) -> Run:
    """Check a domain-validation run and store it with its child runs (queued; the caller
    enqueues the children after commit, :func:`jobs`). Every problem is a 422 raised before
    anything is stored."""
    from app.services import runs as runs_service  # runs imports this module

    assert body.data is not None and body.validation is not None
    v = body.validation
    mode = _refuse_combinations(body, v)
    spec = runs_service.build_spec(body)
    if image_run_data.is_image_spec(spec):
        raise InvalidInput("applies to tabular runs (an mlp), not a cnn", field="validation")
    if spec.sanity_check is not None:
        raise InvalidInput(
            "sanity mode does not combine with domain validation", field="sanity_check"
        )
    image_run_data.refuse_images(session, body.data, None)
    seed = spec.seed if v.seed is None else v.seed
    inline = body.data.dataset_id is None
    if mode == "time_split":
        assert v.time_split is not None
        column: str | None = v.time_split.column
        field = f"{_FIELD_TIME}.column"
    else:
        column = None if inline else str(v.leave_one_domain_out)
        field = "validation.groups" if inline else _FIELD_LODO
    # The usual checks of the data; the domain (or time) column as a group column is left out
    # of the features and must exist, without nulls, with two values at least.
    base = ValidationSpec.model_validate(
        {"seed": seed} if inline else {"seed": seed, "group_column": column}
    )
    try:
        prepared = run_data.prepare(
            session,
            body.task,
            body.data,
            base,
            seed=seed,
            n_classes=spec.n_classes,
            max_rows=settings.max_rows,
        )
    except InvalidInput as exc:
        if exc.field == "validation.group_column":
            raise _renamed(exc, field) from None
        raise
    spec = runs_service.build_spec(body, prepared.n_classes)
    X: NDArray[Any] | None = None
    if inline:
        assert prepared.inline is not None and v.groups is not None
        with np.load(io.BytesIO(prepared.inline), allow_pickle=False) as npz:
            X, y = npz["X"], npz["y"]
        raw = np.asarray([str(g) for g in v.groups])
        if raw.shape[0] != X.shape[0]:
            raise InvalidInput(
                f"has {raw.shape[0]} values for {X.shape[0]} rows", field="validation.groups"
            )
    else:
        ds = repo.get_dataset(session, prepared.dataset_id or "", with_content=True)
        assert ds is not None and column is not None
        table = datasets.read_table(ds.content, ds.format)
        y = np.asarray(table.column(ds.target).to_numpy(), dtype=np.float64)
        raw = _column_values(table, column, as_keys=mode == "leave_one_domain_out")
    if mode == "leave_one_domain_out":
        plan = _plan_domains(body.task, raw, y, X, column, seed, field)
    else:
        assert v.time_split is not None and column is not None
        plan = _plan_time(body.task, raw, y, column, v.time_split.cutoff, seed)
    _add_random_split(plan, body.task, y, X, seed)

    runs_service.check_run_limit(session, api_key_id, settings)  # the lock is held until commit
    common: dict[str, Any] = {
        "tags": list(dict.fromkeys(body.tags)),
        "task": body.task,
        "api_key_id": api_key_id,
        "spec": spec.to_dict(),
        "queue": runs_service.queue_for(spec, settings),
        "dataset_id": prepared.dataset_id,
        "n_features": prepared.n_features,
    }
    parent = repo.create_run(
        session,
        name=body.name,
        status="running",
        started_at=utcnow(),
        data={**prepared.doc, "validation": plan.parent_validation},
        **common,
    )
    entries = []
    for vdoc, blob, entry in plan.children:
        label = "random split" if entry["role"] == "random_split" else str(entry["domain"])
        child = repo.create_run(
            session,
            name=f"{body.name or 'run'} [{label}]"[:200],
            status="queued",
            data={**prepared.doc, "validation": vdoc},
            inline_data=blob,
            total_epochs=spec.epochs,
            parent_id=parent.id,
            **common,
        )
        entries.append({**entry, "run_id": child.id})
    parent.summary = {
        "has_weights": False,
        "domain_validation": {
            "mode": mode,
            "column": column,
            "status": "running",
            "children": entries,
        },
    }
    session.flush()
    return parent


def jobs(session: Session, run: Run) -> list[tuple[str, str | None]]:
    """``(run id, queue)`` to hand to the workers once a created run is committed."""
    if run.external:
        return []
    if (run.data.get("validation") or {}).get("kind") in PARENT_KINDS:
        rows = repo.list_runs(session, parent_id=run.id, status="queued", limit=MAX_DOMAINS + 1)
        return [(r.id, r.queue) for r in reversed(rows[0])]
    return [(run.id, run.queue)]


# -- a child's rows --------------------------------------------------------------------------------
def load_split(session: Session, run: Run) -> run_data.Split:
    """The training and validation rows of a child run (``data.validation.kind`` "domain" or
    "time"), as checked when its parent was created."""
    doc = run.data
    vdoc = doc["validation"]
    if vdoc["kind"] in PARENT_KINDS:
        raise Conflict("a domain-validation run is not trained itself; its child runs are")
    if doc["source"] == "inline":
        assert run.inline_data is not None
        with np.load(io.BytesIO(run.inline_data), allow_pickle=False) as npz:
            X, y, keys = npz["X"], npz["y"], npz["groups"]
        val = keys == vdoc["domain"]
    else:
        ds = repo.get_dataset(session, doc["dataset_id"], with_content=True)
        if ds is None:
            raise InvalidInput(f"dataset {doc['dataset_id']} no longer exists", field="data")
        column = vdoc["column"]
        X, y, keys = datasets.table_arrays(
            ds.content, ds.format, features=doc["features"], target=ds.target, group=column
        )
        if vdoc["kind"] == "domain":
            assert keys is not None
            val = keys == vdoc["domain"]
        else:
            raw = _column_values(datasets.read_table(ds.content, ds.format), column)
            val = core.time_masks(raw, vdoc["cutoff"], field=_FIELD_TIME)[1]
    return run_data.Split(X[~val], y[~val], X[val], y[val])


# -- finishing the parent --------------------------------------------------------------------------
def _role(data: dict[str, Any]) -> str:
    return "random_split" if data["validation"]["kind"] == "fraction" else "domain"


def _label(data: dict[str, Any]) -> str:
    v = data["validation"]
    return "future" if v["kind"] == "time" else str(v.get("domain"))


def parent_result(
    task: str, mode: str, column: Any, rows: list[Any], cancel: bool
) -> tuple[str, str | None, dict[str, Any]]:
    """``(status, error, summary)`` of a parent from its children's rows
    (:func:`app.db.run_families.child_results`), all over."""
    names = core.TASK_METRICS[task]
    entries: list[dict[str, Any]] = []
    random_entry: dict[str, Any] | None = None
    failed: list[str] = []
    cancelled: list[str] = []
    for row in rows:
        summary = row.summary or {}
        metrics = {name: getattr(row, name) for name in names}
        entry = {
            "run_id": row.id,
            "status": row.status,
            "n_train": summary.get("n_train"),
            "n_val": summary.get("n_val", row.data["validation"].get("n_rows")),
            "metrics": metrics,
        }
        label = (
            "the random-split fit"
            if _role(row.data) == "random_split"
            else (
                f"the fit holding out domain {_label(row.data)!r}"
                if mode == "leave_one_domain_out"
                else "the past-to-future fit"
            )
        )
        if row.status == "failed":
            failed.append(f"{label} (run {row.id}) failed: {row.error}")
        elif row.status == "cancelled":
            cancelled.append(f"{label} (run {row.id}) was cancelled")
        if _role(row.data) == "random_split":
            random_entry = entry
        else:
            entries.append({"domain": _label(row.data), **entry})
    dv: dict[str, Any] = {
        "mode": mode,
        "column": column,
        "domains": entries,
        "random_split": random_entry,
    }
    if cancel:
        status, error = "cancelled", "cancelled on request; its child runs were cancelled"
    elif failed:
        status, error = "failed", "; ".join(failed)[:10_000]
    elif cancelled:
        status, error = "cancelled", "; ".join(cancelled)[:10_000]
    else:
        status, error = "succeeded", None
    dv["status"] = status
    if status == "succeeded":
        agg = core.aggregate_domains(task, entries, metrics=names)
        dv.update(agg)
        if random_entry is not None:
            gap, over = core.random_split_gap(random_entry["metrics"], agg["weighted_mean"])
            dv["random_split_minus_domain"] = gap
            dv["random_split_overestimates"] = over
    return status, error, {"has_weights": False, "domain_validation": dv}


def finalize(session: Session, parent_id: str) -> bool:
    """Finish ``parent_id`` if it is running and its children are all over; True if this
    call finished it (several may try: one conditional UPDATE decides, see
    :func:`app.db.run_families.finish_parent`)."""
    parent = families.fresh_run(session, parent_id)
    if parent is None or parent.status != "running":
        return False
    rows = families.child_results(session, parent_id)
    if not rows or any(r.status not in TERMINAL_STATUSES for r in rows):
        return False
    v = parent.data["validation"]
    status, error, summary = parent_result(
        parent.task, v["kind"], v.get("column"), rows, parent.cancel_requested
    )
    return families.finish_parent(
        session, parent_id, status=status, error=error, summary=summary, now=utcnow()
    )


def finalize_parent_of(factory: sessionmaker[Session], run_id: str) -> bool:
    """After a child run is over: finish its parent if it was the last. Never raises (the
    reaper finishes a parent this missed)."""
    try:
        with session_scope(factory=factory) as session:
            parent_id = families.parent_of(session, run_id)
            return parent_id is not None and finalize(session, parent_id)
    except Exception:
        log.warning("run %s: could not finish its parent; the reaper will", run_id, exc_info=True)
        return False


P = ParamSpec("P")


def finishes_parent(execute: Callable[P, str]) -> Callable[P, str]:
    """Decorate a worker's ``execute_run(run_id, ...)``: when it returns a final status, the
    run's parent (if any) is finished if this run was its last child."""

    @wraps(execute)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> str:
        outcome = execute(*args, **kwargs)
        if outcome in TERMINAL_STATUSES:
            settings = kwargs.get("settings") or get_settings()
            run_id = args[0] if args else kwargs["run_id"]
            assert isinstance(settings, Settings) and isinstance(run_id, str)
            finalize_parent_of(get_sessionmaker(settings, write=True), run_id)
        return outcome

    return wrapper


def finish_ready_parents(settings: Settings) -> list[tuple[str, str]]:
    """The reaper's pass: finish every running parent whose children are all over;
    ``(parent id, "finalized")`` for each this pass finished."""
    with session_scope(settings, write=False) as session:
        ready = families.ready_parents(session)
    done: list[tuple[str, str]] = []
    for parent_id in ready:
        with session_scope(settings) as session:
            if finalize(session, parent_id):
                done.append((parent_id, "finalized"))
                log.warning("run %s: its child runs were over; finished it", parent_id)
    return done


def is_parent(run: Run) -> bool:
    """Whether ``run`` is a domain-validation parent (trained by its children)."""
    return (run.data.get("validation") or {}).get("kind") in PARENT_KINDS


def plot_source(session: Session, run_id: str) -> dict[str, Any]:
    """The ``summary.domain_validation`` of a succeeded parent, with ``run_id`` and ``task``:
    what :mod:`app.domain_plots` draws.

    Raises
    ------
    NotFound
        No run ``run_id`` (404).
    InvalidInput
        The run is not a domain-validation parent (a child run or a plain run; 422).
    Conflict
        The parent has no per-domain aggregates: its child runs are still training, or one
        of them failed or was cancelled (409).
    """
    from app.services import runs as runs_service  # runs imports this module

    run = runs_service.get_run(session, run_id)
    if not is_parent(run):
        what = (
            f"a child run of domain-validation run {run.parent_id!r}"
            if run.parent_id
            else "not a domain-validation run"
        )
        raise InvalidInput(
            f"run {run_id!r} is {what}: the plot is of a run created with "
            "validation.leave_one_domain_out or validation.time_split",
            field="run_id",
        )
    dv = dict((run.summary or {}).get("domain_validation") or {})
    if "weighted_mean" not in dv:
        if run.status == "running":
            why = "its child runs have not all finished yet; retry when the run has succeeded"
        else:
            why = f"the run is {run.status}, so it has no per-domain summary to plot"
        raise Conflict(why, field="run_id")
    return {**dv, "run_id": run.id, "task": run.task}


def cancel_parent(session: Session, run: Run) -> bool:
    """Cancel a parent and its children; True when the parent is over now (its children were
    all queued or over), False when running children stop at their next batch boundary."""
    if run.status in ("succeeded", "failed"):
        raise Conflict(
            f"the run has already {run.status}; there is nothing to cancel", field="run_id"
        )
    if run.status == "cancelled":
        return True
    now = utcnow()
    repo.request_cancel(session, run.id)
    families.cancel_children(session, run.id, now=now)
    finalize(session, run.id)
    return repo.run_version(session, run.id)[0] != "running"  # type: ignore[index]
