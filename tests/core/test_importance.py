"""Permutation importance equals scikit-learn's, draw for draw, with the engine's metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from sklearn.inspection import permutation_importance as sk_permutation_importance

from app.core.importance import (
    engine_scorer,
    permutation_importance,
    permutation_indices,
    resolve_groups,
    stacked_predict,
)
from app.errors import InvalidInput
from app.training.inspect import FirstLayerPermuted, TorchEstimator, as_estimator, outputs
from app.training.models import MLP


def _mlp(d: int, n_out: int, seed: int) -> MLP:
    torch.manual_seed(seed)
    return MLP(d, (16,), n_out, "tanh", 0.0).eval()


def _data(task: str, n: int = 150, d: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    if task == "binary":
        y = (X[:, 0] - X[:, 1] + 0.5 * rng.normal(size=n) > 0).astype(np.int64)
    elif task == "multiclass":
        y = np.digitize(X[:, 0] + 0.3 * rng.normal(size=n), [-0.5, 0.5]).astype(np.int64)
    else:
        y = (2 * X[:, 0] + X[:, 2] + 0.1 * rng.normal(size=n)).astype(np.float64)
    return X, y


CASES = [
    ("binary", "roc_auc", 1),
    ("binary", "log_loss", 1),
    ("binary", "accuracy", 1),
    ("binary", "brier", 1),
    ("multiclass", "accuracy", 3),
    ("multiclass", "log_loss", 3),
    ("multiclass", "roc_auc_ovr", 3),
    ("regression", "r2", 1),
    ("regression", "mean_absolute_error", 1),
]


@pytest.mark.parametrize(("task", "metric", "n_out"), CASES)
@pytest.mark.parametrize("seed", [0, 7])
def test_importances_equal_sklearn_permutation_importance_on_the_wrapped_network(
    task: str, metric: str, n_out: int, seed: int
) -> None:
    X, y = _data(task, seed=seed)
    model = _mlp(X.shape[1], n_out, seed)
    scorer, _ = engine_scorer(task, metric, None, y, n_out)

    def sk_scorer(estimator: Any, X_: np.ndarray, y_: np.ndarray) -> float:
        return scorer(estimator.decision_function(X_))  # the same scorer, called by sklearn

    ref = sk_permutation_importance(
        TorchEstimator(model, task), X, y, scoring=sk_scorer, n_repeats=4, random_state=seed
    )
    base = outputs(model, X, task)
    for predict in (
        FirstLayerPermuted(model, X, task),
        stacked_predict(lambda A: outputs(model, A, task), X),
    ):
        ours = permutation_importance(predict, X, scorer, base, n_repeats=4, seed=seed)
        np.testing.assert_allclose(ours.importances, ref.importances, rtol=0, atol=1e-6)
        np.testing.assert_allclose(ours.mean, ref.importances_mean, rtol=0, atol=1e-6)
        np.testing.assert_allclose(ours.std, ref.importances_std, rtol=0, atol=1e-6)


SKLEARN_SCORERS = [
    ("binary", "roc_auc", "roc_auc", 1),
    ("binary", "log_loss", "neg_log_loss", 1),
    ("binary", "accuracy", "accuracy", 1),
    ("binary", "brier", "neg_brier_score", 1),
    ("multiclass", "accuracy", "accuracy", 3),
    ("multiclass", "log_loss", "neg_log_loss", 3),
    ("multiclass", "roc_auc_ovr", "roc_auc_ovr", 3),
    ("regression", "r2", "r2", 1),
    ("regression", "mean_absolute_error", "neg_mean_absolute_error", 1),
]


@pytest.mark.parametrize(("task", "metric", "sk_name", "n_out"), SKLEARN_SCORERS)
@pytest.mark.parametrize("seed", [1, 4])
def test_importances_equal_sklearn_with_its_own_scorers(
    task: str, metric: str, sk_name: str, n_out: int, seed: int
) -> None:
    """The reference computes everything itself: its scorer by name, its metric functions."""
    X, y = _data(task, n=257, seed=seed)
    if task == "binary":
        X[::5] = X[1::5]  # duplicate rows: tied scores, across classes too
    model = _mlp(X.shape[1], n_out, seed)
    ref = sk_permutation_importance(
        as_estimator(model, task), X, y, scoring=sk_name, n_repeats=5, random_state=seed
    )
    scorer, _ = engine_scorer(task, metric, None, y, n_out)
    pp = FirstLayerPermuted(model, X, task)
    ours = permutation_importance(pp, X, scorer, outputs(model, X, task), n_repeats=5, seed=seed)
    np.testing.assert_allclose(ours.importances, ref.importances, rtol=0, atol=1e-6)


def test_the_network_predicts_in_blocks_of_rows_and_repeats_like_one_pass() -> None:
    """Two ReLU layers, dropout and a group of columns, with rows not a multiple of a block."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(1031, 6)).astype(np.float32)
    torch.manual_seed(3)
    model = MLP(6, (32, 16), 3, "relu", 0.2).eval()
    perms = permutation_indices(len(X), 7, seed=2)
    for columns in (np.array([4]), np.array([0, 5, 2])):
        values = X[:, columns][perms]
        fast = FirstLayerPermuted(model, X, "multiclass")(columns, values)
        slow = stacked_predict(lambda A: outputs(model, A, "multiclass"), X)(columns, values)
        assert fast.shape == slow.shape == (7, len(X), 3)
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-5)


