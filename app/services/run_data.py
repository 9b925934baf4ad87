"""A run's data: checked when the run is created, loaded and split when a worker trains it.

Creation checks everything that can be known without training (shapes, finiteness, labels of
the task, dataset columns, that a split leaves rows on both sides), so a bad request is a 422
before anything is queued. The worker then rebuilds exactly the same arrays and split.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from app.api.schemas.runs import DataSpec, ValidationSpec
from app.core._checks import as_float_array
from app.db import runs as repo
from app.db.models import Dataset, Run
from app.errors import InvalidInput, PayloadTooLarge
from app.services import datasets
from app.training import group_split, stratified_split

DEFAULT_VAL_FRACTION = 0.2
_F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Prepared:
    """What the run row stores about its data."""

    doc: dict[str, Any]
    inline: bytes | None
    dataset_id: str | None
    val_dataset_id: str | None
    n_features: int
    n_classes: int | None


@dataclass(frozen=True)
class Split:
    X_train: NDArray[np.float32]
    y_train: NDArray[np.float64]
    X_val: NDArray[np.float32]
    y_val: NDArray[np.float64]


# -- checks ----------------------------------------------------------------------------------------
def check_features(X: Any, field: str, max_rows: int) -> NDArray[np.float32]:
    arr = as_float_array(X, field, ndim=2, dtype=np.float64)
    if arr.shape[0] > max_rows:
        raise PayloadTooLarge(f"has {arr.shape[0]} rows; the limit is {max_rows}", field=field)
    if arr.shape[1] == 0:
        raise InvalidInput("rows have no features", field=field)
    big = np.abs(arr) > _F32_MAX
    if big.any():
        i, j = np.argwhere(big)[0]
        raise InvalidInput(f"{field}[{i}][{j}] is {arr[i, j]!r}: beyond float32", field=field)
    return arr.astype(np.float32)


def check_targets(
    task: str, y: Any, n: int, field: str, n_classes: int | None
) -> NDArray[np.float64]:
    """Targets of the task: 0/1 (binary), class indices (multiclass) or finite values."""
    vals = np.asarray(as_float_array(y, field, ndim=1, dtype=np.float64), dtype=np.float64)
    if vals.shape[0] != n:
        raise InvalidInput(f"has {vals.shape[0]} values for {n} rows", field=field)
    if task == "regression":
        return vals
    if task == "binary":
        bad = (vals != 0) & (vals != 1)
        want = "0 or 1"
    else:
        bad = (vals != np.floor(vals)) | (vals < 0)
        if n_classes is not None:
            bad |= vals >= n_classes
        want = "class indices 0..K-1" + ("" if n_classes is None else f" with K={n_classes}")
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidInput(f"{field}[{i}] is {vals[i]!r}: labels must be {want}", field=field)
    return vals


def check_target_summary(task: str, ds: Dataset, field: str, n_classes: int | None) -> None:
    """The same checks as :func:`check_targets`, from a dataset's stored target summary."""
    s = ds.target_summary
    lo, hi = s["min"], s["max"]
    problem = None
    if task == "binary" and not (s["integral"] and lo >= 0 and hi <= 1):
        problem = "labels must be 0 or 1"
    elif task == "multiclass" and not (s["integral"] and lo >= 0):
        problem = "labels must be class indices 0..K-1"
    elif task == "multiclass" and n_classes is not None and hi >= n_classes:
        problem = f"labels reach {hi:g} but n_classes is {n_classes}"
    if problem:
        raise InvalidInput(
            f"target column {ds.target!r} of dataset {ds.id} ranges over [{lo}, {hi}]: {problem}",
            field=field,
        )


def _dataset(session: Session, dataset_id: str, field: str) -> Dataset:
    row = repo.get_dataset(session, dataset_id)
    if row is None:
        raise InvalidInput(f"no dataset with id {dataset_id!r}", field=field)
    return row


def _n_val(n: int, fraction: float) -> int:
    return int(min(max(np.floor(fraction * n + 0.5), 1), n - 1))


