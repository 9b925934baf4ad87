"""Grad-CAM pictures: one PNG overlay per image, and the grid plot of a Grad-CAM inspection.

An overlay is the image in gray (its channels averaged; RGB as is when it has 3 channels),
scaled to [0, 1], with the map in the ``jet`` colormap blended on top (alpha 0.45), enlarged by
pixel repetition so an 8×8 digit is still visible. No pyplot: colormaps are applied to arrays and
written with ``matplotlib.image.imsave``; the grid is a Figure on an Agg canvas (like
:mod:`app.plots`).

>>> png = overlay_png(np.zeros((1, 8, 8)), np.eye(8))
>>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.image import imsave
from numpy.typing import NDArray

from app import plots
from app.errors import InvalidInput

ALPHA: Final = 0.45
#: Overlays are enlarged to at least this many pixels on their shorter side.
MIN_SIDE: Final = 96
#: Images drawn in the grid plot of an inspection.
MAX_PANELS: Final = 16


def _unit(a: NDArray[Any]) -> NDArray[np.float64]:
    a = np.asarray(a, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def overlay_rgb(image: NDArray[Any], cam: NDArray[Any]) -> NDArray[np.float64]:
    """The blended (H, W, 3) picture of an image (C, H, W) and its map (H, W) in [0, 1]."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        img = img[None]
    base = _unit(img.transpose(1, 2, 0)) if img.shape[0] == 3 else _unit(img.mean(axis=0))
    if base.ndim == 2:
        base = np.repeat(base[:, :, None], 3, axis=2)
    heat = colormaps["jet"](np.clip(np.asarray(cam, dtype=np.float64), 0.0, 1.0))[:, :, :3]
    return np.asarray((1.0 - ALPHA) * base + ALPHA * heat)


def overlay_png(image: NDArray[Any], cam: NDArray[Any]) -> bytes:
    """PNG bytes of :func:`overlay_rgb`, enlarged by pixel repetition."""
    rgb = overlay_rgb(image, cam)
    k = max(1, int(np.ceil(MIN_SIDE / min(rgb.shape[:2]))))
    big = np.repeat(np.repeat(rgb, k, axis=0), k, axis=1)
    buf = io.BytesIO()
    imsave(buf, np.clip(big, 0.0, 1.0), format="png")
    return buf.getvalue()


def overlay_b64(image: NDArray[Any], cam: NDArray[Any]) -> str:
    return base64.b64encode(overlay_png(image, cam)).decode("ascii")


def encode_array(a: NDArray[Any]) -> dict[str, Any]:
    """A float32 array as JSON: base64 of its bytes (little-endian) and its shape."""
    arr = np.ascontiguousarray(a, dtype="<f4")
    return {"shape": list(arr.shape), "b64": base64.b64encode(arr.tobytes()).decode("ascii")}


def decode_array(doc: Mapping[str, Any], field: str = "result") -> NDArray[np.float32]:
    """The inverse of :func:`encode_array`."""
    try:
        raw = base64.b64decode(doc["b64"], validate=True)
        return np.frombuffer(raw, dtype="<f4").reshape(doc["shape"]).astype(np.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"holds no readable array ({exc})", field=field) from None


def gradcam_figure(result: Mapping[str, Any], title: str | None) -> Figure:
    """The grid of overlays of a Grad-CAM inspection result (its first :data:`MAX_PANELS`)."""
    images = decode_array(result.get("plot_images") or {}, "plot_images")
    maps = np.asarray(result.get("maps") or [], dtype=np.float64)[: len(images)]
    n = min(len(images), len(maps), MAX_PANELS)
    if n == 0:
        raise InvalidInput("the result holds no images to draw", field="result")
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig = plots.new_figure((2.2 * cols, 2.4 * rows + 0.4))
    targets = result.get("targets") or [None] * n
    probs = result.get("probabilities")
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(overlay_rgb(images[i], maps[i]), interpolation="nearest")
        label = f"#{i}"
        if targets[i] is not None and result.get("task") != "regression":
            label += f" class {targets[i]}"
            if probs is not None:
                label += f" (p={float(probs[i]):.2f})"
        ax.set_title(label, fontsize=9)
        ax.set_axis_off()
    fig.suptitle(title or f"Grad-CAM on {result.get('layer', '')}")
    return fig
