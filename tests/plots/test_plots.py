"""Plots of stored reports: valid SVG/PNG, deterministic SVG, the right artists, clear errors."""

from __future__ import annotations

import io
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import matplotlib.image
import numpy as np
import orjson
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from app import plots
from app.core.batch import make_batch
from app.core.report import ReportOptions, evaluate
from app.errors import InvalidInput

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALL_CURVES = ("roc", "pr", "reliability")


def stored(report: dict[str, Any]) -> dict[str, Any]:
    """The report as the database gives it back: a JSON round trip."""
    return orjson.loads(orjson.dumps(report, option=orjson.OPT_SERIALIZE_NUMPY))


def _binary() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(0.3 * y + 0.7 * rng.random(200), 0.0, 1.0)
    return stored(evaluate(make_batch("binary", y, p), ReportOptions(curves=ALL_CURVES, n_bins=8)))


def _multiclass() -> dict[str, Any]:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 150)
    proba = rng.dirichlet([1.0, 1.0, 1.0], 150)
    return stored(evaluate(make_batch("multiclass", y, proba), ReportOptions(curves=ALL_CURVES)))


def _multilabel() -> dict[str, Any]:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, (40, 3))
    return stored(evaluate(make_batch("multilabel", y, rng.random((40, 3))), ReportOptions()))


@pytest.fixture(scope="module")
def reports() -> dict[str, dict[str, Any]]:
    binary, multiclass = _binary(), _multiclass()
    return {
        "binary": binary,
        "multiclass": multiclass,
        "multilabel": _multilabel(),
        "calibration": {
            "reliability": {
                "before": binary["curves"]["reliability"],
                "after": multiclass["curves"]["reliability"],
            }
        },
    }


#: kind -> (report fixture key, title, axis labels that must appear)
CASES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "roc": ("multiclass", "ROC curve", ("False positive rate", "True positive rate")),
    "pr": ("binary", "Precision-recall curve", ("Recall", "Precision")),
    "reliability": (
        "binary",
        "Reliability diagram",
        ("Mean predicted probability", "Observed frequency", "Count"),
    ),
    "confusion": ("multiclass", "Confusion matrix", ("Predicted", "True", "Count")),
    "calibration": (
        "calibration",
        "Reliability before and after calibration",
        ("Mean predicted probability", "Observed frequency", "before", "after"),
    ),
}


def svg_texts(svg: bytes) -> list[str]:
    """Parse the SVG (fails the test if it is not XML) and return the text of its <text>s."""
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return ["".join(el.itertext()) for el in root.iter("{http://www.w3.org/2000/svg}text")]


def main_axes(fig: Figure) -> Axes:
    return fig.axes[0]


def title_of(fig: Figure) -> str:
    suptitle = fig.get_suptitle()
    return suptitle or main_axes(fig).get_title()


# -- output formats -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(CASES))
def test_svg_parses_as_xml_and_names_the_title_and_axes(
    kind: str, reports: dict[str, dict[str, Any]]
) -> None:
    key, title, labels = CASES[kind]
    texts = svg_texts(plots.render(kind, reports[key]))  # type: ignore[arg-type]
    assert title in texts
    for label in labels:
        assert label in texts, (label, texts)


@pytest.mark.parametrize("kind", list(CASES))
def test_png_starts_with_the_signature_and_decodes(
    kind: str, reports: dict[str, dict[str, Any]]
) -> None:
    pyplot_loaded = "matplotlib.pyplot" in sys.modules
    png = plots.render(kind, reports[CASES[kind][0]], fmt="png")  # type: ignore[arg-type]
    assert ("matplotlib.pyplot" in sys.modules) == pyplot_loaded  # no pyplot state involved
    assert png.startswith(PNG_SIGNATURE)
    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    height, width = image.shape[:2]
    assert height >= 300
    assert width >= 300
    fig = plots.figure(kind, reports[CASES[kind][0]])  # type: ignore[arg-type]
    expected = np.round(fig.get_size_inches() * fig.dpi).astype(int)
    assert (width, height) == tuple(expected)


def test_the_same_report_gives_the_same_svg_bytes(reports: dict[str, dict[str, Any]]) -> None:
    first = plots.render("roc", reports["multiclass"])
    assert plots.render("roc", reports["multiclass"]) == first
    assert plots.render("roc", stored(reports["multiclass"])) == first
    assert b"<dc:date>" not in first
    assert plots.render("roc", reports["multiclass"], title="Other") != first


