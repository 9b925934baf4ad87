"""Training diagnostics of a run: the verdicts of ``GET /v1/runs/{id}/diagnostics``, and the
sanity-mode pieces the worker uses (the subset, the judgement, the record of a divergence).

The rules themselves are pure functions in :mod:`app.core.diagnostics`; this module reads the
run's metric series from the database and hands them over. It never commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from app.core.diagnostics import (
    LAYER_QUANTITIES,
    DiagnosticRules,
    RunSeries,
    constant_baseline,
    diagnose,
    judge_sanity,
)
from app.db import runs as repo
from app.db.models import Run
from app.errors import Conflict, NotFound
from app.services.run_data import Split, load_split
from app.training import NonFiniteLossError, TrainingSpec

#: Whole-run series the verdicts read, besides the per-layer ``<quantity>/<layer>`` ones.
RUN_SERIES: Final = ("train_loss", "val_loss", "ece")
#: An upper bound on the metric rows one diagnosis reads (about 30 per epoch).
MAX_ROWS: Final = 5_000_000
#: Per-layer quantities the diagnostics plot draws, besides the losses.
PLOTTED_LAYER_QUANTITIES: Final = ("grad_norm", "update_ratio", "dead_frac")

MetricTriple = tuple[str, int, float | None]


def _wanted(name: str) -> bool:
    return name in RUN_SERIES or name.split("/", 1)[0] in LAYER_QUANTITIES


def _load(session: Session, run_id: str) -> tuple[Run, RunSeries]:
    """The run and its recorded series (404 unknown, 409 queued)."""
    run = repo.get_run(session, run_id)
    if run is None:
        raise NotFound(f"no run with id {run_id!r}", field="run_id")
    if run.status == "queued":
        raise Conflict("the run is queued: no epoch has been recorded yet", field="run_id")
    names = [n for n in repo.metric_names(session, run_id) if _wanted(n)]
    rows = repo.list_metrics(session, run_id, names=names, limit=MAX_ROWS) if names else []
    return run, RunSeries.from_rows((m.name, m.step, m.value) for m in rows)


def run_diagnostics(session: Session, run_id: str, rules: DiagnosticRules) -> dict[str, Any]:
    """The verdicts on a run's recorded series, the series summary, and the stored sanity and
    divergence records.

    Raises
    ------
    NotFound
        No such run.
    Conflict
        The run is still queued: nothing has been recorded yet.
    """
    run, series = _load(session, run_id)
    summary = run.summary or {}
    failure = summary.get("failure")
    verdicts = diagnose(series, rules, failure=failure)
    return {
        "run_id": run.id,
        "status": run.status,
        "epochs": len(series.epochs),
        "layers": series.layers("grad_norm"),
        "rules": rules.to_dict(),
        "triggered": [v.name for v in verdicts if v.triggered],
        "verdicts": [v.to_dict() for v in verdicts],
        "failure": failure,
        "sanity_check": summary.get("sanity_check"),
        "series": series.summary(),
    }


def plot_source(session: Session, run_id: str, rules: DiagnosticRules) -> dict[str, Any]:
    """The plain data :mod:`app.diagnostics_plots` draws: the epochs, the plotted series (one
    value or None per epoch) and the verdicts under ``rules``.

    Raises
    ------
    NotFound, Conflict
        As :func:`run_diagnostics`.
    """
    run, series = _load(session, run_id)
    failure = (run.summary or {}).get("failure")
    per_layer = [f"{q}/{layer}" for q in PLOTTED_LAYER_QUANTITIES for layer in series.layers(q)]
    plotted = [n for n in ("train_loss", "val_loss") if n in series.values] + per_layer
    return {
        "run_id": run.id,
        "epochs": series.epochs.tolist(),
        "series": {
            n: [float(x) if np.isfinite(x) else None for x in series.get(n)] for n in plotted
        },
        "verdicts": [v.to_dict() for v in diagnose(series, rules, failure=failure)],
    }


# -- sanity mode (used by the worker) --------------------------------------------------------------
def conflicting_rows(X: NDArray[Any], y: NDArray[Any]) -> int:
    """Rows whose features equal another row's while their targets differ.

    >>> conflicting_rows(np.array([[1.0], [1.0], [2.0]]), np.array([0, 1, 1]))
    2
    """
    _, inverse = np.unique(X, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    y = np.asarray(y)
    n = 0
    for group in np.unique(inverse):
        members = y[inverse == group]
        if members.size > 1 and np.unique(members).size > 1:
            n += int(members.size)
    return n


def sanity_subset(split: Split, rows: int, seed: int) -> Split:
    """``rows`` training rows drawn without replacement (seeded; all of them when the training
    split is smaller), in their original order; the validation rows are kept."""
    n = len(split.y_train)
    take = np.sort(np.random.default_rng(seed).choice(n, size=min(rows, n), replace=False))
    return Split(split.X_train[take], split.y_train[take], split.X_val, split.y_val)


def sanity_result(
    spec: TrainingSpec,
    rows: Iterable[MetricTriple],
    subset: Split,
    failure: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The sanity verdict stored in ``summary.sanity_check``: pass/fail with its criterion and,
    on a fail, the likely causes drawn from the run's diagnostics."""
    series = RunSeries.from_rows(rows)
    verdicts = diagnose(series, failure=failure)
    ratios = [
        float(x)
        for layer in series.layers("update_ratio")
        for x in series.get(f"update_ratio/{layer}")
        if np.isfinite(x)
    ]
    baseline = None
    if spec.task == "regression":
        baseline = constant_baseline(spec.loss.name or "mse", subset.y_train, spec.loss.delta)
    result = judge_sanity(
        spec.task,
        [float(x) for x in series.get("train_loss")],
        verdicts=verdicts,
        update_ratios=ratios,
        baseline=baseline,
        conflicting_rows=conflicting_rows(subset.X_train, subset.y_train),
        failure=failure,
    )
    return {"rows": len(subset.y_train), "epochs": len(series.epochs), **result}


def sanity_from_db(
    session: Session,
    run_id: str,
    spec: TrainingSpec,
    subset: Split,
    failure: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`sanity_result` on the series the run has recorded (every epoch, a resumed run's
    earlier ones included)."""
    names = [n for n in repo.metric_names(session, run_id) if _wanted(n)]
    rows = repo.list_metrics(session, run_id, names=names, limit=MAX_ROWS) if names else []
    return sanity_result(spec, ((m.name, m.step, m.value) for m in rows), subset, failure)


def divergence_summary(session: Session, run_id: str, exc: NonFiniteLossError) -> dict[str, Any]:
    """The summary of a run stopped by a non-finite loss: where it diverged and, in sanity
    mode, the failed sanity verdict (the subset is drawn again, as the worker drew it)."""
    failure = exc.to_dict()
    summary: dict[str, Any] = {"has_weights": False, "failure": failure}
    run = repo.get_run(session, run_id, with_data=True)
    if run is not None and run.spec is not None:
        spec = TrainingSpec.from_dict(run.spec)
        if spec.sanity_check is not None:
            subset = sanity_subset(load_split(session, run), spec.sanity_check.rows, spec.seed)
            summary["sanity_check"] = sanity_from_db(session, run_id, spec, subset, failure)
    return summary
