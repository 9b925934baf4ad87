"""Confusion-count metrics against scikit-learn (``zero_division=np.nan``) on random batches."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core import classification as clf
from app.core._checks import encode_labels
from app.errors import InvalidInput, UndefinedMetricError

SEEDS = range(40)
RATIO_METRICS = ("precision", "recall", "f1", "fbeta")
AVERAGES: tuple[str | None, ...] = (None, "macro", "micro", "weighted")


def sk(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call sklearn with its (expected) UndefinedMetric/UserWarnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def batch(seed: int, *, k_max: int = 7) -> tuple[np.ndarray, np.ndarray, int, np.ndarray | None]:
    """A random multiclass batch with the awkward cases the seeds rotate through.

    Heavy imbalance, classes absent from y_true or y_pred, weights with zeros, tiny n.
    """
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, k_max + 1))
    n = int(rng.choice([1, 2, 3, 5, 20, 200]))
    p = rng.dirichlet(np.full(k, 0.3 if seed % 3 == 0 else 2.0))
    y = rng.choice(k, size=n, p=p)
    y_pred = np.where(rng.random(n) < 0.6, y, rng.choice(k, size=n, p=p[::-1]))
    if seed % 4 == 1:  # a class nobody predicts
        y_pred[y_pred == k - 1] = 0
    weight = None
    if seed % 2:
        weight = rng.exponential(size=n)
        weight[rng.random(n) < 0.2] = 0.0
        if not weight.any():
            weight[0] = 1.0
    return y.astype(np.intp), y_pred.astype(np.intp), k, weight


def assert_matches(ours: Callable[[], Any], reference: Any) -> None:
    """Ours equals sklearn's value; a NaN scalar from sklearn must be an UndefinedMetricError."""
    if np.ndim(reference) == 0 and np.isnan(reference):
        with pytest.raises(UndefinedMetricError):
            ours()
        return
    np.testing.assert_allclose(ours(), reference, rtol=1e-9, atol=1e-12, equal_nan=True)


def sk_ratio(name: str, y: Any, y_pred: Any, **kw: Any) -> Any:
    fns = {
        "precision": skm.precision_score,
        "recall": skm.recall_score,
        "f1": skm.f1_score,
        "fbeta": skm.fbeta_score,
    }
    return sk(fns[name], y, y_pred, zero_division=np.nan, **kw)


def ours_ratio(name: str, counts: np.ndarray, **kw: Any) -> Any:
    fn = getattr(clf, name)
    return lambda: fn(counts, **kw)


# -- counts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_matrix_matches_sklearn_with_and_without_weights(seed: int) -> None:
    y, y_pred, k, w = batch(seed)
    cm = clf.confusion_matrix(y, y_pred, k, w)
    ref = skm.confusion_matrix(y, y_pred, labels=range(k), sample_weight=w)
    np.testing.assert_allclose(cm, ref, rtol=1e-12)
    assert cm.dtype == (np.int64 if w is None else np.float64)


def test_confusion_matrix_with_integer_weights_equals_repeated_rows() -> None:
    rng = np.random.default_rng(0)
    y, y_pred = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    reps = rng.integers(0, 4, 50)
    weighted = clf.confusion_matrix(y, y_pred, 4, reps.astype(np.float64))
    repeated = clf.confusion_matrix(np.repeat(y, reps), np.repeat(y_pred, reps), 4)
    np.testing.assert_array_equal(weighted, repeated)


@pytest.mark.parametrize("normalize", ["true", "pred", "all"])
def test_normalize_confusion_matches_sklearn_but_leaves_empty_rows_nan(normalize: str) -> None:
    y = np.array([0, 0, 1, 1, 1])
    y_pred = np.array([0, 1, 1, 1, 0])
    cm = clf.confusion_matrix(y, y_pred, 3)  # class 2: empty row and column
    ours = clf.normalize_confusion(cm, normalize)  # type: ignore[arg-type]
    ref = sk(skm.confusion_matrix, y, y_pred, labels=[0, 1, 2], normalize=normalize)
    empty = {"true": cm.sum(1, keepdims=True) == 0, "pred": cm.sum(0, keepdims=True) == 0}
    mask = np.broadcast_to(empty.get(normalize, np.zeros((1, 1), bool)), cm.shape)
    assert np.isnan(ours[mask]).all()
    np.testing.assert_allclose(ours[~mask], ref[~mask], rtol=1e-12)


