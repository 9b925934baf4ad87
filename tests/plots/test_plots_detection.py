"""Plots of detection reports: PR curves per class at IoU .50 and the detection confusion matrix."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from matplotlib.image import AxesImage

from app import plots
from app.core.detection import evaluate_detections, from_coco
from app.errors import InvalidInput
from tests.core.test_detection_coco import make_set


def detection_report(n_classes: int) -> dict[str, Any]:
    gt, results = make_set(0, n_images=30, n_classes=n_classes)
    return orjson.loads(orjson.dumps(evaluate_detections(from_coco(gt, results))))


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return detection_report(5)


def test_the_confusion_plot_names_the_axes_background_and_matching_rule(
    report: dict[str, Any],
) -> None:
    fig = plots.figure("confusion", report)
    ax = fig.axes[0]
    assert ax.get_ylabel().startswith("Ground-truth class")
    assert ax.get_xlabel().startswith("Predicted class")
    assert "IoU ≥ 0.5, score ≥ 0.25" in ax.get_title()
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks[-1] == "background" and len(ticks) == 6
    [image] = [a for a in ax.get_children() if isinstance(a, AxesImage)]
    assert np.array_equal(np.asarray(image.get_array()), report["confusion_matrix"]["counts"])


def test_the_pr_plot_draws_each_class_and_the_mean_with_their_ap50(
    report: dict[str, Any],
) -> None:
    ax = plots.figure("pr", report).axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    curves = report["curves"]["pr"]
    assert len(legend) == len(curves) + 1
    assert legend[-1] == f"all classes (mAP50 = {report['metrics']['map_50']:.4f})"
    best = max(curves, key=lambda k: curves[k]["average_precision"])
    assert legend[0].startswith(f"{best} (AP50 = ")


def test_many_classes_keep_only_the_mean_in_the_legend() -> None:
    ax = plots.figure("pr", detection_report(30)).axes[0]
    [only] = [t.get_text() for t in ax.get_legend().get_texts()]
    assert only.startswith("all classes")


@pytest.mark.parametrize("kind", ["roc", "reliability"])
def test_a_detection_report_has_no_roc_or_reliability_plot(
    report: dict[str, Any], kind: str
) -> None:
    with pytest.raises(InvalidInput, match="detection report has no"):
        plots.render(kind, report)  # type: ignore[arg-type]


def test_a_malformed_matrix_is_invalid_input(report: dict[str, Any]) -> None:
    broken = {**report, "confusion_matrix": {"counts": [[1, 2, 3]], "labels": ["a"]}}
    with pytest.raises(InvalidInput) as err:
        plots.render("confusion", broken)
    assert err.value.field == "confusion_matrix.counts"