def test_concurrent_svg_renders_are_identical_to_a_serial_one() -> None:
    report = {"curves": {"roc": {"1": {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.8, 1.0]}}}}
    expected = plots.render("roc", report)
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: plots.render("roc", report), range(6)))
    assert all(r == expected for r in results)


def test_a_custom_title_is_drawn_literally(reports: dict[str, dict[str, Any]]) -> None:
    title = "Model <v2> & costs $5 or $6"
    texts = svg_texts(plots.render("pr", reports["binary"], title=title))
    assert title in texts


def test_unknown_kind_or_format_is_invalid_input(reports: dict[str, dict[str, Any]]) -> None:
    with pytest.raises(InvalidInput) as exc:
        plots.render("lift", reports["binary"])  # type: ignore[arg-type]
    assert exc.value.field == "kind"
    assert "roc" in exc.value.detail
    with pytest.raises(InvalidInput) as exc:
        plots.render("roc", reports["binary"], fmt="jpeg")  # type: ignore[arg-type]
    assert exc.value.field == "fmt"
    with pytest.raises(InvalidInput) as exc:
        plots.render("roc", [1, 2])  # type: ignore[arg-type]
    assert exc.value.field == "report"


def test_the_public_constants_cover_every_kind_and_format() -> None:
    assert set(plots.KINDS) == set(plots.DEFAULT_TITLES) == set(CASES)
    assert set(plots.FORMATS) == set(plots.MEDIA_TYPES) == {"svg", "png"}


# -- missing data ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["roc", "pr", "reliability"])
def test_a_curve_the_report_lacks_is_invalid_input_not_key_error(
    kind: str, reports: dict[str, dict[str, Any]]
) -> None:
    without = {k: v for k, v in reports["binary"].items() if k != "curves"}
    others = {c: v for c, v in reports["binary"]["curves"].items() if c != kind}
    for report in (without, {**without, "curves": others}, {**without, "curves": None}):
        with pytest.raises(InvalidInput) as exc:
            plots.render(kind, report)  # type: ignore[arg-type]
        assert exc.value.field == "kind"
        assert exc.value.detail == (
            f"this evaluation has no {kind} curve: it was computed without curves=[{kind!r}]"
        )


def test_a_regression_report_has_no_confusion_matrix() -> None:
    report = stored(evaluate(make_batch("regression", [1.0, 2.0, 3.0], [1.5, 2.0, 2.0])))
    with pytest.raises(InvalidInput, match="no confusion matrix: task 'regression'") as exc:
        plots.render("confusion", report)
    assert exc.value.field == "kind"


def test_a_calibration_without_reliability_is_invalid_input() -> None:
    for report in ({}, {"reliability": None}, {"reliability": {"before": None}}):
        with pytest.raises(InvalidInput, match="no reliability diagram") as exc:
            plots.render("calibration", report)
        assert exc.value.field == "kind"