def test_normalize_confusion_rejects_an_unknown_mode() -> None:
    with pytest.raises(InvalidInput) as err:
        clf.normalize_confusion(np.eye(2), "rows")  # type: ignore[arg-type]
    assert err.value.field == "normalize"


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("samplewise", [False, True])
def test_multilabel_confusion_matches_sklearn(seed: int, samplewise: bool) -> None:
    rng = np.random.default_rng(seed)
    n, n_labels = int(rng.integers(1, 30)), int(rng.integers(2, 6))  # 1 column: "binary"
    y_true = rng.integers(0, 2, (n, n_labels))
    y_pred = rng.integers(0, 2, (n, n_labels))
    w = rng.exponential(size=n) * (rng.random(n) > 0.2) if seed % 2 else None
    ours = clf.multilabel_confusion(y_true, y_pred, w, samplewise=samplewise)
    ref = skm.multilabel_confusion_matrix(y_true, y_pred, sample_weight=w, samplewise=samplewise)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)


def test_binary_confusion_from_counts_is_the_two_class_confusion_matrix() -> None:
    y = np.array([1, 1, 1, 0, 0, 1, 0])
    y_pred = np.array([1, 0, 1, 0, 1, 1, 0])
    tp, fp = int(((y == 1) & (y_pred == 1)).sum()), int(((y == 0) & (y_pred == 1)).sum())
    tn, fn = int(((y == 0) & (y_pred == 0)).sum()), int(((y == 1) & (y_pred == 0)).sum())
    cm = clf.binary_confusion_from_counts(tp, fp, tn, fn)
    np.testing.assert_array_equal(cm, clf.confusion_matrix(y, y_pred, 2))
    assert cm.dtype == np.int64
    stack = clf.binary_confusion_from_counts(np.array([1.0, 2]), 0.5, 3, np.array([0, 1]))
    assert stack.shape == (2, 2, 2) and stack.dtype == np.float64
    np.testing.assert_array_equal(stack[1], [[3, 0.5], [1, 2]])


# -- precision, recall, F-beta ------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", RATIO_METRICS)
def test_ratio_metrics_match_sklearn_for_every_average(seed: int, name: str) -> None:
    y, y_pred, k, w = batch(seed)
    cm = clf.confusion_matrix(y, y_pred, k, w)
    extra = {"beta": [0.5, 2.0][seed % 2]} if name == "fbeta" else {}
    for average in AVERAGES:
        ref = sk_ratio(name, y, y_pred, labels=range(k), average=average, sample_weight=w, **extra)
        assert_matches(ours_ratio(name, cm, average=average, **extra), ref)
    if k == 2:
        ref = sk_ratio(name, y, y_pred, average="binary", sample_weight=w, **extra)
        assert_matches(ours_ratio(name, cm, average="binary", **extra), ref)


def test_fbeta_with_beta_zero_is_precision_and_with_infinite_beta_is_recall() -> None:
    y, y_pred, k, w = batch(5)
    cm = clf.confusion_matrix(y, y_pred, k, w)
    assert clf.fbeta(cm, beta=0.0, average="macro") == clf.precision(cm, average="macro")
    assert clf.fbeta(cm, beta=np.inf, average="macro") == clf.recall(cm, average="macro")


def test_f1_scores_zero_for_a_class_whose_precision_alone_is_undefined() -> None:
    cm = clf.confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 0]), 2)
    assert np.isnan(clf.precision(cm, average=None)[1])
    assert clf.f1(cm) == 0.0 == sk(skm.f1_score, [0, 1, 1], [0, 0, 0], zero_division=np.nan)


