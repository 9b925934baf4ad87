"""The tabular inspections: permutation importance, attributions and robustness (jobs), and
the data checks (synchronous: a few sorts and counts, no model).

Importing this module registers the kinds ``importance``, ``attributions`` and ``robustness``
in :data:`app.services.inspections.KINDS` (robustness serves image runs too, with the image
families of :mod:`app.core.image_perturbations`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from app.api.schemas.inspections import (
    AttributionRequest,
    DataChecksRequest,
    ImportanceRequest,
    RobustnessRequest,
)
from app.core import data_checks, robustness
from app.core.importance import engine_scorer, permutation_importance, resolve_groups
from app.core.registry import REGISTRY, finite_or_none, resolve
from app.db import runs as runs_repo
from app.db.models import Dataset, Run
from app.errors import InvalidInput
from app.services import (  # image_inspections registers gradcam and the image families
    datasets,
    image_datasets,
    image_inspections,
    image_run_data,
    run_data,
)
from app.services.inspections import (
    InspectionKind,
    RunArtifacts,
    feature_names,
    inspectable_run,
    modality,
    register_kind,
)
from app.training.inspect import FirstLayerPermuted, attributions, outputs

#: The metric of importance and robustness when the request names none.
DEFAULT_METRIC: Final[dict[str, str]] = {
    "binary": "roc_auc",
    "multiclass": "accuracy",
    "regression": "r2",
}


def _metric(run: Run, name: str | None, params: Mapping[str, Any] | None) -> dict[str, Any]:
    metric = name or DEFAULT_METRIC[run.task]
    try:
        resolve(run.task, [(metric, dict(params or {}))])  # type: ignore[arg-type]
    except InvalidInput as exc:
        raise InvalidInput(exc.detail, field="metric") from None
    return {"metric": metric, "metric_params": dict(params or {})}


def _check_dataset(session: Session, run: Run, dataset_id: str | None) -> None:
    if dataset_id is None:
        return
    ds = runs_repo.get_dataset(session, dataset_id)
    if ds is None:
        raise InvalidInput(f"no dataset with id {dataset_id!r}", field="dataset_id")
    for f in feature_names(run):
        if datasets.column(ds, f) is None:
            raise InvalidInput(
                f"dataset {ds.id} has no column {f!r} (the run's features: inline runs have "
                "x0, x1, ...)",
                field="dataset_id",
            )
    datasets.feature_columns(ds, feature_names(run), exclude=[], field="dataset_id")
    run_data.check_target_summary(run.task, ds, "dataset_id", None)


# -- permutation importance --------------------------------------------------------------------
def check_importance(session: Session, run: Run, body: ImportanceRequest) -> dict[str, Any]:
    params = _metric(run, body.metric, body.metric_params)
    groups = {k: list(v) for k, v in (body.groups or {}).items()}
    resolve_groups(feature_names(run), groups)  # unknown names are a 422 now, not in the job
    _check_dataset(session, run, body.dataset_id)
    params.update(
        n_repeats=body.n_repeats, seed=body.seed, groups=groups, dataset_id=body.dataset_id
    )
    return params


def run_importance(art: RunArtifacts, p: Mapping[str, Any]) -> dict[str, Any]:
    X, y = art.evaluation_data(p.get("dataset_id"))
    model, task = art.model, art.task
    scorer, natural = engine_scorer(task, p["metric"], p["metric_params"], y, art.n_outputs)
    base = outputs(model, X, task)
    names, cols = resolve_groups(art.feature_names, p.get("groups"))
    res = permutation_importance(
        FirstLayerPermuted(model, X, task),  # type: ignore[arg-type]
        X,
        scorer,
        base,
        n_repeats=p["n_repeats"],
        seed=p["seed"],
        columns=cols,
        names=names,
    )
    return {
        "metric": p["metric"],
        "greater_is_better": REGISTRY[p["metric"]].greater_is_better,
        "baseline": natural(base),
        "n_rows": int(X.shape[0]),
        "n_repeats": p["n_repeats"],
        "seed": p["seed"],
        "data": "validation" if p.get("dataset_id") is None else f"dataset:{p['dataset_id']}",
        "features": res.ranked(),
    }


# -- attributions --------------------------------------------------------------------------------
def check_attributions(session: Session, run: Run, body: AttributionRequest) -> dict[str, Any]:
    d = run.n_features or 0
    X = run_data.check_features(body.X, "X", len(body.X))
    if X.shape[1] != d:
        raise InvalidInput(f"rows have {X.shape[1]} features; the run has {d}", field="X")
    if body.baseline is not None and len(body.baseline) != d:
        raise InvalidInput(f"has {len(body.baseline)} values; the run has {d}", field="baseline")
    if body.baseline is not None and not np.all(np.isfinite(body.baseline)):
        raise InvalidInput("must be finite", field="baseline")
    target = body.target
    if isinstance(target, list) and len(target) != X.shape[0]:
        raise InvalidInput(f"has {len(target)} values for {X.shape[0]} rows", field="target")
    if target is not None and run.task != "regression":
        k = 2 if run.task == "binary" else int((run.spec or {}).get("n_classes") or 2)
        values = target if isinstance(target, list) else [target]
        bad = [t for t in values if not 0 <= t < k]
        if bad:
            raise InvalidInput(f"{bad[0]} is not a class index in [0, {k})", field="target")
    return {
        "X": X.astype(np.float64).tolist(),
        "method": body.method,
        "steps": body.steps,
        "baseline": body.baseline,
        "target": target,
    }


def run_attributions(art: RunArtifacts, p: Mapping[str, Any]) -> dict[str, Any]:
    X = np.asarray(p["X"], dtype=np.float64)
    task = art.task
    baseline = p.get("baseline")
    base = art.train_stats["mean"] if baseline is None else np.asarray(baseline, dtype=np.float64)
    target = p.get("target")
    tgt: NDArray[np.int64] | None = None
    if task != "regression":
        if target is None:
            out = outputs(art.model, X, task)
            tgt = (out >= 0).astype(np.int64) if task == "binary" else out.argmax(axis=1)
        else:
            tgt = np.broadcast_to(np.asarray(target, dtype=np.int64), (X.shape[0],)).copy()
    res = attributions(
        art.model, X, task=task, method=p["method"], baseline=base, target=tgt, steps=p["steps"]
    )
    A = res["attributions"]
    mean_abs = np.abs(A).mean(axis=0)
    names = art.feature_names
    order = sorted(range(len(names)), key=lambda j: (-mean_abs[j], names[j]))
    ig = p["method"] == "integrated_gradients"
    result: dict[str, Any] = {
        "method": p["method"],
        "steps": p["steps"] if ig else None,  # as requested; refined rows: steps_used
        "baseline": base.tolist() if ig else None,
        "baseline_source": (
            None if not ig else "posted" if baseline is not None else "training_means"
        ),
        "explained": {
            "binary": "logit of the target class (class 1: the logit, class 0: its negation)",
            "multiclass": "logit of the target class",
            "regression": "the predicted value",
        }[task],
        "feature_names": names,
        "target": None if tgt is None else tgt.tolist(),
        "attributions": A.tolist(),
        "output": res["output"].tolist(),
        "features": [
            {"name": names[j], "rank": k + 1, "mean_abs": float(mean_abs[j])}
            for k, j in enumerate(order)
        ],
    }
    if ig:
        gap = res["completeness_gap"]
        delta = res["output"] - res["baseline_output"]
        rel = np.abs(gap) / np.maximum(np.abs(delta), 1e-12)
        result.update(
            baseline_output=res["baseline_output"].tolist(),
            completeness_gap=gap.tolist(),
            max_relative_completeness_gap=finite_or_none(float(rel.max())),
            # Per row: ``steps``, or 2×, 4×, ... where the row was integrated again.
            steps_used=[int(s) for s in res["steps_used"]],
        )
    return result


# -- robustness ----------------------------------------------------------------------------------
def check_robustness(session: Session, run: Run, body: RobustnessRequest) -> dict[str, Any]:
    params = _metric(run, body.metric, body.metric_params)
    levels = robustness.check_request(body.families, body.levels, modality(run))
    if modality(run) == "image" and body.dataset_id is not None:
        raise InvalidInput("image runs are perturbed on their validation split", field="dataset_id")
    _check_dataset(session, run, body.dataset_id)
    params.update(
        families=list(dict.fromkeys(body.families)),
        levels=levels,
        seed=body.seed,
        floor=body.floor,
        max_relative_drop=body.max_relative_drop,
        dataset_id=body.dataset_id,
    )
    return params


def run_robustness(art: RunArtifacts, p: Mapping[str, Any]) -> dict[str, Any]:
    X, y = art.evaluation_data(p.get("dataset_id"))
    if modality(art.run) == "image":  # the image families perturb (n, C, H, W) images
        X = X.reshape(len(X), *image_inspections.input_shape(art.run))
    task, model = art.task, art.model
    _, natural = engine_scorer(task, p["metric"], p["metric_params"], y, art.n_outputs)
    stats = {k: v.astype(np.float32) for k, v in art.train_stats.items()}
    res = robustness.evaluate(
        X,
        lambda A: outputs(model, A, task),
        natural,
        p["families"],
        p["levels"],
        stats,
        seed=p["seed"],
    )
    gib = REGISTRY[p["metric"]].greater_is_better
    for fam in res["families"].values():
        fam["breaking_point"] = robustness.breaking_point(
            fam["levels"],
            fam["values"],
            res["clean"],
            greater_is_better=gib,
            floor=p.get("floor"),
            max_relative_drop=p.get("max_relative_drop"),
        )
    res.update(
        metric=p["metric"],
        greater_is_better=gib,
        floor=p.get("floor"),
        max_relative_drop=p.get("max_relative_drop"),
        seed=p["seed"],
        n_rows=int(X.shape[0]),
    )
    return res


register_kind(InspectionKind("importance", ImportanceRequest, check_importance, run_importance))
register_kind(
    InspectionKind("attributions", AttributionRequest, check_attributions, run_attributions)
)
register_kind(
    InspectionKind(
        "robustness",
        RobustnessRequest,
        check_robustness,
        run_robustness,
        modalities=frozenset({"tabular", "image"}),  # image families: app.core.image_perturbations
    )
)


# -- data checks (synchronous) ---------------------------------------------------------------------
def run_data_checks(session: Session, run_id: str) -> dict[str, Any]:
    """Checks of a run's own training and validation split: those stored with the run when it
    started training, else computed now (a run still queued, or trained before they were
    stored). Any non-external run has its data; it need not have finished."""
    run = runs_repo.get_run(session, run_id)
    if run is None:
        inspectable_run(session, run_id)  # raises the 404
    assert run is not None
    if run.external:
        raise InvalidInput("an external run has no data stored here", field="run_id")
    stored = runs_repo.stored_data_checks(session, run_id)
    if stored is not None:
        return stored
    run = runs_repo.get_run(session, run_id, with_data=True)
    assert run is not None
    return split_data_checks(run, run_data.load_split(session, run))


def split_data_checks(run: Run, split: run_data.Split) -> dict[str, Any]:
    """The data checks of a run's split in JSON types (NaN as null), as stored with the run."""
    if modality(run) == "image":
        result = data_checks.compare_images(
            split.X_train,
            split.X_val,
            image_run_data.input_shape(run),
            y_train=split.y_train,
            y_val=split.y_val,
            task=run.task,
        )
    else:
        names = feature_names(run)
        result = data_checks.compare(
            names,
            [split.X_train[:, j] for j in range(len(names))],
            [split.X_val[:, j] for j in range(len(names))],
            y_train=split.y_train,
            y_val=split.y_val,
            task=run.task,
        )
    result.update(run_id=run.id, n_train=len(split.y_train), n_validation=len(split.y_val))
    loaded: dict[str, Any] = orjson.loads(
        orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    )
    return loaded


