"""The data of image runs (``model: {type: "cnn"}``), checked at creation like tabular data.

Images travel and are stored as rows of C·H·W values, so an image run reuses the tabular path
of :mod:`app.services.run_data` (splits, inline storage, loading in the worker) unchanged: this
module checks the image shapes, flattens inline images before handing them over, and records
the shape (``data.input_shape``, and ``model.input_shape`` in the stored spec). Every problem is
a 422 naming the field, raised before anything is stored:

- a cnn run needs images (inline N×C×H×W or N×H×W, or an image dataset); a tabular (mlp) run
  on images is refused, pointing at ``model.type``;
- images whose shape is not ``model.input_shape`` (when given), or validation images whose shape
  is not the training images'.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.api.schemas.runs import DataSpec, ValidationSpec
from app.db import runs as repo
from app.db.models import Run
from app.errors import InvalidInput, PayloadTooLarge
from app.services import image_datasets, run_data
from app.training import TrainingSpec
from app.training.images import as_image_rows
from app.training.spec import CNNSpec

Shape = tuple[int, int, int]


def is_image_spec(spec: TrainingSpec) -> bool:
    return isinstance(spec.model, CNNSpec)


def is_image_run(run: Run) -> bool:
    """A run trained on images (its stored spec's ``model.type`` is ``cnn``)."""
    return ((run.spec or {}).get("model") or {}).get("type") == "cnn"


def input_shape(run: Run) -> Shape:
    s = (run.spec or {}).get("model", {}).get("input_shape") or run.data["input_shape"]
    return (int(s[0]), int(s[1]), int(s[2]))


def _fmt(shape: Shape | tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


def _image_info(session: Session, dataset_id: str | None) -> tuple[str, Shape] | None:
    if dataset_id is None:
        return None
    ds = repo.get_dataset(session, dataset_id)
    return None if ds is None else image_datasets.image_shape(ds.columns)


def refuse_images(
    session: Session, data: DataSpec | None, validation: ValidationSpec | None
) -> None:
    """A tabular (mlp) run on images is a 422 pointing at ``model.type``."""
    if data is None:
        return
    for dataset_id in (data.dataset_id, validation.dataset_id if validation else None):
        info = _image_info(session, dataset_id)
        if info is not None:
            raise InvalidInput(
                f"dataset {dataset_id} holds images ({info[0]}: {_fmt(info[1])}); train them "
                'with model: {"type": "cnn", ...}',
                field="model.type",
            )
    if data.X is not None and _depth(data.X) > 2:
        raise InvalidInput(
            'holds images (N×H×W or N×C×H×W); train them with model: {"type": "cnn", ...}',
            field="model.type",
        )


def _depth(X: Any) -> int:
    """Nesting depth of a (possibly ragged) list, read along its first elements."""
    depth = 0
    while isinstance(X, list | tuple | np.ndarray) and len(X) > 0:
        X, depth = X[0], depth + 1
    return depth


def prepare(
    session: Session,
    task: str,
    data: DataSpec,
    validation: ValidationSpec,
    *,
    spec: TrainingSpec,
    max_rows: int,
) -> tuple[run_data.Prepared, Shape]:
    """Check an image run's data; what to store with the run, and the image shape."""
    assert isinstance(spec.model, CNNSpec)
    want = spec.model.input_shape
    if data.dataset_id is not None:
        if data.X is not None or data.y is not None:
            raise InvalidInput("give dataset_id or X and y, not both", field="data")
        ds = repo.get_dataset(session, data.dataset_id)
        if ds is None:
            raise InvalidInput(f"no dataset with id {data.dataset_id!r}", field="data.dataset_id")
        info = image_datasets.image_shape(ds.columns)
        if info is None:
            raise InvalidInput(
                f"dataset {ds.id} holds no images: a cnn trains on images (upload .npy / .npz, "
                "or Arrow with a tensor column)",
                field="data.dataset_id",
            )
        column, shape = info
        if data.features is not None and list(data.features) != [column]:
            raise InvalidInput(
                f"is {data.features}: a cnn takes the image column [{column!r}] only",
                field="data.features",
            )
        _check_shape(shape, want, "data.dataset_id")
        if validation.dataset_id is not None:
            vinfo = _image_info(session, validation.dataset_id)
            if vinfo is not None and vinfo != info:
                raise InvalidInput(
                    f"holds images {vinfo[0]!r} of {_fmt(vinfo[1])}; the training images are "
                    f"{column!r} of {_fmt(shape)}",
                    field="validation.dataset_id",
                )
        prepared = run_data.prepare(
            session,
            task,
            data.model_copy(update={"features": [column]}),
            validation,
            seed=spec.seed,
            n_classes=spec.n_classes,
            max_rows=max_rows,
        )
    else:
        if data.X is None or data.y is None:
            raise InvalidInput("needs X and y, or a dataset_id", field="data")
        rows, shape = _rows(data.X, "data.X", want, max_rows)
        update: dict[str, Any] = {}
        if validation.X is not None:
            vrows, vshape = _rows(validation.X, "validation.X", want, max_rows)
            if vshape != shape:
                raise InvalidInput(
                    f"images are {_fmt(vshape)}; data.X holds {_fmt(shape)}",
                    field="validation.X",
                )
            update["X"] = vrows
        # the tabular path checks targets, splits and stores the rows as they are
        prepared = run_data.prepare(
            session,
            task,
            data.model_copy(update={"X": rows}),
            validation.model_copy(update=update),
            seed=spec.seed,
            n_classes=spec.n_classes,
            max_rows=max_rows,
        )
    n_values = int(np.prod(shape))
    doc = {**prepared.doc, "n_features": n_values, "input_shape": list(shape)}
    return replace(prepared, doc=doc, n_features=n_values), shape


def _check_shape(shape: Shape, want: Shape | None, field: str) -> None:
    if want is not None and shape != want:
        raise InvalidInput(
            f"holds images of {_fmt(shape)}; model.input_shape is {_fmt(want)}", field=field
        )


def _rows(X: Any, field: str, want: Shape | None, max_rows: int) -> tuple[Any, Shape]:
    if np.ndim(X) == 2 and want is None:
        raise InvalidInput(
            f"holds rows of shape {np.shape(X)}: a cnn takes images (N×C×H×W or N×H×W), or "
            "flat rows with model.input_shape",
            field=field,
        )
    rows, shape = as_image_rows(X, field, shape=want)
    if rows.shape[0] > max_rows:
        raise PayloadTooLarge(f"has {rows.shape[0]} images; the limit is {max_rows}", field=field)
    return rows, shape


def with_input_shape(spec: TrainingSpec, shape: Shape | None) -> TrainingSpec:
    """The spec with ``model.input_shape`` filled in (a 422 if its pooling does not fit)."""
    if shape is None or not isinstance(spec.model, CNNSpec):
        return spec
    return replace(spec, model=replace(spec.model, input_shape=shape))


def features(run: Run, X: Any, field: str, max_rows: int) -> Any:
    """Rows for the run's model: image runs take images of the run's shape (or flat rows of
    C·H·W values), tabular runs feature rows."""
    if not is_image_run(run):
        return run_data.check_features(X, field, max_rows)
    rows, _ = as_image_rows(X, field, shape=input_shape(run))
    if rows.shape[0] > max_rows:
        raise PayloadTooLarge(f"has {rows.shape[0]} images; the limit is {max_rows}", field=field)
    return rows
