"""The data-checks plot: PSI bars per feature (sorted, drifted ones highlighted, the 0.25 rule,
the test's p-value), class shares side by side, and the duplicates and leakage suspects in text."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine

from app import data_check_plots, plots
from app.errors import InvalidInput

SVG = "{http://www.w3.org/2000/svg}"


def feature(name: str, psi: float | None, p: float | None, test: str = "ks") -> dict[str, Any]:
    return {
        "name": name,
        "train": {"kind": "numeric"},
        "validation": {"kind": "numeric"},
        "drift": {"test": test, "statistic": 0.1, "p_value": p, "psi": psi},
    }


#: Four features in column order; "age" drifted by its KS p-value alone (PSI under the rule).
CHECKS: dict[str, Any] = {
    "run_id": "run-1",
    "n_train": 300,
    "n_validation": 205,
    "features": [
        feature("income", 0.05, 0.2),
        feature("color", 0.61, 1e-9, test="chi_square"),
        feature("age", 0.12, 1e-6),
        feature("zip", 0.31, 0.03),
    ],
    "drifted": ["color", "age", "zip"],
    "classes": [
        {"class": "0", "train_count": 180, "train_share": 0.6, "val_count": 82, "val_share": 0.4},
        {"class": "1", "train_count": 120, "train_share": 0.4, "val_count": 123, "val_share": 0.6},
    ],
    "duplicates": {
        "n_val_rows_in_train": 7,
        "share_of_val": 7 / 205,
        "val_indices": [0, 1, 2, 3, 4, 5, 6],
        "with_same_label": 6,
    },
    "leakage_suspects": [
        {"feature": "leaky_id", "class": "1", "roc_auc": 0.997, "separation": 0.997},
    ],
}
#: CHECKS' features, largest PSI first.
RANKED = ["color", "zip", "age", "income"]


def axes(fig: Figure, label: str) -> Axes:
    found = [ax for ax in fig.axes if ax.get_label() == label]
    assert len(found) == 1, [ax.get_label() for ax in fig.axes]
    return found[0]


def bars(ax: Axes) -> list[BarContainer]:
    return [c for c in ax.containers if isinstance(c, BarContainer)]


def drift_bars(fig: Figure) -> tuple[list[str], list[float], list[tuple[float, ...]]]:
    """Names top to bottom, the bar lengths and colours in that order."""
    ax = axes(fig, "drift")
    (container,) = bars(ax)
    patches = sorted(container.patches, key=lambda p: -p.get_y())  # top first
    labels = zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)
    ticks = {float(t): label.get_text() for t, label in labels}
    names = [ticks[round(p.get_y() + p.get_height() / 2, 6)] for p in patches]
    return names, [p.get_width() for p in patches], [p.get_facecolor() for p in patches]


def svg_text(svg: bytes) -> str:
    return "\n".join("".join(t.itertext()) for t in ET.fromstring(svg).iter(f"{SVG}text"))


def test_each_bar_is_as_long_as_the_features_psi_largest_on_top() -> None:
    names, widths, _ = drift_bars(data_check_plots.figure(CHECKS))
    assert names == RANKED
    psi = {f["name"]: f["drift"]["psi"] for f in CHECKS["features"]}
    np.testing.assert_allclose(widths, [psi[n] for n in RANKED], rtol=0, atol=1e-12)


def test_drifted_features_are_highlighted_even_below_the_psi_rule() -> None:
    names, _, colours = drift_bars(data_check_plots.figure(CHECKS))
    red, blue = to_rgba(data_check_plots.DRIFTED_COLOUR), to_rgba(data_check_plots.STABLE_COLOUR)
    by_name = dict(zip(names, colours, strict=True))
    assert by_name["age"] == red  # PSI 0.12, but KS p = 1e-6
    assert by_name["color"] == red and by_name["zip"] == red
    assert by_name["income"] == blue
    # The highlight follows the checks' drifted list, not the PSI alone.
    calm = {**CHECKS, "drifted": []}
    assert set(drift_bars(data_check_plots.figure(calm))[2]) == {blue}


def test_the_psi_rule_is_a_vertical_line_at_a_quarter() -> None:
    ax = axes(data_check_plots.figure(CHECKS), "drift")
    rules = [line for line in ax.get_lines() if len(set(line.get_xdata())) == 1]
    assert [float(line.get_xdata()[0]) for line in rules] == [0.25]


def test_each_bar_is_annotated_with_its_psi_and_its_tests_p_value() -> None:
    ax = axes(data_check_plots.figure(CHECKS), "drift")
    notes = [t.get_text() for t in ax.texts]
    assert notes == ["0.61 · χ² p = 1e-09", "0.31 · KS p = 0.03", "0.12 · KS p = 1e-06",
                     "0.05 · KS p = 0.2"]  # fmt: skip


def test_a_feature_without_psi_is_drawn_last_with_an_empty_bar() -> None:
    checks = copy.deepcopy(CHECKS)
    checks["features"].insert(0, feature("empty", None, None))
    fig = data_check_plots.figure(checks)
    names, widths, _ = drift_bars(fig)
    assert names == [*RANKED, "empty"] and widths[-1] == 0.0
    assert axes(fig, "drift").texts[-1].get_text() == "n/a · KS p = n/a"


def test_class_shares_are_drawn_side_by_side() -> None:
    ax = axes(data_check_plots.figure(CHECKS), "classes")
    train, val = bars(ax)
    assert [p.get_height() for p in train] == [0.6, 0.4]
    assert [p.get_height() for p in val] == [0.4, 0.6]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1"]
    # side by side: each validation bar right of its training bar, touching it
    for t, v in zip(train, val, strict=True):
        assert t.get_x() + t.get_width() == pytest.approx(v.get_x())


def test_regression_checks_have_no_class_panel() -> None:
    checks = {**CHECKS, "classes": None, "leakage_suspects": []}
    fig = data_check_plots.figure(checks)
    assert sorted(ax.get_label() for ax in fig.axes) == ["drift", "summary"]
    assert "Leakage suspects: not checked (no class labels)" in svg_text(
        data_check_plots.render(checks)
    )


def test_the_svg_names_the_duplicates_and_the_leakage_suspect() -> None:
    text = svg_text(data_check_plots.render(CHECKS))
    assert "Duplicates: 7 validation rows (3.4%) equal a training row, 6 with the same label" in (
        text
    )
    assert "leaky_id (class 1, ROC-AUC 0.997)" in text
    assert "Drifted: 3 of 4 features" in text
    assert "Data checks of run run-1" in text
    for name in RANKED:
        assert name in text.split("\n")
    down = {"feature": "rank", "class": "0", "roc_auc": 0.004, "separation": 0.996}
    reversed_text = svg_text(data_check_plots.render({**CHECKS, "leakage_suspects": [down]}))
    assert "rank (class 0, ROC-AUC 0.004, reversed)" in reversed_text
    clean = svg_text(data_check_plots.render({**CHECKS, "leakage_suspects": []}))
    assert "Leakage suspects: none" in clean and "leaky_id" not in clean


def test_at_most_max_features_bars_the_largest_psi_and_the_plot_says_so() -> None:
    n = data_check_plots.MAX_FEATURES + 15
    rng = np.random.default_rng(0)
    psi = rng.permutation(n) / 100.0  # distinct, shuffled
    checks = {
        **CHECKS,
        "features": [feature(f"f{i}", float(psi[i]), 0.5) for i in range(n)],
        "drifted": [f"f{int(np.argmin(psi))}"],  # the smallest PSI: not drawn
    }
    fig = data_check_plots.figure(checks)
    names, widths, _ = drift_bars(fig)
    assert len(names) == data_check_plots.MAX_FEATURES
    top = np.argsort(-psi)[: data_check_plots.MAX_FEATURES]
    assert names == [f"f{i}" for i in top]
    np.testing.assert_allclose(widths, psi[top])
    title = axes(fig, "drift").get_title()
    assert f"top {data_check_plots.MAX_FEATURES} of {n} features by PSI" in title
    assert "1 drifted not shown" in title
    # Under the cap the title says nothing of it.
    assert "top" not in axes(data_check_plots.figure(CHECKS), "drift").get_title()


def test_image_checks_count_duplicate_images() -> None:
    checks = {**CHECKS, "image_shape": [3, 8, 8]}
    text = svg_text(data_check_plots.render(checks))
    assert "7 validation images (3.4%) equal a training image pixel for pixel" in text
    assert "300 training vs 205 validation images" in text


def test_the_same_checks_give_the_same_svg_bytes_every_time() -> None:
    # The layout solver can differ in the last bit between figures, which changed the hashed
    # clip-path ids now and then (of these checks, about one SVG in six before the fix):
    # render often, with PNGs in between, and compare.
    checks = {**CHECKS, "features": [feature(f"x{i}", 0.01 * (i + 1), 0.5) for i in range(10)]}
    svgs = set()
    for i in range(20):
        svgs.add(data_check_plots.render(copy.deepcopy(checks)))
        if i % 4 == 0:
            data_check_plots.render(checks, fmt="png")
    assert len(svgs) == 1


def test_saving_solves_the_layout_once_and_fixes_it_at_rounded_positions() -> None:
    # What makes the bytes stable whatever the solver's last bit (plots.save, for every plot).
    fig = data_check_plots.figure(CHECKS)
    assert isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)
    plots.save(fig, "svg")
    assert fig.get_layout_engine() is None or not isinstance(
        fig.get_layout_engine(), ConstrainedLayoutEngine
    )
    for ax in fig.axes:
        bounds = np.array(ax.get_position().bounds)
        np.testing.assert_allclose(bounds, bounds.round(9), rtol=0, atol=1e-13)
    assert axes(fig, "drift").get_position().x0 > 0.02  # solved: room for the tick labels


def test_png_has_its_signature_and_the_title_is_used() -> None:
    png = data_check_plots.render(CHECKS, fmt="png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    titled = svg_text(data_check_plots.render(CHECKS, title="Q3 $ refresh"))
    assert "Q3 $ refresh" in titled and "Data checks of run" not in titled


def test_bad_input_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as exc:
        data_check_plots.render(CHECKS, fmt="gif")
    assert exc.value.field == "format"
    with pytest.raises(InvalidInput):
        data_check_plots.figure({"drifted": []})