def _column(table: pa.Table, name: str, categorical: bool) -> NDArray[Any]:
    col = table.column(name)
    numeric = pa.types.is_integer(col.type) or pa.types.is_floating(col.type)
    numeric = numeric or pa.types.is_boolean(col.type)
    if numeric and not categorical:
        return np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
    return np.asarray(col.to_pylist(), dtype=object)


def _labels(
    a: Dataset, b: Dataset, ta: pa.Table, tb: pa.Table
) -> tuple[NDArray[Any] | None, NDArray[Any] | None, str | None]:
    """Both targets where both tables have them, and the classification task they suggest
    (integral with at most 100 values), else None."""
    if a.target not in ta.column_names or b.target not in tb.column_names:
        return None, None, None
    summary = a.target_summary
    task = None
    if summary.get("integral") and (summary.get("n_distinct") or 0) <= 100:
        task = "binary" if summary.get("n_distinct") == 2 else "multiclass"
    return _column(ta, a.target, False), _column(tb, b.target, False), task


def _compare_image_datasets(a: Dataset, b: Dataset, ta: pa.Table, tb: pa.Table) -> dict[str, Any]:
    """Image datasets: per-channel brightness and contrast drift, pixel-exact duplicates."""
    shape_a, shape_b = image_datasets.image_shape(a.columns), image_datasets.image_shape(b.columns)
    if shape_a is None or shape_b is None or shape_a[1] != shape_b[1]:
        found = [None if s is None else list(s[1]) for s in (shape_a, shape_b)]
        raise InvalidInput(
            f"compares image datasets of one shape; got {found[0]} and {found[1]}",
            field="validation_dataset_id",
        )
    (ia, shape), (ib, _) = shape_a, shape_b
    y_train, y_val, task = _labels(a, b, ta, tb)
    result = data_checks.compare_images(
        image_datasets.pixel_rows(ta.column(ia)),
        image_datasets.pixel_rows(tb.column(ib)),
        shape,
        y_train=y_train,
        y_val=y_val,
        task=task,
    )
    result.update(
        train_dataset_id=a.id,
        validation_dataset_id=b.id,
        n_train=ta.num_rows,
        n_validation=tb.num_rows,
    )
    return result


