"""Error analysis against straightforward reference implementations (full sorts), ties included."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.batch import make_batch
from app.core.error_analysis import _top_k, confusion_analysis, most_confident_errors
from app.errors import InvalidInput

# -- confusion analysis ------------------------------------------------------------------------


def reference_confusion_analysis(cm: np.ndarray, labels: list[Any], top: int) -> dict[str, Any]:
    """Python sorts over every class and cell."""
    k = cm.shape[0]
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    recalls = sorted((cm[a, a] / support[a], a) for a in range(k) if support[a] > 0)
    precisions = sorted((cm[b, b] / predicted[b], b) for b in range(k) if predicted[b] > 0)
    cells = sorted((-cm[a, b], a, b) for a in range(k) for b in range(k) if a != b and cm[a, b] > 0)
    return {
        "hard": [labels[a] for _, a in recalls[:top]],
        "recall": [r for r, _ in recalls[:top]],
        "attracting": [labels[b] for _, b in precisions[:top]],
        "precision": [p for p, _ in precisions[:top]],
        "pairs": [(labels[a], labels[b], -c, -c / support[a]) for c, a, b in cells[:top]],
    }


@pytest.mark.parametrize("seed", range(30))
def test_confusion_analysis_matches_the_reference_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 8))
    cm = rng.integers(0, 4, (k, k)).astype(float)  # small counts: many ties
    if seed % 3 == 0:
        cm[0] = 0  # a class without support
        cm[:, k - 1] = 0  # a class never predicted
    if seed % 4 == 1:
        cm *= rng.exponential()  # weighted counts
    labels = [f"c{i}" for i in range(k)]
    top = int(rng.integers(1, 6))
    out = confusion_analysis(cm, labels, top=top)
    ref = reference_confusion_analysis(cm, labels, top)
    assert [c["label"] for c in out["hard_classes"]] == ref["hard"]
    assert [c["recall"] for c in out["hard_classes"]] == pytest.approx(ref["recall"])
    assert [c["label"] for c in out["attracting_classes"]] == ref["attracting"]
    assert [c["precision"] for c in out["attracting_classes"]] == pytest.approx(ref["precision"])
    got = [(p["true"], p["predicted"], p["count"], p["fraction"]) for p in out["confused_pairs"]]
    assert [g[:2] for g in got] == [r[:2] for r in ref["pairs"]]
    assert [g[2:] for g in got] == [pytest.approx(r[2:]) for r in ref["pairs"]]
    for c in out["hard_classes"]:
        i = labels.index(c["label"])
        assert c["support"] == cm[i].sum()
        assert c["errors"] == pytest.approx(cm[i].sum() - cm[i, i])
    for c in out["attracting_classes"]:
        j = labels.index(c["label"])
        assert c["false_positives"] == pytest.approx(cm[:, j].sum() - cm[j, j])


def test_confused_pairs_ties_are_broken_by_true_then_predicted_class() -> None:
    cm = np.array([[0, 2, 2], [2, 0, 1], [2, 0, 0]])
    pairs = confusion_analysis(cm, ["a", "b", "c"], top=10)["confused_pairs"]
    assert [(p["true"], p["predicted"]) for p in pairs] == [
        ("a", "b"),
        ("a", "c"),
        ("b", "a"),
        ("c", "a"),
        ("b", "c"),
    ]
    assert pairs[0]["fraction"] == 0.5
    assert pairs[3]["fraction"] == 1.0  # all of class c goes to a


def test_a_perfect_matrix_has_no_confused_pairs() -> None:
    out = confusion_analysis(np.diag([3, 4]), ["x", "y"])
    assert out["confused_pairs"] == []
    assert [c["recall"] for c in out["hard_classes"]] == [1.0, 1.0]


@pytest.mark.parametrize(
    ("cm", "classes", "top", "field"),
    [
        (np.ones((2, 3)), ["a", "b"], 5, "cm"),
        (-np.ones((2, 2)), ["a", "b"], 5, "cm"),
        (np.full((2, 2), np.nan), ["a", "b"], 5, "cm"),
        (np.ones((2, 2)), ["a"], 5, "classes"),
        (np.ones((2, 2)), ["a", "b"], 0, "top"),
        (np.ones((2, 2)), ["a", "b"], True, "top"),
    ],
)
def test_confusion_analysis_validates(cm: Any, classes: list[str], top: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        confusion_analysis(cm, classes, top=top)
    assert exc.value.field == field


# -- most confident errors ----------------------------------------------------------------------


def reference_errors(
    true: np.ndarray, pred: np.ndarray, conf: np.ndarray, keep: np.ndarray, k: int
) -> list[tuple[int, float]]:
    """Full sort of every wrong row by (-confidence, row)."""
    rows = [i for i in range(true.shape[0]) if true[i] != pred[i] and keep[i]]
    return sorted(((i, float(conf[i])) for i in rows), key=lambda t: (-t[1], t[0]))[:k]


@pytest.mark.parametrize("seed", range(20))
def test_binary_most_confident_errors_match_the_full_sort(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.choice([5, 50, 2000]))
    y = rng.integers(0, 2, n)
    p = rng.integers(0, 11, n) / 10  # coarse probabilities: ties everywhere
    w = None
    if seed % 2:
        w = rng.exponential(size=n) * (rng.random(n) > 0.2)
        w[0] = 1.0
    threshold = [None, 0.3, 0.7][seed % 3]
    k = int(rng.integers(1, 30))
    batch = make_batch("binary", y, p, sample_weight=w)
    got = most_confident_errors(batch, k=k, threshold=threshold)
    t = 0.5 if threshold is None else threshold
    pred = (p >= t).astype(int)
    conf = np.where(pred == 1, p, 1 - p)
    keep = np.ones(n, bool) if w is None else w > 0
    ref = reference_errors(y, pred, conf, keep, k)
    assert [(e["row"], e["confidence"]) for e in got] == ref
    for e in got:
        assert e["id"] == e["row"]
        assert e["true"] == y[e["row"]] and e["predicted"] == pred[e["row"]]


@pytest.mark.parametrize("seed", range(20))
def test_multiclass_most_confident_errors_match_the_full_sort(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n, k_classes = int(rng.choice([4, 60, 3000])), int(rng.integers(2, 6))
    labels = ["ant", "bee", "cat", "dog", "eel"][:k_classes]
    y = rng.integers(0, k_classes, n)
    logits = rng.integers(0, 3, (n, k_classes)).astype(float)  # tied logits and confidences
    batch = make_batch("multiclass", np.array(labels)[y], logits, score_type="logit", labels=labels)
    ids = [f"row-{i}" for i in range(n)]
    k = int(rng.integers(1, 40))
    got = most_confident_errors(batch, ids=ids, k=k)
    pred = logits.argmax(axis=1)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    conf = (e / e.sum(axis=1, keepdims=True)).max(axis=1)
    ref = reference_errors(y, pred, conf, np.ones(n, bool), k)
    assert [e["row"] for e in got] == [r for r, _ in ref]
    assert [e["confidence"] for e in got] == pytest.approx([c for _, c in ref], rel=1e-12)
    for e in got:
        assert e["id"] == f"row-{e['row']}"
        assert e["true"] == labels[y[e["row"]]] and e["predicted"] == labels[pred[e["row"]]]


def test_logit_binary_confidence_is_the_sigmoid() -> None:
    batch = make_batch("binary", [0, 1], [2.0, -1.0], score_type="logit")
    got = most_confident_errors(batch)
    assert [e["row"] for e in got] == [0, 1]
    assert got[0]["confidence"] == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert got[1]["confidence"] == pytest.approx(1 - 1 / (1 + np.exp(1.0)))


def test_no_errors_gives_an_empty_list() -> None:
    assert most_confident_errors(make_batch("binary", [0, 1], [0.1, 0.9])) == []


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), min_size=1, max_size=40),
    k=st.integers(1, 45),
)
def test_top_k_equals_the_stable_full_sort(values: list[float], k: int) -> None:
    v = np.array(values)
    expected = sorted(range(len(values)), key=lambda i: (-values[i], i))[:k]
    assert _top_k(v, k).tolist() == expected


def test_ids_length_mismatch_is_refused() -> None:
    batch = make_batch("binary", [0, 1, 1], [0.9, 0.2, 0.6])
    with pytest.raises(InvalidInput) as exc:
        most_confident_errors(batch, ids=["a", "b"])
    assert exc.value.field == "ids"


@pytest.mark.parametrize(("kwargs", "field"), [({"k": 0}, "k"), ({"k": 2.5}, "k")])
def test_k_is_validated(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        most_confident_errors(make_batch("binary", [0, 1], [0.9, 0.2]), **kwargs)
    assert exc.value.field == field


def test_multilabel_and_regression_are_refused() -> None:
    for batch in (
        make_batch("multilabel", [[0, 1]], [[0.2, 0.3]]),
        make_batch("regression", [1.0], [2.0]),
    ):
        with pytest.raises(InvalidInput) as exc:
            most_confident_errors(batch)
        assert exc.value.field == "task"
