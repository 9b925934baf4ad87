"""The domain-validation plot: one bar per held-out domain as long as its metric, the worst one
highlighted, the weighted mean and the random split drawn and labelled, ECE beside them."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.container import BarContainer
from matplotlib.lines import Line2D

from app import domain_plots
from app.errors import InvalidInput

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DOMAINS = ("north", "south", "east")
METRICS = {
    "north": {"accuracy": 0.55, "roc_auc": 0.71, "log_loss": 0.90, "ece": 0.12},
    "south": {"accuracy": 0.75, "roc_auc": 0.62, "log_loss": 0.60, "ece": 0.05},
    "east": {"accuracy": 0.80, "roc_auc": 0.88, "log_loss": 0.40, "ece": 0.08},
}
SUPPORT = {"north": 60, "south": 40, "east": 100}
RANDOM = {"accuracy": 0.93, "roc_auc": 0.97, "log_loss": 0.20, "ece": 0.03}
#: A succeeded leave-one-domain-out parent's summary.domain_validation, as the service stores it.
SUMMARY: dict[str, Any] = {
    "mode": "leave_one_domain_out",
    "column": "site",
    "status": "succeeded",
    "primary_metric": "roc_auc",
    "domains": [
        {
            "domain": d,
            "run_id": f"run-{d}",
            "status": "succeeded",
            "n_train": 200 - SUPPORT[d],
            "n_val": SUPPORT[d],
            "metrics": METRICS[d],
        }
        for d in DOMAINS
    ],
    "random_split": {"run_id": "run-r", "n_val": 50, "metrics": RANDOM},
    "weighted_mean": {"accuracy": 0.715, "roc_auc": 0.7725, "log_loss": 0.55, "ece": 0.086},
    "worst": {
        "accuracy": {"domain": "north", "value": 0.55},
        "roc_auc": {"domain": "south", "value": 0.62},
        "log_loss": {"domain": "north", "value": 0.90},
        "ece": {"domain": "north", "value": 0.12},
    },
    "worst_domain": {"domain": "south", "metric": "roc_auc", "value": 0.62},
    "ece_by_domain": {d: METRICS[d]["ece"] for d in DOMAINS},
    "random_split_minus_domain": {"accuracy": 0.215, "roc_auc": 0.1975, "log_loss": -0.35},
    "random_split_overestimates": {"accuracy": True, "roc_auc": True, "log_loss": True},
    "run_id": "parent-1",
}


def svg_text(svg: bytes) -> str:
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return " ".join(t.strip() for t in root.itertext() if t.strip())


def bars(ax: Axes) -> BarContainer:
    (container,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    return container


def vertical_lines(ax: Axes) -> dict[str, tuple[float, str]]:
    """label -> (x, linestyle) of the labelled vertical lines of ``ax``."""
    out = {}
    for line in ax.get_lines():
        assert isinstance(line, Line2D)
        x = line.get_xdata()
        if not line.get_label().startswith("_") and x[0] == x[1]:
            out[line.get_label()] = (float(x[0]), line.get_linestyle())
    return out


def test_the_svg_names_every_domain_the_lines_and_the_random_split_gap() -> None:
    svg = domain_plots.render(SUMMARY)
    text = svg_text(svg)
    for domain in DOMAINS:
        assert domain in text
        assert f"n = {SUPPORT[domain]}" in text
    assert "support-weighted mean (0.772)" in text  # roc_auc, the primary metric
    assert "random split (0.970)" in text
    assert "random − domain = +0.198" in text and "random split overestimates" in text
    assert "worst domain by roc_auc: south" in text
    assert "Domain validation of run parent-1" in text
    assert domain_plots.render(SUMMARY) == svg  # deterministic bytes


def test_bars_are_as_long_as_the_metric_and_the_worst_domain_is_highlighted() -> None:
    fig = domain_plots.figure(SUMMARY)
    main = fig.axes[0]
    drawn = bars(main)
    assert [p.get_width() for p in drawn] == pytest.approx([METRICS[d]["roc_auc"] for d in DOMAINS])
    colours = [to_hex(p.get_facecolor()) for p in drawn]
    assert colours == [domain_plots.BAR_COLOUR, domain_plots.WORST_COLOUR, domain_plots.BAR_COLOUR]
    assert [t.get_text() for t in main.get_yticklabels()] == list(DOMAINS)
    lines = vertical_lines(main)
    assert lines["support-weighted mean (0.772)"] == (pytest.approx(0.7725), "-")
    assert lines["random split (0.970)"] == (pytest.approx(0.97), "--")


def test_the_metric_parameter_picks_the_bars_and_the_worst_domain_of_that_metric() -> None:
    fig = domain_plots.figure(SUMMARY, metric="log_loss", title="My shift")
    drawn = bars(fig.axes[0])
    assert [p.get_width() for p in drawn] == pytest.approx(
        [METRICS[d]["log_loss"] for d in DOMAINS]
    )
    worst = [to_hex(p.get_facecolor()) == domain_plots.WORST_COLOUR for p in drawn]
    assert worst == [True, False, False]  # the highest loss: north
    text = svg_text(domain_plots.render(SUMMARY, metric="log_loss", title="My shift"))
    assert "My shift" in text and "random − domain = -0.350" in text


def test_classification_has_an_ece_panel_and_regression_none() -> None:
    fig = domain_plots.figure(SUMMARY)
    assert len(fig.axes) == 2
    ece = bars(fig.axes[1])
    assert [p.get_width() for p in ece] == pytest.approx([METRICS[d]["ece"] for d in DOMAINS])
    assert vertical_lines(fig.axes[1])["support-weighted mean (0.086)"][0] == pytest.approx(0.086)
    assert "calibration error (ECE) per domain" in svg_text(domain_plots.render(SUMMARY))

    regression = {
        "mode": "time_split",
        "column": "day",
        "primary_metric": "rmse",
        "domains": [{"domain": "future", "n_val": 120, "metrics": {"rmse": 1.4, "r2": -0.2}}],
        "random_split": {"metrics": {"rmse": 0.9, "r2": 0.5}},
        "weighted_mean": {"rmse": 1.4, "r2": -0.2},
        "worst": {"rmse": {"domain": "future", "value": 1.4}},
    }
    fig = domain_plots.figure(regression)
    assert len(fig.axes) == 1
    assert [p.get_width() for p in bars(fig.axes[0])] == pytest.approx([1.4])
    # no stored gap: computed from the two lines, and an error overestimates when lower
    assert "random − domain = -0.500" in svg_text(domain_plots.render(regression))
    assert domain_plots.render(regression, fmt="png").startswith(PNG_SIGNATURE)


def test_an_undefined_metric_draws_no_bar_and_says_so() -> None:
    summary = copy.deepcopy(SUMMARY)
    summary["domains"][1]["metrics"]["roc_auc"] = None
    summary["worst"]["roc_auc"] = {"domain": "north", "value": 0.71}
    drawn = bars(domain_plots.figure(summary).axes[0])
    assert [p.get_width() for p in drawn] == pytest.approx([0.71, 0.0, 0.88])
    assert "n/a  (n = 40)" in svg_text(domain_plots.render(summary))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"metric": "r2"}, "metric"), ({"metric": "nope"}, "metric"), ({"fmt": "gif"}, "format")],
)
def test_bad_arguments_are_invalid_input_naming_the_parameter(
    kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        domain_plots.render(SUMMARY, **kwargs)
    assert info.value.field == field
    if field == "metric":
        assert "roc_auc" in info.value.detail  # the metrics the run has


def test_a_summary_without_aggregates_is_invalid_input() -> None:
    running = {"mode": "leave_one_domain_out", "status": "running", "children": []}
    with pytest.raises(InvalidInput):
        domain_plots.figure(running)