def split_indices(
    task: str, y: NDArray[Any], groups: NDArray[Any] | None, fraction: float, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Train/validation rows: by group, stratified by class, or at random (regression)."""
    if y.shape[0] < 2:
        raise InvalidInput(f"has {y.shape[0]} rows: a split needs at least 2", field="data")
    if groups is not None:
        try:
            return group_split(groups, val_fraction=fraction, seed=seed)
        except InvalidInput as exc:
            raise InvalidInput(exc.detail, field="validation.groups") from None
    if task != "regression":
        train, val = stratified_split(y, val_fraction=fraction, seed=seed)
        if val.size == 0:
            raise InvalidInput(
                "no class has two rows, so a stratified split leaves no validation rows",
                field="validation.fraction",
            )
        return train, val
    order = np.random.default_rng(seed).permutation(y.shape[0])
    k = _n_val(y.shape[0], fraction)
    return np.sort(order[k:]).astype(np.int64), np.sort(order[:k]).astype(np.int64)


def _classes(task: str, *ys: NDArray[Any]) -> int | None:
    if task != "multiclass":
        return None
    return max(2, int(max(float(y.max()) for y in ys)) + 1)


def _check_two_classes(task: str, y: NDArray[Any], field: str) -> None:
    if task != "regression" and np.unique(y).size < 2:
        raise InvalidInput("has a single class: training needs at least two", field=field)


# -- preparation at creation -----------------------------------------------------------------------
def prepare(
    session: Session,
    task: str,
    data: DataSpec,
    validation: ValidationSpec,
    *,
    seed: int,
    n_classes: int | None,
    max_rows: int,
) -> Prepared:
    """Check a run's data and validation choice; what to store with the run."""
    val = validation
    frac = val.fraction
    separate = val.dataset_id is not None or val.X is not None or val.y is not None
    if separate and (frac is not None or val.group_column or val.groups is not None):
        raise InvalidInput(
            "a separate validation set excludes fraction and groups", field="validation"
        )
    if (val.X is None) != (val.y is None):
        raise InvalidInput("X and y go together", field="validation")
    if val.dataset_id is not None and val.X is not None:
        raise InvalidInput("give dataset_id or X and y, not both", field="validation")
    split_seed = seed if val.seed is None else val.seed
    vdoc: dict[str, Any] = {"seed": split_seed}
    if data.dataset_id is not None:
        if data.X is not None or data.y is not None:
            raise InvalidInput("give dataset_id or X and y, not both", field="data")
        if val.groups is not None:
            raise InvalidInput("takes inline data; use group_column", field="validation.groups")
        return _prepare_dataset(
            session, task, data, val, vdoc, frac=frac, n_classes=n_classes, max_rows=max_rows
        )
    if data.X is None or data.y is None:
        raise InvalidInput("needs X and y, or a dataset_id", field="data")
    if val.group_column is not None:
        raise InvalidInput("takes a dataset; use groups", field="validation.group_column")
    if val.dataset_id is not None:
        raise InvalidInput("inline data takes inline X and y", field="validation.dataset_id")
    X = check_features(data.X, "data.X", max_rows)
    y = check_targets(task, data.y, X.shape[0], "data.y", n_classes)
    arrays: dict[str, NDArray[Any]] = {"X": X, "y": y}
    if val.X is not None:
        Xv = check_features(val.X, "validation.X", max_rows)
        if Xv.shape[1] != X.shape[1]:
            raise InvalidInput(
                f"rows have {Xv.shape[1]} features, data.X has {X.shape[1]}", field="validation.X"
            )
        yv = check_targets(task, val.y, Xv.shape[0], "validation.y", n_classes)
        arrays.update(X_val=Xv, y_val=yv)
        _check_two_classes(task, y, "data.y")
        vdoc.update(kind="inline", n_rows=int(Xv.shape[0]))
        n_val = Xv.shape[0]
    else:
        groups = None
        if val.groups is not None:
            groups = np.asarray([str(g) for g in val.groups])
            if groups.shape[0] != X.shape[0]:
                raise InvalidInput(
                    f"has {groups.shape[0]} values for {X.shape[0]} rows", field="validation.groups"
                )
            arrays["groups"] = groups
        fraction = DEFAULT_VAL_FRACTION if frac is None else frac
        train, val_idx = split_indices(task, y, groups, fraction, split_seed)
        _check_two_classes(task, y[train], "data.y")
        vdoc.update(kind="groups" if groups is not None else "fraction", fraction=fraction)
        n_val = int(val_idx.size)
    vdoc["n_rows"] = int(n_val)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    doc = {
        "source": "inline",
        "n_rows": int(X.shape[0]),
        "n_features": int(X.shape[1]),
        "validation": vdoc,
    }
    ys = [arrays["y"]] + ([arrays["y_val"]] if "y_val" in arrays else [])
    return Prepared(
        doc, buffer.getvalue(), None, None, int(X.shape[1]), n_classes or _classes(task, *ys)
    )


def _prepare_dataset(
    session: Session,
    task: str,
    data: DataSpec,
    val: ValidationSpec,
    vdoc: dict[str, Any],
    *,
    frac: float | None,
    n_classes: int | None,
    max_rows: int,
) -> Prepared:
    assert data.dataset_id is not None
    ds = _dataset(session, data.dataset_id, "data.dataset_id")
    group = val.group_column
    if group is not None:
        info = datasets.column(ds, group)
        if info is None or group == ds.target:
            raise InvalidInput(
                f"{group!r} is not a (non-target) column of dataset {ds.id}",
                field="validation.group_column",
            )
        if info["null_count"]:
            raise InvalidInput(
                f"column {group!r} has {info['null_count']} nulls", field="validation.group_column"
            )
        if (info["n_distinct"] or 0) < 2:
            raise InvalidInput(
                f"column {group!r} has a single group: cannot split it",
                field="validation.group_column",
            )
    features = datasets.feature_columns(
        ds, data.features, exclude=[group] if group else [], field="data.features"
    )
    check_target_summary(task, ds, "data.dataset_id", n_classes)
    if task != "regression" and ds.target_summary["n_distinct"] < 2:
        raise InvalidInput(f"dataset {ds.id} has a single class", field="data.dataset_id")
    his = [ds.target_summary["max"]]
    val_id = None
    if val.dataset_id is not None:
        vds = _dataset(session, val.dataset_id, "validation.dataset_id")
        for f in features:
            if datasets.column(vds, f) is None:
                raise InvalidInput(
                    f"has no column {f!r} of the training features", field="validation.dataset_id"
                )
        datasets.feature_columns(vds, features, exclude=[], field="validation.dataset_id")
        check_target_summary(task, vds, "validation.dataset_id", n_classes)
        his.append(vds.target_summary["max"])
        val_id = vds.id
        vdoc.update(kind="dataset", dataset_id=vds.id, n_rows=vds.n_rows)
    else:
        if ds.n_rows < 2:
            raise InvalidInput(f"dataset {ds.id} has {ds.n_rows} row", field="data.dataset_id")
        fraction = DEFAULT_VAL_FRACTION if frac is None else frac
        vdoc.update(kind="groups" if group else "fraction", fraction=fraction, group_column=group)
    if ds.n_rows > max_rows:
        raise PayloadTooLarge(f"dataset {ds.id} has {ds.n_rows} rows", field="data.dataset_id")
    doc = {
        "source": "dataset",
        "dataset_id": ds.id,
        "target": ds.target,
        "features": features,
        "n_rows": ds.n_rows,
        "n_features": len(features),
        "validation": vdoc,
    }
    k = n_classes
    if task == "multiclass" and k is None:
        k = max(2, int(max(his)) + 1)
    return Prepared(doc, None, ds.id, val_id, len(features), k)


# -- loading in the worker -------------------------------------------------------------------------
def load_split(session: Session, run: Run) -> Split:
    """The run's training and validation arrays, as checked at creation."""
    doc = run.data
    vdoc = doc["validation"]
    if vdoc["kind"] in ("domain", "time", "leave_one_domain_out", "time_split"):
        from app.services import domain_validation  # it builds on this module

        return domain_validation.load_split(session, run)
    if doc["source"] == "inline":
        assert run.inline_data is not None
        with np.load(io.BytesIO(run.inline_data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        X, y = arrays["X"], arrays["y"]
        groups = arrays.get("groups")
        if "X_val" in arrays:
            return Split(X, y, arrays["X_val"], arrays["y_val"])
    else:
        ds = repo.get_dataset(session, doc["dataset_id"], with_content=True)
        if ds is None:
            raise InvalidInput(f"dataset {doc['dataset_id']} no longer exists", field="data")
        group = vdoc.get("group_column")
        X, y, groups = datasets.table_arrays(
            ds.content, ds.format, features=doc["features"], target=ds.target, group=group
        )
        if vdoc["kind"] == "dataset":
            vds = repo.get_dataset(session, vdoc["dataset_id"], with_content=True)
            if vds is None:
                raise InvalidInput(f"dataset {vdoc['dataset_id']} no longer exists", field="data")
            Xv, yv, _ = datasets.table_arrays(
                vds.content, vds.format, features=doc["features"], target=vds.target
            )
            return Split(X, y, Xv, yv)
    train, val = split_indices(run.task, y, groups, vdoc["fraction"], vdoc["seed"])
    return Split(X[train], y[train], X[val], y[val])
