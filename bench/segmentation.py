"""Segmentation metrics on 16 masks of 1024 × 1024 with 20 classes, side by side in one run.

- evalserve core: ``segmentation_report`` (checks, blockwise int64 confusion, every metric);
- scikit-learn: ``confusion_matrix(labels=range(20))`` on the flattened non-ignored pixels (the
  flattening and masking are not timed, in scikit-learn's favour);
- evalserve over HTTP: the same masks as an ``.npz`` body (uint8, ``np.savez``) to
  ``POST /v1/evaluations?task=segmentation&num_classes=20&ignore_index=255``.

Every path must give the same matrix. Run: ``python -m bench.segmentation [n_masks]``.
"""

from __future__ import annotations

import io
import sys
import tempfile
from functools import partial

import httpx2 as httpx
import numpy as np
from sklearn.metrics import confusion_matrix

from app.core.segmentation import segmentation_report
from bench._server import free_port, start_server
from bench._timing import best_of

N_CLASSES = 20
SIDE = 1024
IGNORE = 255


def make_masks(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Blocky ground truth (8 × 8 tiles), 5% of pixels ignored; predictions 80% right."""
    rng = np.random.default_rng(seed)
    tiles = rng.integers(0, N_CLASSES, (n, SIDE // 8, SIDE // 8), dtype=np.uint8)
    y_true = np.repeat(np.repeat(tiles, 8, axis=1), 8, axis=2)
    noise = rng.integers(0, N_CLASSES, y_true.shape, dtype=np.uint8)
    y_pred = np.where(rng.random(y_true.shape, dtype=np.float32) < 0.8, y_true, noise)
    y_true[rng.random(y_true.shape, dtype=np.float32) < 0.05] = IGNORE
    return y_true, y_pred


def post(client: httpx.Client, body: bytes) -> dict:
    res = client.post(
        f"/v1/evaluations?task=segmentation&num_classes={N_CLASSES}&ignore_index={IGNORE}",
        content=body,
        headers={"content-type": "application/x-npz"},
    )
    res.raise_for_status()
    return dict(res.json())


def main(n: int) -> None:
    y_true, y_pred = make_masks(n)
    keep = y_true.ravel() != IGNORE
    flat_true, flat_pred = y_true.ravel()[keep], y_pred.ravel()[keep]
    labels = list(range(N_CLASSES))

    t_core, report = best_of(
        partial(segmentation_report, y_true, y_pred, N_CLASSES, ignore_index=IGNORE)
    )
    t_sk, ref = best_of(partial(confusion_matrix, flat_true, flat_pred, labels=labels))
    sink = io.BytesIO()
    np.savez(sink, y_true=y_true, y_pred=y_pred)
    body = sink.getvalue()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(port, tmp)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
                t_http, via_http = best_of(partial(post, client, body))
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    np.testing.assert_array_equal(report["confusion_matrix"]["counts"], ref)
    np.testing.assert_array_equal(via_http["confusion_matrix"]["counts"], ref)
    assert via_http["metrics"] == {k: float(v) for k, v in report["metrics"].items()}
    pixels = y_true.size
    print(
        f"{n} masks of {SIDE}x{SIDE}, {N_CLASSES} classes: {pixels / 1e6:.1f} M pixels "
        f"({int(keep.sum()) / 1e6:.1f} M not ignored), .npz body {len(body) / 1e6:.1f} MB"
    )
    print(f"  sklearn confusion_matrix     {t_sk:7.3f} s")
    print(f"  evalserve core (all metrics) {t_core:7.3f} s   {t_sk / t_core:5.1f}x faster")
    print(
        f"  evalserve HTTP + .npz        {t_http:7.3f} s   {t_sk / t_http:5.1f}x faster, "
        f"{t_http / t_core:.2f}x the core"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 16)