def test_ratio_metrics_on_string_labels_match_sklearn_through_indices() -> None:
    rng = np.random.default_rng(3)
    names = np.array(["cat", "dog", "emu", "yak"])
    y_str = names[rng.integers(0, 4, 60)]
    pred_str = names[rng.integers(0, 3, 60)]  # "yak" is never predicted
    classes, y = encode_labels(y_str)
    _, y_pred = encode_labels(pred_str, labels=classes.tolist(), field="y_pred")
    cm = clf.confusion_matrix(y, y_pred, len(classes))
    for name in ("precision", "recall", "f1"):
        ref = sk_ratio(name, y_str, pred_str, labels=classes, average=None)
        np.testing.assert_allclose(getattr(clf, name)(cm, average=None), ref, equal_nan=True)


def test_integer_weights_give_the_same_scores_as_repeated_rows() -> None:
    rng = np.random.default_rng(11)
    y, y_pred = rng.integers(0, 5, 80), rng.integers(0, 5, 80)
    reps = rng.integers(0, 3, 80)
    weighted = clf.confusion_matrix(y, y_pred, 5, reps.astype(np.float64))
    repeated = clf.confusion_matrix(np.repeat(y, reps), np.repeat(y_pred, reps), 5)
    for name in ("precision", "recall", "f1", "specificity", "npv", "jaccard"):
        fn = getattr(clf, name)
        for average in ("macro", "micro", "weighted"):
            assert fn(weighted, average=average) == pytest.approx(fn(repeated, average=average))
    assert clf.matthews_corrcoef(weighted) == pytest.approx(clf.matthews_corrcoef(repeated))


# -- specificity, NPV, Jaccard --------------------------------------------------------------