@pytest.mark.parametrize(
    ("kind", "report", "field"),
    [
        ("roc", {"curves": {"roc": {"1": {"fpr": [0, 1], "tpr": [0, 0.5, 1]}}}}, "curves.roc.1"),
        ("roc", {"curves": {"roc": {"1": {"tpr": [0, 1]}}}}, "curves.roc.1.fpr"),
        ("roc", {"curves": {"roc": {}}}, "curves.roc"),
        ("pr", {"curves": {"pr": {"1": {"recall": "x", "precision": [1]}}}}, "curves.pr.1.recall"),
        (
            "reliability",
            {
                "curves": {
                    "reliability": {
                        "edges": [0, 1],
                        "count": [1, 1],
                        "mean_confidence": [0.2, 0.7],
                        "observed_frequency": [0.0, 1.0],
                    }
                }
            },
            "curves.reliability.edges",
        ),
        ("confusion", {"confusion_matrix": {"counts": [[1, 2, 3]]}}, "confusion_matrix.counts"),
        (
            "confusion",
            {"confusion_matrix": {"labels": ["a"], "counts": [[1, 2], [3, 4]]}},
            "confusion_matrix.labels",
        ),
        ("confusion", {"confusion_matrix": {"counts": [[1, 2], [3]]}}, "confusion_matrix.counts"),
    ],
)
def test_malformed_data_is_invalid_input_naming_the_field(
    kind: str, report: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as exc:
        plots.figure(kind, report)  # type: ignore[arg-type]
    assert exc.value.field == field


# -- what is drawn --------------------------------------------------------------------------


def test_multiclass_roc_draws_one_line_per_class_and_the_diagonal(
    reports: dict[str, dict[str, Any]],
) -> None:
    report = reports["multiclass"]
    fig = plots.figure("roc", report)
    ax = main_axes(fig)
    assert len(ax.lines) == 3 + 1
    assert (ax.get_xlim(), ax.get_ylim()) == ((0.0, 1.0), (0.0, 1.0))
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("False positive rate", "True positive rate")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    aucs = {lab: c["auc"] for lab, c in report["curves"]["roc"].items()}
    assert legend == [f"{lab} (AUC = {auc:.4f})" for lab, auc in aucs.items()] + ["Chance"]
    diagonal = ax.lines[-1]
    assert list(diagonal.get_xdata()) == [0, 1] == list(diagonal.get_ydata())


def test_an_undefined_auc_or_ap_reads_n_a() -> None:
    curve = {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0], "auc": None}
    ax = main_axes(plots.figure("roc", {"curves": {"roc": {"spam": curve}}}))
    assert ax.get_legend().get_texts()[0].get_text() == "spam (AUC = n/a)"
    pr = {"recall": [1.0, 0.0], "precision": [0.5, 1.0], "average_precision": None}
    ax = main_axes(plots.figure("pr", {"curves": {"pr": {"spam": pr}}}))
    assert len(ax.lines) == 1
    assert ax.get_legend().get_texts()[0].get_text() == "spam (AP = n/a)"


def test_pr_draws_one_line_per_class_with_its_average_precision(
    reports: dict[str, dict[str, Any]],
) -> None:
    report = reports["multiclass"]
    ax = main_axes(plots.figure("pr", report))
    assert len(ax.lines) == 3
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Recall", "Precision")
    for line, (label, curve) in zip(ax.lines, report["curves"]["pr"].items(), strict=True):
        assert line.get_label() == f"{label} (AP = {curve['average_precision']:.4f})"
        np.testing.assert_array_equal(line.get_xdata(), curve["recall"])


def reliability_report() -> dict[str, Any]:
    return {
        "edges": [0.0, 0.25, 0.5, 0.75, 1.0],
        "count": [3, 0, 0, 5],
        "mean_confidence": [0.1, None, None, 0.9],
        "observed_frequency": [0.0, None, None, 0.8],
    }


def test_reliability_plots_only_the_filled_bins_and_every_bin_count() -> None:
    fig = plots.figure("reliability", {"curves": {"reliability": reliability_report()}})
    top, bottom = fig.axes
    diagonal, model = top.lines
    assert diagonal.get_label() == "Perfectly calibrated"
    np.testing.assert_array_equal(model.get_xdata(), [0.1, 0.9])
    np.testing.assert_array_equal(model.get_ydata(), [0.0, 0.8])
    assert (top.get_xlabel(), top.get_ylabel()) == (
        "Mean predicted probability",
        "Observed frequency",
    )
    heights = [patch.get_height() for patch in bottom.patches]
    assert heights == [3, 0, 0, 5]
    assert bottom.get_ylabel() == "Count"
    assert title_of(fig) == "Reliability diagram"


def test_calibration_draws_before_and_after_on_one_diagram_with_their_counts(
    reports: dict[str, dict[str, Any]],
) -> None:
    section = reports["calibration"]["reliability"]
    fig = plots.figure("calibration", reports["calibration"], title="Temperature scaling")
    top, bottom = fig.axes
    assert [line.get_label() for line in top.lines] == ["Perfectly calibrated", "before", "after"]
    assert [t.get_text() for t in top.get_legend().get_texts()] == [
        "Perfectly calibrated",
        "before",
        "after",
    ]
    n_bars = len(section["before"]["count"]) + len(section["after"]["count"])
    assert len(bottom.patches) == n_bars
    assert title_of(fig) == "Temperature scaling"


def test_calibration_with_one_phase_draws_that_phase() -> None:
    fig = plots.figure("calibration", {"reliability": {"after": reliability_report()}})
    assert [line.get_label() for line in fig.axes[0].lines] == ["Perfectly calibrated", "after"]


