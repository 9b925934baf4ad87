"""The calibration package's surface: dispatch by name, the stored dict format, invariances
shared by every method, and the errors a client can cause."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from scipy.special import expit, softmax

from app.core.calibration import (
    METHODS,
    BetaCalibration,
    HistogramBinning,
    IsotonicCalibration,
    PlattScaling,
    TemperatureScaling,
    calibrator_from_dict,
    fit_calibrator,
)
from app.errors import InvalidInput

MULTICLASS_METHODS = ("temperature", "isotonic", "histogram")


def binary_batch(score_type: str, seed: int = 0, n: int = 300) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    z = np.round(rng.normal(size=n) * 2, 2)
    y = rng.random(n) < expit(0.7 * z + 0.2)
    w = rng.exponential(size=n) * (rng.random(n) > 0.2)
    return y, (z if score_type == "logit" else expit(z)), w


def multiclass_batch(score_type: str, seed: int = 0, n: int = 300, k: int = 4) -> Any:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 2
    y = np.argmax(z / 2 + rng.gumbel(size=(n, k)), axis=1)
    w = rng.exponential(size=n) * (rng.random(n) > 0.2)
    return y, (z if score_type == "logit" else softmax(z, axis=1)), w


CASES = [(m, "binary", st) for m in METHODS for st in ("probability", "logit")] + [
    (m, "multiclass", st) for m in MULTICLASS_METHODS for st in ("probability", "logit")
]


def batch(task: str, score_type: str, seed: int = 0) -> Any:
    return (binary_batch if task == "binary" else multiclass_batch)(score_type, seed)


@pytest.mark.parametrize(("method", "task", "score_type"), CASES)
def test_round_trip_through_json_gives_identical_outputs(
    method: str, task: str, score_type: str
) -> None:
    y, s, w = batch(task, score_type)
    cal = fit_calibrator(method, y, s, score_type=score_type, sample_weight=w)
    d = cal.to_dict()
    assert d["kind"] == method and d["task"] == task and d["score_type"] == score_type
    assert d["n_classes"] == (2 if task == "binary" else s.shape[1])
    stored = json.loads(json.dumps(d, allow_nan=False))
    back = calibrator_from_dict(stored)
    assert type(back) is type(cal)
    _, new, _ = batch(task, score_type, seed=1)
    np.testing.assert_array_equal(back.apply(new), cal.apply(new))


@pytest.mark.parametrize(("method", "task", "score_type"), CASES)
def test_outputs_are_probabilities_of_the_task_shape(
    method: str, task: str, score_type: str
) -> None:
    y, s, w = batch(task, score_type)
    out = fit_calibrator(method, y, s, score_type=score_type, sample_weight=w).apply(s)
    assert out.dtype == np.float64
    assert out.shape == (s.shape if task == "multiclass" else (len(y),))
    assert ((out >= 0) & (out <= 1)).all()
    if task == "multiclass":
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("method", "task", "score_type"), CASES)
def test_unit_weights_equal_no_weights_and_zero_weights_equal_dropped_rows(
    method: str, task: str, score_type: str
) -> None:
    y, s, w = batch(task, score_type)
    _, new, _ = batch(task, score_type, seed=2)
    plain = fit_calibrator(method, y, s, score_type=score_type)
    ones = fit_calibrator(method, y, s, score_type=score_type, sample_weight=np.ones(len(y)))
    np.testing.assert_allclose(ones.apply(new), plain.apply(new), rtol=0, atol=1e-9)
    keep = w > 0
    if method == "histogram":  # quantile edges come from the kept rows in both fits
        params: dict[str, Any] = {"strategy": "quantile", "n_bins": 7}
    else:
        params = {}
    weighted = fit_calibrator(method, y, s, score_type=score_type, sample_weight=w, **params)
    dropped = fit_calibrator(
        method, y[keep], s[keep], score_type=score_type, sample_weight=w[keep], **params
    )
    np.testing.assert_allclose(weighted.apply(new), dropped.apply(new), rtol=0, atol=1e-9)


@pytest.mark.parametrize(("method", "task", "score_type"), CASES)
def test_fits_do_not_depend_on_row_order(method: str, task: str, score_type: str) -> None:
    y, s, w = batch(task, score_type)
    perm = np.random.default_rng(5).permutation(len(y))
    _, new, _ = batch(task, score_type, seed=3)
    a = fit_calibrator(method, y, s, score_type=score_type, sample_weight=w)
    b = fit_calibrator(method, y[perm], s[perm], score_type=score_type, sample_weight=w[perm])
    np.testing.assert_allclose(a.apply(new), b.apply(new), rtol=0, atol=1e-9)


def test_methods_dispatch_to_their_classes() -> None:
    assert METHODS == ("temperature", "isotonic", "platt", "beta", "histogram")
    y, s, _ = binary_batch("logit")
    kinds = {
        "temperature": TemperatureScaling,
        "isotonic": IsotonicCalibration,
        "platt": PlattScaling,
        "beta": BetaCalibration,
        "histogram": HistogramBinning,
    }
    for method, cls in kinds.items():
        assert type(fit_calibrator(method, y, s, score_type="logit")) is cls
    cal = fit_calibrator("histogram", y, s, score_type="logit", n_bins=3, strategy="quantile")
    assert cal.columns[0].values.size == 3
    cal = fit_calibrator("platt", y, s, score_type="logit", smooth_targets=True)
    assert cal.smooth_targets
    assert fit_calibrator("temperature", y, s, score_type="logit", device="cpu").temperature > 0


def test_labels_may_be_bools_or_integer_valued_floats() -> None:
    y, s, _ = binary_batch("probability")
    a = fit_calibrator("platt", y, s, score_type="probability")
    b = fit_calibrator("platt", y.astype(float), s, score_type="probability")
    assert (a.a, a.b) == (b.a, b.b)
    ym, sm, _ = multiclass_batch("logit")
    t1 = fit_calibrator("temperature", ym, sm, score_type="logit")
    t2 = fit_calibrator("temperature", ym.astype(float), sm, score_type="logit")
    assert t1.temperature == t2.temperature


# -- errors -------------------------------------------------------------------------------------


def raises(field: str, fn: Any, *args: Any, **kwargs: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as err:
        fn(*args, **kwargs)
    assert err.value.field == field, str(err.value)
    return err.value


def test_unknown_methods_and_parameters_are_refused() -> None:
    y, s, _ = binary_batch("logit")
    raises("method", fit_calibrator, "dirichlet", y, s, score_type="logit")
    raises("n_bins", fit_calibrator, "isotonic", y, s, score_type="logit", n_bins=3)
    raises("device", fit_calibrator, "platt", y, s, score_type="logit", device="cpu")
    raises("score_type", fit_calibrator, "isotonic", y, s, score_type="decision")
    raises("smooth_targets", fit_calibrator, "platt", y, s, score_type="logit", smooth_targets=1)


@pytest.mark.parametrize("method", METHODS)
def test_a_batch_with_one_class_is_refused(method: str) -> None:
    raises("y_true", fit_calibrator, method, [1, 1, 1], [0.2, 0.5, 0.9], score_type="probability")
    raises(  # the other class has weight 0 only
        "y_true",
        fit_calibrator,
        method,
        [0, 1, 1],
        [0.2, 0.5, 0.9],
        score_type="probability",
        sample_weight=[0.0, 1.0, 1.0],
    )


def test_temperature_with_one_class_in_a_multiclass_batch_is_refused() -> None:
    p = softmax(np.random.default_rng(0).normal(size=(5, 3)), axis=1)
    err = raises("y_true", TemperatureScaling.fit, [2] * 5, p, score_type="probability")
    assert "single class" in err.detail


@pytest.mark.parametrize("method", METHODS)
def test_bad_scores_and_labels_are_refused_with_their_field(method: str) -> None:
    fit = fit_calibrator
    raises("y_score", fit, method, [0, 1, 1], [0.2, 1.5, 0.9], score_type="probability")
    raises("y_score", fit, method, [0, 1, 1], [0.2, -0.1, 0.9], score_type="probability")
    raises("y_score", fit, method, [0, 1, 1], [0.2, np.nan, 0.9], score_type="probability")
    raises("y_score", fit, method, [0, 1, 1], [0.2, np.inf, 0.9], score_type="logit")
    raises("y_score", fit, method, [0, 1, 1], [0.2, 1e13, 0.9], score_type="logit")
    raises("y_score", fit, method, [0, 1, 1], [0.2, 0.9], score_type="probability")
    raises("y_score", fit, method, [0, 1], [[0.2], [0.9]], score_type="logit")
    raises("y_true", fit, method, [0, 2, 1], [0.2, 0.5, 0.9], score_type="probability")
    raises("y_true", fit, method, [0, np.nan, 1], [0.2, 0.5, 0.9], score_type="probability")
    raises("y_true", fit, method, ["a", "b", "a"], [0.2, 0.5, 0.9], score_type="probability")
    raises("y_true", fit, method, [[0, 1]], [0.2, 0.5], score_type="probability")
    raises(
        "sample_weight",
        fit,
        method,
        [0, 1, 1],
        [0.2, 0.5, 0.9],
        score_type="probability",
        sample_weight=[1.0, -1.0, 1.0],
    )
    raises(
        "sample_weight",
        fit,
        method,
        [0, 1, 1],
        [0.2, 0.5, 0.9],
        score_type="probability",
        sample_weight=[1.0, 1.0],
    )


@pytest.mark.parametrize("method", MULTICLASS_METHODS)
def test_multiclass_inputs_are_checked(method: str) -> None:
    p = np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2], [0.1, 0.8, 0.1]])
    raises("y_true", fit_calibrator, method, [0, 3, 1], p, score_type="probability")
    raises("y_true", fit_calibrator, method, [0, 1.5, 1], p, score_type="probability")
    raises("y_true", fit_calibrator, method, [0, -1, 1], p, score_type="probability")
    off = p.copy()
    off[1, 0] = 0.7  # the row sums to 1.1
    raises("y_score", fit_calibrator, method, [0, 2, 1], off, score_type="probability")


@pytest.mark.parametrize("method", MULTICLASS_METHODS)
def test_applying_to_scores_of_another_shape_is_refused(method: str) -> None:
    y, s, _ = multiclass_batch("probability", k=4)
    cal = fit_calibrator(method, y, s, score_type="probability")
    raises("y_score", cal.apply, s[:, 0])  # binary scores
    raises("y_score", cal.apply, s[:, :3] / s[:, :3].sum(axis=1, keepdims=True))  # 3 columns
    raises("y_score", cal.apply, s * 2)  # outside [0, 1], rows off the simplex
    yb, sb, _ = binary_batch("probability")
    binary = fit_calibrator(method, yb, sb, score_type="probability")
    raises("y_score", binary.apply, np.column_stack([1 - sb, sb]))
    raises("y_score", binary.apply, [0.5, np.nan])
    raises("y_score", binary.apply, [])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(kind="dirichlet"),
        lambda d: d.update(version=99),
        lambda d: d.update(task="multilabel"),
        lambda d: d.update(n_classes=3),
        lambda d: d.update(score_type="value"),
        lambda d: d.update(temperature=-1.0),
        lambda d: d.update(temperature="hot"),
        lambda d: d.pop("temperature"),
    ],
)
def test_malformed_temperature_dicts_are_refused(mutate: Any) -> None:
    y, s, _ = binary_batch("logit")
    d = fit_calibrator("temperature", y, s, score_type="logit").to_dict()
    mutate(d)
    raises("calibrator", calibrator_from_dict, d)


@pytest.mark.parametrize(
    ("method", "mutate"),
    [
        ("isotonic", lambda d: d["columns"][0].update(x_thresholds=[0.5, 0.2])),
        ("isotonic", lambda d: d["columns"][0].update(y_thresholds=[0.1])),
        ("isotonic", lambda d: d.update(columns=[])),
        ("histogram", lambda d: d["columns"][0].update(values=[0.5, 2.0])),
        ("histogram", lambda d: d["columns"][0].update(edges=[0.0, 1.0])),
        ("platt", lambda d: d.update(a=float("nan"))),
        ("platt", lambda d: d.update(task="multiclass", n_classes=3)),
        ("beta", lambda d: d.update(a=-1.0)),
    ],
)
def test_malformed_stored_maps_are_refused(method: str, mutate: Any) -> None:
    y, s, _ = binary_batch("probability")
    kwargs = {"n_bins": 2} if method == "histogram" else {}
    d = fit_calibrator(method, y, s, score_type="probability", **kwargs).to_dict()
    mutate(d)
    raises("calibrator", calibrator_from_dict, d)
    raises("calibrator", calibrator_from_dict, [d])
