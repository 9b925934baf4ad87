"""The image inspections: Grad-CAM (kind ``gradcam``) and the image robustness families.

Importing this module registers the ``gradcam`` kind (image runs only: a tabular run gets a
422) in :data:`app.services.inspections.KINDS`, its grid plot in
:data:`app.inspection_plots.DRAWERS`, and the image families (``gaussian_noise``, ``blur``,
``occlusion``, ``brightness``, ``contrast``) of the ``robustness`` kind
(:mod:`app.core.image_perturbations`).

Grad-CAM is a job like every inspection: ``POST /v1/runs/{id}/gradcam`` checks the images
against the run's input shape, the layer against its conv blocks and the classes against its
task (every 4xx there), stores the images compactly (base64 float32) in the params, and the
worker returns the maps (H×W, in [0, 1]), their peaks, the class explained with its
probability, and a PNG overlay per image.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
from scipy.special import expit, softmax
from sqlalchemy.orm import Session

from app import inspection_plots
from app.api.schemas.images import MAX_GRADCAM_IMAGES, GradCAMRequest
from app.core import image_perturbations  # noqa: F401 - registers the image families
from app.db.models import Run
from app.errors import InvalidInput, PayloadTooLarge
from app.image_plots import (
    MAX_PANELS,
    decode_array,
    encode_array,
    gradcam_figure,
    overlay_b64,
)
from app.services.image_run_data import input_shape
from app.services.inspections import InspectionKind, RunArtifacts, register_kind
from app.training.cnn import CNN
from app.training.gradcam import gradcam
from app.training.images import as_image_rows

#: PNG overlays returned at most (the maps are returned for every image).
MAX_OVERLAYS: Final = 64
#: Decimals kept of the maps in the stored result (they are in [0, 1]).
MAP_DECIMALS: Final = 5


def _n_classes(run: Run) -> int:
    if run.task == "binary":
        return 2
    return int((run.spec or {}).get("n_classes") or (run.summary or {}).get("n_outputs") or 2)


def check_gradcam(session: Session, run: Run, body: GradCAMRequest) -> dict[str, Any]:
    shape = input_shape(run)
    rows, _ = as_image_rows(body.X, "X", shape=shape)
    n = rows.shape[0]
    if n > MAX_GRADCAM_IMAGES:
        raise PayloadTooLarge(
            f"has {n} images; Grad-CAM takes at most {MAX_GRADCAM_IMAGES} per request", field="X"
        )
    blocks = len(((run.spec or {}).get("model") or {}).get("blocks") or [])
    layers = [f"conv{i}" for i in range(blocks)]
    if body.layer is not None and body.layer not in layers:
        raise InvalidInput(f"is {body.layer!r}: the run's conv layers are {layers}", field="layer")
    target = body.target
    if target is not None:
        if run.task == "regression":
            raise InvalidInput("does not apply to a regression run", field="target")
        values = target if isinstance(target, list) else [target]
        if isinstance(target, list) and len(target) != n:
            raise InvalidInput(f"has {len(target)} classes for {n} images", field="target")
        k = _n_classes(run)
        bad = [t for t in values if not 0 <= t < k]
        if bad:
            raise InvalidInput(f"{bad[0]} is not a class index in [0, {k})", field="target")
    return {
        "images": encode_array(rows.reshape(n, *shape)),
        "layer": body.layer,
        "target": target,
        "overlays": body.overlays,
    }


def run_gradcam(art: RunArtifacts, p: Mapping[str, Any]) -> dict[str, Any]:
    images = decode_array(p["images"], "images")
    model = art.model
    assert isinstance(model, CNN)
    task = art.task
    res = gradcam(model, images, task=task, layer=p.get("layer"), target=p.get("target"))
    out = res.outputs.astype(np.float64)
    probabilities: list[float] | None = None
    if task == "binary":
        p1 = expit(out[:, 0])
        probabilities = np.where(res.targets == 1, p1, 1.0 - p1).tolist()
    elif task == "multiclass":
        probabilities = softmax(out, axis=1)[np.arange(len(out)), res.targets].tolist()
    n_overlays = min(len(images), MAX_OVERLAYS) if p.get("overlays", True) else 0
    evidence = res.raw.reshape(len(images), -1).max(axis=1) > 0
    return {
        "task": task,
        "layer": res.layer,
        "layers": model.conv_layers(),
        "explained": {
            "binary": "logit of the target class (class 1: the logit, class 0: its negation)",
            "multiclass": "logit of the target class",
            "regression": "the predicted value",
        }[task],
        "normalization": "ReLU(Σ_k α_k A_k), bilinear to H×W, divided by its maximum",
        "n_images": len(images),
        "image_shape": list(images.shape[1:]),
        "map_shape": list(res.raw.shape[1:]),
        "targets": None if task == "regression" else res.targets.tolist(),
        "outputs": out.tolist(),
        "probabilities": probabilities,
        # an all-zero map: the layer holds no evidence *for* the class (Grad-CAM's ReLU)
        "has_evidence": evidence.tolist(),
        "peaks": [pk if ok else None for pk, ok in zip(res.peaks.tolist(), evidence, strict=True)],
        "maps": np.round(res.maps.astype(np.float64), MAP_DECIMALS).tolist(),
        "overlays": [overlay_b64(images[i], res.maps[i]) for i in range(n_overlays)],
        "overlay_media_type": "image/png",
        "plot_images": encode_array(images[:MAX_PANELS]),
    }


register_kind(
    InspectionKind(
        "gradcam", GradCAMRequest, check_gradcam, run_gradcam, modalities=frozenset({"image"})
    )
)
inspection_plots.register_drawer("gradcam", gradcam_figure)
