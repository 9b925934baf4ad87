"""Inspections of trained runs: the ``kind → handler`` registry, creation and reading.

An inspection kind is an :class:`InspectionKind`: ``check`` turns a request into the stored
``params`` at ``POST`` time (every 4xx happens there, before anything is queued), ``execute``
runs in a worker with the run's :class:`RunArtifacts` and returns the result (plain JSON), and
the kind's plot is drawn by :mod:`app.inspection_plots`. The tabular kinds live in
:mod:`app.services.inspection_kinds`; another module adds its kinds (Grad-CAM, image
robustness) with :func:`register_kind`.

Never commits and never enqueues: the route hands the id to the dispatcher after the request's
transaction has committed.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.db import inspections as repo
from app.db import runs as runs_repo
from app.db.models import Inspection, Run
from app.errors import Conflict, InvalidInput, NotFound
from app.services import datasets, run_data
from app.training import TrainingSpec, load_model, resolve_device


@dataclass
class RunArtifacts:
    """What a worker knows of a succeeded run: spec, weights, data (loaded when first used)."""

    session: Session
    run: Run
    spec: TrainingSpec
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def task(self) -> str:
        return self.run.task

    @cached_property
    def model(self) -> torch.nn.Module:
        full = runs_repo.get_run(self.session, self.run.id, with_state=True)
        assert full is not None and full.state_dict is not None and full.n_features is not None
        state = torch.load(io.BytesIO(full.state_dict), map_location="cpu", weights_only=True)
        return load_model(self.spec, full.n_features, state).to(self.device)

    @property
    def n_outputs(self) -> int:
        output = self.model.output  # the final Linear of an MLP or CNN (build_model)
        assert isinstance(output, torch.nn.Linear)
        return output.out_features

    @cached_property
    def split(self) -> run_data.Split:
        full = runs_repo.get_run(self.session, self.run.id, with_data=True)
        assert full is not None
        return run_data.load_split(self.session, full)

    @property
    def feature_names(self) -> list[str]:
        return feature_names(self.run)

    @cached_property
    def train_stats(self) -> dict[str, NDArray[np.float64]]:
        X = self.split.X_train.astype(np.float64)
        return {"mean": X.mean(axis=0), "std": X.std(axis=0)}

    def evaluation_data(self, dataset_id: str | None) -> tuple[NDArray[np.float32], NDArray[Any]]:
        """The validation split, or a dataset read with the run's features and target."""
        if dataset_id is None:
            return self.split.X_val, self.split.y_val
        ds = runs_repo.get_dataset(self.session, dataset_id, with_content=True)
        if ds is None:
            raise InvalidInput(f"dataset {dataset_id} no longer exists", field="dataset_id")
        X, y, _ = datasets.table_arrays(
            ds.content, ds.format, features=self.feature_names, target=ds.target
        )
        return X, y


@dataclass(frozen=True)
class InspectionKind:
    """A registered inspection.

    Attributes
    ----------
    name : str
        The ``kind`` stored with each inspection, and the plot's drawer name.
    request : type of BaseModel
        The request body.
    check : callable
        ``check(session, run, body) -> params``; raises 4xx errors.
    execute : callable
        ``execute(artifacts, params) -> result`` (JSON-able), in a worker.
    modalities : frozenset of str
        Run inputs it applies to (``"tabular"``; ``"image"`` for CNN runs).
    """

    name: str
    request: type[BaseModel]
    check: Callable[[Session, Run, Any], dict[str, Any]]
    execute: Callable[[RunArtifacts, Mapping[str, Any]], dict[str, Any]]
    modalities: frozenset[str] = frozenset({"tabular"})


KINDS: dict[str, InspectionKind] = {}


def register_kind(kind: InspectionKind) -> None:
    if kind.name in KINDS:
        raise ValueError(f"inspection kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind


def feature_names(run: Run) -> list[str]:
    """Dataset runs: the feature columns; inline runs: ``x0``, ``x1``, ..."""
    names = (run.data or {}).get("features")
    if names:
        return [str(n) for n in names]
    return [f"x{j}" for j in range(run.n_features or 0)]


def modality(run: Run) -> str:
    """``"tabular"`` for MLP runs; a run spec's ``model.type`` names others (``"cnn"``)."""
    model_type = ((run.spec or {}).get("model") or {}).get("type", "mlp")
    return "image" if model_type == "cnn" else "tabular"


def inspectable_run(session: Session, run_id: str) -> Run:
    """The run, if it succeeded with weights: 404 when unknown, 409 otherwise."""
    run = runs_repo.get_run(session, run_id)
    if run is None:
        raise NotFound(f"no run with id {run_id!r}", field="run_id")
    if run.status != "succeeded" or not (run.summary or {}).get("has_weights"):
        raise Conflict(
            f"the run is {run.status}: only a run that succeeded with trained weights can be "
            "inspected",
            field="run_id",
        )
    return run


def create(session: Session, run_id: str, kind_name: str, body: BaseModel) -> Inspection:
    """Check a request and store it as a queued inspection of ``run_id``."""
    kind = KINDS[kind_name]
    run = inspectable_run(session, run_id)
    if modality(run) not in kind.modalities:
        raise InvalidInput(
            f"{kind_name} applies to {', '.join(sorted(kind.modalities))} runs; this run is "
            f"{modality(run)}",
            field="run_id",
        )
    params = kind.check(session, run, body)
    return repo.create(session, run_id=run.id, kind=kind_name, params=params, queue=run.queue)


def get(session: Session, inspection_id: str) -> Inspection:
    row = repo.get(session, inspection_id)
    if row is None:
        raise NotFound(f"no inspection with id {inspection_id!r}", field="inspection_id")
    return row


def as_read(row: Inspection) -> dict[str, Any]:
    return {
        "id": row.id,
        "run_id": row.run_id,
        "kind": row.kind,
        "status": row.status,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "attempts": row.attempts,
        "params": row.params,
        "result": row.result,
        "error": row.error,
        "plot": f"/v1/inspections/{row.id}/plot" if row.status == "succeeded" else None,
    }


def plot_source(session: Session, inspection_id: str) -> tuple[str, dict[str, Any]]:
    """``(kind, result)`` of a succeeded inspection, for its plot (409 before it succeeded)."""
    row = get(session, inspection_id)
    if row.status != "succeeded" or row.result is None:
        raise Conflict(
            f"the inspection is {row.status}; its plot exists once it succeeded",
            field="inspection_id",
        )
    return row.kind, row.result


def artifacts(session: Session, run: Run) -> RunArtifacts:
    """The run's artifacts for a worker, on the run's device (``auto``: a GPU when present)."""
    assert run.spec is not None
    spec = TrainingSpec.from_dict(run.spec)
    try:
        device = resolve_device(spec.device)
    except InvalidInput:
        device = torch.device("cpu")  # trained on a GPU, inspected where there is none
    return RunArtifacts(session, run, spec, device)
