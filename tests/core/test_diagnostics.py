"""Training-diagnostics verdicts on constructed series: each rule fires on the pattern it names,
stays quiet on a healthy run, and reports its evidence; the sanity-mode judgement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from app.core.diagnostics import (
    DiagnosticRules,
    RunSeries,
    Verdict,
    calibration_drift,
    constant_baseline,
    dead_units,
    diagnose,
    exploding_gradients,
    frozen_parameters,
    judge_sanity,
    overfitting,
    vanishing_gradients,
)
from app.errors import InvalidInput

RULES = DiagnosticRules()
E = 10  # epochs of the constructed runs


def healthy(**replace: Sequence[float | None]) -> RunSeries:
    """A run that learns well: losses fall together, gradients of similar size in every layer,
    weights moving, few dead units, ECE steady."""
    t = np.arange(E, dtype=float)
    cols: dict[str, Any] = {
        "train_loss": list(0.7 * np.exp(-t / 4) + 0.1),
        "val_loss": list(0.7 * np.exp(-t / 4) + 0.15),
        "ece": list(0.05 - 0.002 * t),
    }
    for i, layer in enumerate(["hidden0", "hidden1", "output"]):
        cols[f"grad_norm/{layer}"] = list((0.5 + 0.2 * i) * np.exp(-t / 8))
        cols[f"grad_norm_max/{layer}"] = list((1.0 + 0.2 * i) * np.exp(-t / 8))
        cols[f"grad_mean/{layer}"] = [1e-4] * E
        cols[f"grad_zero_frac/{layer}"] = [0.0] * E
        cols[f"update_ratio/{layer}"] = list(0.05 * np.exp(-t / 5))
        if layer != "output":
            cols[f"dead_frac/{layer}"] = [0.05] * E
    cols.update(replace)
    return RunSeries.from_mapping(cols)


def test_a_healthy_run_triggers_no_verdict() -> None:
    verdicts = diagnose(healthy())
    assert [v.name for v in verdicts] == [
        "vanishing_gradients",
        "exploding_gradients",
        "frozen_parameters",
        "dead_units",
        "overfitting",
        "calibration_drift",
    ]
    assert [v.name for v in verdicts if v.triggered] == []
    assert all(v.applicable for v in verdicts)


def test_vanishing_gradients_fire_on_an_early_layer_far_below_the_largest() -> None:
    tiny = [1e-6] * E  # 1e-6 / 0.9 < 1e-3 of the output layer's norm
    v = vanishing_gradients(healthy(**{"grad_norm/hidden0": tiny}), RULES)
    assert v.triggered
    (ev,) = v.evidence
    assert ev["layer"] == "hidden0" and ev["n_epochs"] == E and ev["of_epochs"] == E
    assert ev["grad_norm"] == pytest.approx(1e-6)
    assert ev["ratio_to_largest"] < 1e-3
    assert "1e-07" in v.rule and "0.001" in v.rule  # thresholds spelled out


def test_vanishing_needs_the_configured_share_of_epochs() -> None:
    norms = [0.5] * 6 + [1e-9] * 4  # 40% of the epochs
    s = healthy(**{"grad_norm/hidden0": norms})
    assert not vanishing_gradients(s, RULES).triggered
    assert vanishing_gradients(s, DiagnosticRules(vanishing_min_fraction=0.4)).triggered


def test_exploding_gradients_fire_on_a_huge_batch_norm_or_fast_growth() -> None:
    spike = [1.0] * (E - 1) + [5e3]
    v = exploding_gradients(healthy(**{"grad_norm_max/hidden1": spike}), RULES)
    assert v.triggered and v.evidence[0]["layer"] == "hidden1"
    assert v.evidence[0]["max_grad_norm"] == 5e3 and v.evidence[0]["max_at_epoch"] == E - 1

    growing = list(0.01 * 4.0 ** np.arange(E))  # 4^9 ~ 2.6e5 times the first epoch
    s = healthy(**{"grad_norm/output": growing, "grad_norm_max/output": [1.0] * E})
    v = exploding_gradients(s, RULES)
    assert v.triggered and v.evidence[0]["growth_over_first_epoch"] > 1e3
    assert v.evidence[0]["epochs"] == [5, 6, 7, 8, 9]  # 4^5 = 1024 > 1e3


def test_a_diverged_run_counts_as_exploding_with_where_it_happened() -> None:
    failure = {"kind": "non_finite", "epoch": 2, "batch": 7, "layer": "output", "loss": "inf"}
    v = exploding_gradients(healthy(), RULES, failure)
    assert v.triggered and v.evidence == [{"diverged": failure}]


def test_frozen_parameters_fire_on_a_layer_whose_weights_never_move() -> None:
    s = healthy(**{"update_ratio/hidden1": [0.0] * E, "grad_zero_frac/hidden1": [1.0] * E})
    v = frozen_parameters(s, RULES)
    assert v.triggered
    assert v.evidence == [
        {
            "layer": "hidden1",
            "n_epochs": E,
            "max_update_ratio": 0.0,
            "grad_zero_frac_last": 1.0,
            "grad_norm_last": pytest.approx(0.7 * np.exp(-9 / 8)),
        }
    ]
    # one epoch of movement and it was not frozen
    moved = [0.0] * (E - 1) + [1e-6]
    assert not frozen_parameters(healthy(**{"update_ratio/hidden1": moved}), RULES).triggered


def test_dead_units_fire_when_most_relu_units_are_dead_at_the_end() -> None:
    dying = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.8, 0.8]
    v = dead_units(healthy(**{"dead_frac/hidden0": dying}), RULES)
    assert v.triggered
    assert v.evidence[0] == {
        "layer": "hidden0",
        "dead_frac": 0.8,
        "last_epoch": 9,
        "first_epoch_above": 4,
        "first_value": 0.1,
    }
    assert not dead_units(
        healthy(**{"dead_frac/hidden0": dying}), DiagnosticRules(dead_fraction=0.9)
    ).triggered


def test_dead_units_do_not_apply_without_relu_layers() -> None:
    s = RunSeries.from_mapping({"grad_norm/hidden0": [1.0, 1.0], "train_loss": [1.0, 0.5]})
    v = dead_units(s, RULES)
    assert not v.triggered and not v.applicable and v.note


def test_overfitting_fires_when_val_rises_for_patience_epochs_and_reports_the_gap() -> None:
    train = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05]
    val = [1.0, 0.85, 0.7, 0.6, 0.55, 0.5, 0.56, 0.62, 0.7, 0.8]  # minimum at epoch 5
    v = overfitting(healthy(train_loss=train, val_loss=val), RULES)
    assert v.triggered
    (ev,) = v.evidence
    assert ev["best_val_epoch"] == 5 and ev["epochs_since_best"] == 4
    assert ev["gap_at_best"] == pytest.approx(0.2) and ev["gap_last"] == pytest.approx(0.75)
    # only 4 epochs of rise: patience 5 is not met
    assert not overfitting(
        healthy(train_loss=train, val_loss=val), DiagnosticRules(patience=5)
    ).triggered


def test_no_overfitting_when_the_train_loss_rises_too() -> None:
    train = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.35, 0.4, 0.45, 0.5]  # both rise: not overfitting
    val = [1.0, 0.85, 0.7, 0.6, 0.55, 0.5, 0.56, 0.62, 0.7, 0.8]
    v = overfitting(healthy(train_loss=train, val_loss=val), RULES)
    assert not v.triggered and v.evidence[0]["gap_last"] == pytest.approx(0.3)


def test_calibration_drift_fires_when_ece_rises_while_val_loss_falls() -> None:
    ece = [0.08, 0.05, 0.03, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08]  # minimum at epoch 3
    v = calibration_drift(healthy(ece=ece), RULES)
    assert v.triggered
    assert v.evidence[0]["best_ece_epoch"] == 3 and v.evidence[0]["ece_last"] == 0.08
    assert v.evidence[0]["val_loss_last"] < v.evidence[0]["val_loss_at_best_ece"]
    # the same ECE curve while the validation loss rises is overfitting's business, not drift
    rising = list(np.linspace(0.5, 0.9, E))
    assert not calibration_drift(healthy(ece=ece, val_loss=rising), RULES).triggered


def test_calibration_drift_does_not_apply_without_ece() -> None:
    s = RunSeries.from_mapping({"train_loss": [1.0, 0.5], "val_loss": [1.0, 0.6]})
    v = calibration_drift(s, RULES)
    assert not v.triggered and not v.applicable


def test_missing_epochs_and_undefined_values_are_skipped_not_read_as_zero() -> None:
    s = RunSeries.from_rows(
        [("val_loss", 0, 1.0), ("val_loss", 3, 0.5), ("train_loss", 3, 0.4), ("ece", 3, None)]
    )
    assert s.epochs.tolist() == [0, 3]
    assert np.isnan(s.get("train_loss")[0]) and np.isnan(s.get("ece")).all()
    summary = s.summary()
    assert summary["ece"] == {"n": 0}
    assert summary["val_loss"]["min"] == {"epoch": 3, "value": 0.5}
    assert summary["val_loss"]["first"] == {"epoch": 0, "value": 1.0}


def test_layers_are_ordered_input_side_first() -> None:
    names = [f"grad_norm/hidden{i}" for i in (10, 2, 0, 1)] + ["grad_norm/output"]
    s = RunSeries.from_rows((n, 0, 1.0) for n in names)
    assert s.layers() == ["hidden0", "hidden1", "hidden2", "hidden10", "output"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vanishing_ratio", 0.0),
        ("vanishing_ratio", 1.5),
        ("exploding_growth", 1.0),
        ("dead_fraction", float("nan")),
        ("frozen_update_ratio", -1.0),
        ("patience", 0),
        ("patience", 2.5),
    ],
)
def test_out_of_range_rules_are_input_errors_naming_the_rule(field: str, value: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        DiagnosticRules(**{field: value})
    assert info.value.field == field


# -- sanity mode ---------------------------------------------------------------------------------
def test_a_classification_sanity_run_passes_at_the_stated_threshold() -> None:
    out = judge_sanity("binary", [0.7, 0.3, 0.1, 0.049])
    assert out["passed"] and out["causes"] == []
    assert out["threshold"] == 0.05 and out["first_epoch_below"] == 3
    assert out["criterion"] == "final training loss <= 0.05"
    assert not judge_sanity("binary", [0.7, 0.3, 0.1, 0.051])["passed"]


def test_a_regression_sanity_run_is_judged_against_one_percent_of_the_mean_predictor() -> None:
    y = np.array([0.0, 2.0, 4.0, 6.0])
    base = constant_baseline("mse", y)
    assert base == pytest.approx(np.var(y))
    assert judge_sanity("regression", [5.0, 1.0, 0.04], baseline=base)["passed"]  # 0.04 <= 0.05
    out = judge_sanity("regression", [5.0, 1.0, 0.06], baseline=base)
    assert not out["passed"] and out["threshold"] == pytest.approx(0.05)


def test_a_stuck_loss_with_tiny_updates_blames_the_learning_rate_being_too_low() -> None:
    out = judge_sanity("binary", [0.693] * 50, update_ratios=[1e-7] * 100)
    assert not out["passed"]
    assert [c["cause"] for c in out["causes"]] == ["lr_too_low"]
    assert "1e-07" in out["causes"][0]["detail"]


def test_a_loss_that_went_back_up_or_diverged_blames_the_learning_rate_being_too_high() -> None:
    out = judge_sanity("binary", [0.7, 0.2, 0.1, 0.4, 0.6], update_ratios=[0.1] * 10)
    assert [c["cause"] for c in out["causes"]] == ["lr_too_high"]
    failure = {"kind": "non_finite", "epoch": 0, "batch": 3, "layer": "output", "loss": "nan"}
    out = judge_sanity("binary", [], failure=failure)
    assert not out["passed"] and out["causes"][0]["cause"] == "lr_too_high"
    assert "batch 3" in out["causes"][0]["detail"]


def test_a_plateau_blames_capacity_or_labels_and_a_falling_loss_blames_the_epochs() -> None:
    plateau = list(np.r_[np.linspace(0.7, 0.3, 20), np.full(20, 0.3)])
    out = judge_sanity("binary", plateau, update_ratios=[0.01] * 40)
    assert [c["cause"] for c in out["causes"]] == ["model_too_small_or_label_noise"]
    falling = list(np.linspace(0.7, 0.2, 40))
    out = judge_sanity("binary", falling, update_ratios=[0.01] * 40)
    assert [c["cause"] for c in out["causes"]] == ["too_few_epochs"]


def test_fired_verdicts_and_conflicting_rows_are_listed_as_causes() -> None:
    frozen = Verdict("frozen_parameters", True, "rule", [{"layer": "hidden1"}])
    quiet = Verdict("dead_units", False, "rule", [])
    out = judge_sanity(
        "multiclass",
        [1.1, 1.0, 1.0, 1.0],
        verdicts=[frozen, quiet],
        update_ratios=[0.01],
        conflicting_rows=6,
    )
    causes = [c["cause"] for c in out["causes"]]
    assert causes == ["not_learning", "data_errors", "frozen_layers"]
    assert "['hidden1']" in out["causes"][2]["detail"]
    assert "6 subset rows" in out["causes"][1]["detail"]