def compare_datasets(session: Session, body: DataChecksRequest) -> dict[str, Any]:
    """Checks of two uploaded datasets, the first as training set, the second as validation."""
    a = runs_repo.get_dataset(session, body.train_dataset_id, with_content=True)
    b = runs_repo.get_dataset(session, body.validation_dataset_id, with_content=True)
    for row, fieldname, given in (
        (a, "train_dataset_id", body.train_dataset_id),
        (b, "validation_dataset_id", body.validation_dataset_id),
    ):
        if row is None:
            raise InvalidInput(f"no dataset with id {given!r}", field=fieldname)
    assert a is not None and b is not None
    ta, tb = datasets.read_table(a.content, a.format), datasets.read_table(b.content, b.format)
    if image_datasets.has_images(ta) or image_datasets.has_images(tb):
        return _compare_image_datasets(a, b, ta, tb)
    shared = [n for n in ta.column_names if n in tb.column_names and n not in (a.target, b.target)]
    names = list(body.features) if body.features is not None else shared
    for n in names:
        if n not in shared:
            raise InvalidInput(f"{n!r} is not a feature column of both datasets", field="features")
    cat_requested = set(body.categorical or [])
    for n in cat_requested:
        if n not in names:
            raise InvalidInput(f"{n!r} is not one of the compared columns", field="categorical")
    if not names:
        raise InvalidInput("the datasets share no feature column", field="features")
    cats = []
    for n in names:
        t = ta.column(n).type
        is_num = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
        cats.append(n in cat_requested or not is_num)
    train = [_column(ta, n, c) for n, c in zip(names, cats, strict=True)]
    val = [_column(tb, n, c) for n, c in zip(names, cats, strict=True)]
    y_train, y_val, task = _labels(a, b, ta, tb)
    result = data_checks.compare(
        names, train, val, categorical=cats, y_train=y_train, y_val=y_val, task=task
    )
    result.update(
        train_dataset_id=a.id,
        validation_dataset_id=b.id,
        n_train=ta.num_rows,
        n_validation=tb.num_rows,
    )
    return result