def cell_texts(ax: Axes) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_confusion_is_a_heatmap_of_counts_annotated_with_the_row_share(
    reports: dict[str, dict[str, Any]],
) -> None:
    cm = reports["multiclass"]["confusion_matrix"]
    fig = plots.figure("confusion", reports["multiclass"])
    ax = main_axes(fig)
    (image,) = ax.images
    np.testing.assert_array_equal(image.get_array(), cm["counts"])
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Predicted", "True")
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(lab) for lab in cm["labels"]]
    assert len(fig.axes) == 2  # the heatmap and its colorbar
    share = cm["normalized"]["true"]
    assert cell_texts(ax)[0] == f"{cm['counts'][0][0]}\n{100 * share[0][0]:.1f}%"
    assert len(ax.texts) == 9


def test_confusion_with_undefined_entries_does_not_crash() -> None:
    report = {
        "confusion_matrix": {
            "labels": ["cat", "dog", "$bird"],
            "counts": [[2, 1, 0], [0, 0, 0], [None, 1, 3]],
            "normalized": {"true": [[2 / 3, 1 / 3, 0.0], [None, None, None], [None, 0.25, 0.75]]},
        }
    }
    fig = plots.figure("confusion", report)
    texts = cell_texts(main_axes(fig))
    assert texts[3:6] == ["0", "0", "0"]  # an empty row: counts without a share
    assert texts[6] == "n/a"
    assert texts[0] == "2\n66.7%"
    svg = plots.render("confusion", report)
    assert "$bird" in svg_texts(svg)
    assert plots.render("confusion", report, fmt="png").startswith(PNG_SIGNATURE)


def test_confusion_without_normalized_computes_the_share() -> None:
    report = {"confusion_matrix": {"labels": [0, 1], "counts": [[1, 3], [0, 0]]}}
    assert cell_texts(main_axes(plots.figure("confusion", report))) == [
        "1\n25.0%",
        "3\n75.0%",
        "0",
        "0",
    ]


def test_a_large_confusion_has_no_annotations() -> None:
    k = plots.MAX_ANNOTATED_CLASSES + 1
    counts = np.arange(k * k).reshape(k, k).tolist()
    ax = main_axes(plots.figure("confusion", {"confusion_matrix": {"counts": counts}}))
    assert len(ax.texts) == 0
    assert len(ax.get_xticklabels()) == k


def test_multilabel_confusion_is_a_grid_of_2x2_matrices(
    reports: dict[str, dict[str, Any]],
) -> None:
    report = reports["multilabel"]
    fig = plots.figure("confusion", report)
    heatmaps = [ax for ax in fig.axes if any(isinstance(i, AxesImage) for i in ax.images)]
    assert len(heatmaps) == 3
    for ax, counts in zip(heatmaps, report["confusion_matrix"]["counts"], strict=True):
        np.testing.assert_array_equal(ax.images[0].get_array(), counts)
        assert len(ax.texts) == 4
    assert title_of(fig) == "Confusion matrix"
    texts = svg_texts(plots.render("confusion", report))
    assert {"Predicted", "True", "Confusion matrix"} <= set(texts)


def test_multilabel_confusion_is_capped() -> None:
    n = plots.MAX_MULTILABEL_PANELS + 5
    counts = [[[1, 2], [3, 4]]] * n
    fig = plots.figure(
        "confusion", {"confusion_matrix": {"labels": list(range(n)), "counts": counts}}
    )
    assert sum(1 for ax in fig.axes if ax.images) == plots.MAX_MULTILABEL_PANELS
    assert title_of(fig) == f"Confusion matrix (first {plots.MAX_MULTILABEL_PANELS} of {n} labels)"


def test_a_diagnostics_plot_has_the_same_svg_bytes_every_time() -> None:
    """Without the frozen layout of plots.save, 20 renders of this figure gave 2 byte strings
    (the constrained layout's last bit moved a clip rectangle, and its hashed SVG id)."""
    from app import diagnostics_plots

    epochs = list(range(30))
    data = {
        "run_id": "r",
        "epochs": epochs,
        "series": {
            "train_loss": [1 / (i + 1) for i in epochs],
            "val_loss": [0.5 + 0.01 * i for i in epochs],
            "grad_norm/hidden0": [0.1 * (i + 1) for i in epochs],
            "grad_norm/output": [0.05] * 30,
            "update_ratio/hidden0": [1e-3] * 30,
            "dead_frac/hidden0": [0.1] * 30,
        },
        "verdicts": [],
    }
    assert len({diagnostics_plots.render(data) for _ in range(20)}) == 1
