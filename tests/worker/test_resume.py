"""A worker that shuts down mid-run checkpoints it and leaves it queued; the next attempt
resumes from the checkpoint, keeps the stored metrics and ends with the weights of a run that
was never interrupted. Or, when it may not be resumed, the run fails saying where it stopped."""

from __future__ import annotations

import io
from collections.abc import Callable

import torch

from app.config import Settings
from app.db import runs as repo
from app.db.models import Run, RunMetric
from app.db.session import session_scope
from app.worker.tasks import execute_run


class StopAfter:
    """A shutdown flag that is raised at the ``n``-th look (the loop looks once per batch)."""

    def __init__(self, n: int) -> None:
        self.n, self.looks = n, 0

    def is_set(self) -> bool:
        self.looks += 1
        return self.looks > self.n


def _run(settings: Settings, run_id: str) -> Run:
    with session_scope(settings) as session:
        run = repo.get_run(session, run_id, with_state=True)
        assert run is not None
        return run


def _steps(settings: Settings, run_id: str) -> dict[str, list[int]]:
    with session_scope(settings) as session:
        rows: list[RunMetric] = repo.list_metrics(session, run_id, limit=100_000)
    steps: dict[str, list[int]] = {}
    for m in rows:
        steps.setdefault(m.name, []).append(m.step)
    return steps


def _weights(run: Run) -> dict[str, torch.Tensor]:
    assert run.state_dict is not None
    state: dict[str, torch.Tensor] = torch.load(io.BytesIO(run.state_dict), weights_only=True)
    return state


def test_a_run_interrupted_by_shutdown_resumes_from_its_checkpoint(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    fields = {"epochs": 6, "batch_size": 64, "model": {"hidden": [8], "dropout": 0.2}}
    reference = make_run(**fields)
    assert execute_run(reference, settings=settings) == "succeeded"

    run_id = make_run(**fields)
    # 160 training rows, 3 batches per epoch: the flag goes up in the 2nd batch of epoch 2
    assert execute_run(run_id, settings=settings, stop_event=StopAfter(2 * 3 + 1)) == "queued"
    run = _run(settings, run_id)
    assert (run.status, run.epoch, run.checkpoint_epoch, run.attempts) == ("queued", 2, 2, 1)
    assert run.worker is None and run.error is None
    kept = _steps(settings, run_id)
    assert kept["train_loss"] == [0, 1] and kept["roc_auc"] == [0, 1]
    with session_scope(settings) as session:
        blob, epoch = repo.get_checkpoint(session, run_id)
    assert blob and epoch == 2

    assert execute_run(run_id, settings=settings) == "succeeded"
    run = _run(settings, run_id)
    assert (run.status, run.epoch, run.attempts) == ("succeeded", 6, 2)
    assert run.summary is not None and run.summary["epochs_completed"] == 6
    with session_scope(settings) as session:
        assert repo.get_checkpoint(session, run_id) == (None, None)  # dropped once over
    steps = _steps(settings, run_id)
    assert steps["train_loss"] == steps["val_loss"] == list(range(6))  # each epoch once
    resumed, whole = _weights(run), _weights(_run(settings, reference))
    assert resumed.keys() == whole.keys()
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)
    assert _steps(settings, reference)["train_loss"] == list(range(6))


def test_an_interrupted_run_out_of_attempts_fails_saying_where_it_stopped(
    settings: Settings, make_run: Callable[..., str]
) -> None:
    one_try = settings.model_copy(update={"max_run_attempts": 1})
    run_id = make_run(epochs=6, batch_size=64)
    assert execute_run(run_id, settings=one_try, stop_event=StopAfter(3 * 3)) == "failed"
    run = _run(settings, run_id)
    assert run.status == "failed" and run.error is not None
    assert run.error.startswith("interrupted at epoch 3 of 6: the worker shut down")
    assert "attempt 1 of EVALSERVE_MAX_RUN_ATTEMPTS=1" in run.error
    assert run.checkpoint_epoch is None
    assert _steps(settings, run_id)["train_loss"] == [0, 1, 2]