def _one_vs_rest_reference(
    y: np.ndarray, y_pred: np.ndarray, k: int, w: np.ndarray | None, swap: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class specificity (recall of "not k") or NPV (precision of "not k"), and support."""
    fn = skm.recall_score if swap == "specificity" else skm.precision_score
    per_class = np.array(
        [
            sk(fn, y != c, y_pred != c, pos_label=True, sample_weight=w, zero_division=np.nan)
            for c in range(k)
        ]
    )
    mcm = skm.multilabel_confusion_matrix(y, y_pred, labels=range(k), sample_weight=w)
    return per_class, mcm


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ["specificity", "npv"])
def test_specificity_and_npv_match_sklearn_recall_and_precision_of_the_rest(
    seed: int, name: str
) -> None:
    y, y_pred, k, w = batch(seed)
    cm = clf.confusion_matrix(y, y_pred, k, w)
    fn = getattr(clf, name)
    per_class, mcm = _one_vs_rest_reference(y, y_pred, k, w, name)
    assert_matches(lambda: fn(cm, average=None), per_class)
    support = mcm[:, 1, 0] + mcm[:, 1, 1]
    keep = ~np.isnan(per_class)
    macro = np.mean(per_class[keep]) if keep.any() else np.nan
    assert_matches(lambda: fn(cm, average="macro"), macro)
    if keep.any():
        wts = support[keep] if support[keep].any() else None
        assert_matches(lambda: fn(cm, average="weighted"), np.average(per_class[keep], weights=wts))
    tn, fp, fn_ = mcm[:, 0, 0].sum(), mcm[:, 0, 1].sum(), mcm[:, 1, 0].sum()
    den = tn + (fp if name == "specificity" else fn_)
    assert_matches(lambda: fn(cm, average="micro"), tn / den if den else np.nan)
    if k == 2:  # binary: specificity = recall of class 0, NPV = precision of class 0
        assert_matches(lambda: fn(cm, average="binary"), per_class[1])


@pytest.mark.parametrize("seed", SEEDS)
def test_jaccard_matches_sklearn_on_the_classes_present(seed: int) -> None:
    y, y_pred, k, w = batch(seed)
    cm = clf.confusion_matrix(y, y_pred, k, w)
    mcm = skm.multilabel_confusion_matrix(y, y_pred, labels=range(k), sample_weight=w)
    present = np.flatnonzero(mcm[:, 1, 1] + mcm[:, 0, 1] + mcm[:, 1, 0] > 0)
    per_class = clf.jaccard(cm, average=None)
    assert np.isnan(np.delete(per_class, present)).all()
    ref = sk(skm.jaccard_score, y, y_pred, labels=present, average=None, sample_weight=w)
    np.testing.assert_allclose(per_class[present], ref, rtol=1e-9)
    for average in ("macro", "micro", "weighted"):
        ref = sk(skm.jaccard_score, y, y_pred, labels=present, average=average, sample_weight=w)
        assert clf.jaccard(cm, average=average) == pytest.approx(ref, rel=1e-9, abs=1e-12)


# -- multilabel -----------------------------------------------------------------------------


def multilabel_batch(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    n, n_labels = int(rng.choice([1, 3, 40])), int(rng.integers(2, 6))
    rate = rng.uniform(0.05, 0.6, n_labels)
    y_true = (rng.random((n, n_labels)) < rate).astype(np.int64)
    y_pred = np.where(rng.random((n, n_labels)) < 0.7, y_true, 1 - y_true)
    if seed % 3 == 0:
        y_pred[:, 0] = 0  # a label never predicted
    w = None
    if seed % 2:
        w = rng.exponential(size=n) * (rng.random(n) > 0.25)
        w[0] = max(w[0], 0.5)
    return y_true, y_pred, w


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("name", RATIO_METRICS)
def test_multilabel_ratio_metrics_match_sklearn_including_samples_average(
    seed: int, name: str
) -> None:
    y_true, y_pred, w = multilabel_batch(seed)
    stack = clf.multilabel_confusion(y_true, y_pred, w)
    extra = {"beta": 2.0} if name == "fbeta" else {}
    for average in AVERAGES:
        ref = sk_ratio(name, y_true, y_pred, average=average, sample_weight=w, **extra)
        assert_matches(ours_ratio(name, stack, average=average, **extra), ref)
    ref = sk_ratio(name, y_true, y_pred, average="samples", sample_weight=w, **extra)
    kw = {"average": "samples", "sample_weight": w, **extra}
    assert_matches(ours_ratio(name, stack, y_true=y_true, y_pred=y_pred, **kw), ref)
    samplewise = clf.multilabel_confusion(y_true, y_pred, w, samplewise=True)
    assert_matches(ours_ratio(name, samplewise, **kw), ref)


def test_samples_averaged_jaccard_skips_samples_with_no_true_or_predicted_label() -> None:
    y_true = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 1], [1, 1, 0]])
    y_pred = np.array([[1, 1, 0], [0, 0, 0], [0, 1, 1], [0, 1, 0]])
    w = np.array([1.0, 5.0, 2.0, 0.5])
    ours = clf.jaccard(
        np.empty((0, 2, 2)), average="samples", y_true=y_true, y_pred=y_pred, sample_weight=w
    )
    keep = [0, 2, 3]  # sample 1 has nothing: undefined, excluded
    ref = skm.jaccard_score(y_true[keep], y_pred[keep], average="samples", sample_weight=w[keep])
    assert ours == pytest.approx(ref, rel=1e-12)


def test_samples_average_is_refused_for_a_multiclass_confusion_matrix() -> None:
    with pytest.raises(InvalidInput) as err:
        clf.precision(np.eye(3), average="samples")
    assert err.value.field == "average"


@pytest.mark.parametrize("seed", range(15))
def test_multilabel_accuracy_is_the_exact_match_ratio_of_sklearn(seed: int) -> None:
    y_true, y_pred, w = multilabel_batch(seed)
    stack = clf.multilabel_confusion(y_true, y_pred, w)
    ours = clf.accuracy(stack, y_true=y_true, y_pred=y_pred, sample_weight=w)
    assert ours == pytest.approx(skm.accuracy_score(y_true, y_pred, sample_weight=w), rel=1e-12)
    hamming = skm.hamming_loss(y_true, y_pred, sample_weight=w)
    assert clf.hamming_loss(stack) == pytest.approx(hamming, rel=1e-9, abs=1e-15)


def test_multilabel_accuracy_without_the_label_matrices_is_refused() -> None:
    with pytest.raises(InvalidInput, match="exact match"):
        clf.accuracy(np.zeros((3, 2, 2)))


# -- whole-matrix metrics ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_accuracy_and_hamming_loss_match_sklearn(seed: int) -> None:
    y, y_pred, k, w = batch(seed)
    cm = clf.confusion_matrix(y, y_pred, k, w)
    assert clf.accuracy(cm) == pytest.approx(skm.accuracy_score(y, y_pred, sample_weight=w))
    ref = skm.hamming_loss(y, y_pred, sample_weight=w)
    assert clf.hamming_loss(cm) == pytest.approx(ref, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("adjusted", [False, True])
def test_balanced_accuracy_matches_sklearn(seed: int, adjusted: bool) -> None:
    y, y_pred, k, w = batch(seed)
    cm = clf.confusion_matrix(y, y_pred, k, w)
    ref = sk(skm.balanced_accuracy_score, y, y_pred, sample_weight=w, adjusted=adjusted)
    n_present = int((cm.sum(axis=1) > 0).sum())
    if adjusted and n_present == 1:
        with pytest.raises(UndefinedMetricError, match="single class"):
            clf.balanced_accuracy(cm, adjusted=True)
    else:
        assert clf.balanced_accuracy(cm, adjusted=adjusted) == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_matthews_corrcoef_matches_sklearn_where_defined(seed: int) -> None:
    y, y_pred, k, w = batch(seed)
    cm = clf.confusion_matrix(y, y_pred, k, w)
    ref = sk(skm.matthews_corrcoef, y, y_pred, sample_weight=w)
    single = (cm.sum(axis=1) > 0).sum() == 1 or (cm.sum(axis=0) > 0).sum() == 1
    if single:  # sklearn returns 0.0 for this 0/0
        assert ref == 0.0
        with pytest.raises(UndefinedMetricError, match="single class"):
            clf.matthews_corrcoef(cm)
    else:
        assert clf.matthews_corrcoef(cm) == pytest.approx(ref, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_kappa_matches_sklearn(seed: int, weights: str | None) -> None:
    y, y_pred, k, w = batch(seed)
    cm = clf.confusion_matrix(y, y_pred, k, w)
    ref = sk(skm.cohen_kappa_score, y, y_pred, labels=range(k), weights=weights, sample_weight=w)
    assert_matches(lambda: clf.cohen_kappa(cm, weights=weights), ref)  # type: ignore[arg-type]


def test_undefined_whole_matrix_metrics_say_why() -> None:
    one_class = clf.confusion_matrix(np.array([1, 1, 1]), np.array([1, 1, 1]), 3)
    with pytest.raises(UndefinedMetricError, match="y_true has a single class"):
        clf.matthews_corrcoef(one_class)
    with pytest.raises(UndefinedMetricError, match="expected disagreement is zero"):
        clf.cohen_kappa(one_class)
    empty = np.zeros((3, 3), dtype=np.int64)
    for fn in (clf.accuracy, clf.hamming_loss, clf.cohen_kappa):
        with pytest.raises(UndefinedMetricError, match="empty"):
            fn(empty)
    with pytest.raises(UndefinedMetricError, match="no class has a true sample"):
        clf.balanced_accuracy(empty)


# -- top-k ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(25))
def test_top_k_accuracy_matches_sklearn_including_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k_classes = int(rng.integers(3, 8))
    n = int(rng.integers(1, 60))
    y = rng.integers(0, k_classes, n)
    y[:k_classes] = np.arange(min(n, k_classes))
    # Few distinct values: many ties, which sklearn breaks by class index.
    score = rng.integers(0, 3, (n, k_classes)).astype(np.float64)
    w = rng.exponential(size=n) if seed % 2 else None
    for k in range(1, k_classes + 1):
        ref = sk(skm.top_k_accuracy_score, y, score, k=k, labels=range(k_classes), sample_weight=w)
        assert clf.top_k_accuracy(y, score, k, w) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("scores", ["probabilities", "logits"])
@pytest.mark.parametrize("k", [1, 2])
def test_top_k_accuracy_follows_sklearn_binary_rule(scores: str, k: int) -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 50)
    s = rng.random(50) if scores == "probabilities" else rng.normal(size=50)
    s[:3] = 0.5 if scores == "probabilities" else 0.0  # exactly on the threshold
    ref = sk(skm.top_k_accuracy_score, y, s, k=k, labels=[0, 1])
    assert clf.top_k_accuracy(y, s, k) == pytest.approx(ref)
    two_columns = np.column_stack([1 - s, s])
    assert clf.top_k_accuracy(y, two_columns, k) == pytest.approx(ref)


def test_top_k_accuracy_rejects_k_below_one() -> None:
    with pytest.raises(InvalidInput) as err:
        clf.top_k_accuracy(np.array([0, 1]), np.eye(2), 0)
    assert err.value.field == "k"


# -- undefined values and parameters --------------------------------------------------------------


def test_precision_without_positive_predictions_raises_with_the_reason() -> None:
    cm = clf.confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 0]), 2)
    with pytest.raises(UndefinedMetricError) as err:
        clf.precision(cm)
    assert "precision of class 1 is undefined" in err.value.reason
    assert "tp + fp = 0" in err.value.reason


def test_per_class_arrays_mark_the_excluded_classes_with_nan() -> None:
    cm = clf.confusion_matrix(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), 4)
    per_class = clf.recall(cm, average=None)
    assert np.isnan(per_class[2:]).all() and not np.isnan(per_class[:2]).any()
    assert clf.recall(cm, average="macro") == pytest.approx(np.mean(per_class[:2]))


def test_an_average_over_only_undefined_classes_raises() -> None:
    nothing_predicted = clf.multilabel_confusion(np.array([[1, 0], [0, 1]]), np.zeros((2, 2)))
    for average in ("macro", "weighted", "micro"):
        with pytest.raises(UndefinedMetricError, match="undefined"):
            clf.precision(nothing_predicted, average=average)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"average": "mean"}, "average"),
        ({"average": "binary", "pos_label": 5}, "pos_label"),
        ({"average": "macro", "beta": -1.0}, "beta"),
    ],
)
def test_bad_parameters_are_invalid_input_naming_the_field(
    kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        clf.fbeta(np.eye(3), **{"beta": 1.0, **kwargs})
    assert err.value.field == field


def test_per_class_report_matches_sklearn_precision_recall_fscore_support() -> None:
    y, y_pred, k, w = batch(9)
    report = clf.per_class_report(clf.confusion_matrix(y, y_pred, k, w))
    ref = sk(
        skm.precision_recall_fscore_support,
        y,
        y_pred,
        labels=range(k),
        sample_weight=w,
        zero_division=np.nan,
    )
    for ours, theirs in zip(
        (report["precision"], report["recall"], report["f1"], report["support"]), ref, strict=True
    ):
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, equal_nan=True)


@settings(max_examples=80, deadline=None)
@given(
    data=st.data(),
    k=st.integers(1, 4),
    n=st.integers(1, 8),
    weighted=st.booleans(),
)
def test_ratio_metrics_match_sklearn_on_adversarial_small_batches(
    data: st.DataObject, k: int, n: int, weighted: bool
) -> None:
    labels = st.lists(st.integers(0, k - 1), min_size=n, max_size=n)
    y, y_pred = np.array(data.draw(labels)), np.array(data.draw(labels))
    w = None
    if weighted:
        w = np.array(
            data.draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 3.0]), min_size=n, max_size=n))
        )
        if not w.any():
            w[0] = 1.0
    cm = clf.confusion_matrix(y, y_pred, k, w)
    for name in ("precision", "recall", "f1"):
        for average in AVERAGES:
            ref = sk_ratio(name, y, y_pred, labels=range(k), average=average, sample_weight=w)
            assert_matches(ours_ratio(name, cm, average=average), ref)