def test_permutations_are_sklearns_cumulative_shuffles() -> None:
    seed_rs = np.random.RandomState(3)
    column_seed = seed_rs.randint(np.iinfo(np.int32).max + 1)
    rng = np.random.RandomState(column_seed)
    col = np.arange(9) * 10
    idx = np.arange(9)
    perms = permutation_indices(9, 3, seed=3)
    for r in range(3):
        rng.shuffle(idx)
        col = col[idx]
        np.testing.assert_array_equal(col, perms[r] * 10)


def test_a_group_is_permuted_with_one_row_order_and_ranks_first_when_it_carries_the_signal() -> (
    None
):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = X[:, 1] + X[:, 3]
    scorer, _ = engine_scorer("regression", "r2", None, y, 1)
    names, cols = resolve_groups(["a", "b", "c", "d"], {"bd": ["b", "d"]})
    assert names == ["bd", "a", "c"] and [c.tolist() for c in cols] == [[1, 3], [0], [2]]
    pp = stacked_predict(lambda A: A[:, 1] + A[:, 3], X)
    res = permutation_importance(pp, X, scorer, y, n_repeats=3, seed=0, columns=cols, names=names)
    ranked = res.ranked()
    assert ranked[0]["name"] == "bd" and ranked[0]["mean"] > 1.0
    assert ranked[1]["mean"] == ranked[2]["mean"] == 0.0
    # The group's copies: both columns moved by the same permutation.
    perm = permutation_indices(300, 1, seed=0)[0]
    Xp = X.copy()
    Xp[:, [1, 3]] = X[perm][:, [1, 3]]
    assert res.importances[0, 0] == pytest.approx(1.0 - scorer(Xp[:, 1] + Xp[:, 3]), abs=1e-12)


def test_repeats_are_chunked_without_changing_the_result() -> None:
    X, y = _data("binary")
    model = _mlp(X.shape[1], 1, 0)
    scorer, _ = engine_scorer("binary", "roc_auc", None, y, 1)
    pp = FirstLayerPermuted(model, X, "binary")
    base = outputs(model, X, "binary")
    whole = permutation_importance(pp, X, scorer, base, n_repeats=5, seed=1)
    chunked = permutation_importance(pp, X, scorer, base, n_repeats=5, seed=1, max_stacked_rows=200)
    np.testing.assert_array_equal(whole.importances, chunked.importances)


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ({"g": ["a", "zz"]}, "'zz' is not a feature"),
        ({"g": []}, "is empty"),
        ({"g": ["a"], "h": ["a", "b"]}, "already in group"),
        ({"b": ["a"]}, "also a feature"),
    ],
)
def test_bad_groups_are_invalid_input(groups: dict[str, list[str]], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        resolve_groups(["a", "b", "c"], groups)


def test_unknown_or_misapplied_metrics_are_invalid_input_on_the_metric_field() -> None:
    y = np.array([0, 1, 0, 1])
    for metric in ("nope", "r2"):
        with pytest.raises(InvalidInput) as err:
            engine_scorer("binary", metric, None, y, 1)
        assert err.value.field == "metric"
