"""Plots of inspection results: the importance bars carry their ± std error bars."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
import pytest
from matplotlib.container import BarContainer

from app import inspection_plots

SVG = "{http://www.w3.org/2000/svg}"
#: Three features, most important first, with distinct spreads (one of them none).
IMPORTANCE: dict[str, Any] = {
    "metric": "roc_auc",
    "features": [
        {"name": "income", "mean": 0.30, "std": 0.05},
        {"name": "age", "mean": 0.10, "std": 0.02},
        {"name": "zip", "mean": -0.01, "std": 0.0},
    ],
}


def error_bar_lengths(svg: bytes) -> list[float]:
    """Length of each segment the SVG draws in its line collections (matplotlib's error bars)."""
    lengths = []
    for group in ET.fromstring(svg).iter(f"{SVG}g"):
        if group.get("id", "").startswith("LineCollection"):
            for path in group.iter(f"{SVG}path"):
                # "M x0 y0 L x1 y1": one straight segment
                x0, y0, x1, y1 = map(
                    float, path.get("d", "").replace("M", "").replace("L", "").split()
                )
                lengths.append(float(np.hypot(x1 - x0, y1 - y0)))
    return lengths


def test_importance_bars_have_error_bars_of_plus_minus_the_std() -> None:
    fig = inspection_plots.DRAWERS["importance"](IMPORTANCE, None)
    (ax,) = fig.axes
    bars = next(c for c in ax.containers if isinstance(c, BarContainer))
    assert bars.errorbar is not None, "the importance bars lost their error bars (xerr)"
    _, _, (segments,) = bars.errorbar.lines
    drawn = sorted(
        (float(s[:, 1].mean()), float(s[:, 0].min()), float(s[:, 0].max()))
        for s in segments.get_segments()
    )
    # the first feature on top: bar positions 2, 1, 0
    expected = sorted(
        (2.0 - i, f["mean"] - f["std"], f["mean"] + f["std"])
        for i, f in enumerate(IMPORTANCE["features"])
    )
    np.testing.assert_allclose(drawn, expected, atol=1e-12)


def test_the_importance_svg_draws_one_error_bar_per_feature_scaled_to_its_std() -> None:
    lengths = error_bar_lengths(inspection_plots.render("importance", IMPORTANCE))
    assert len(lengths) == len(IMPORTANCE["features"])
    income, age, zip_code = lengths
    assert income / age == pytest.approx(0.05 / 0.02, rel=1e-3)
    assert zip_code == 0.0
    # attributions have no spread to show: no error bars at all
    attributions = {"method": "integrated_gradients", "features": [{"name": "a", "mean_abs": 0.2}]}
    assert error_bar_lengths(inspection_plots.render("attributions", attributions)) == []
