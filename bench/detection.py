"""COCO mAP on a generated COCO-val-sized set: pycocotools vs faster-coco-eval vs evalserve.

The set: 5,000 images, about 35k ground-truth boxes (1% crowd regions), 100 detections per
image, 80 classes, scores with ties. In one run, each on the same data:

(a) pycocotools: ``COCO`` + ``loadRes`` + ``COCOeval`` evaluate/accumulate/summarize (once);
(b) faster-coco-eval: the same calls on its classes (the engine evalserve uses);
(b') faster-coco-eval evaluate/accumulate/summarize alone, on COCO objects already built;
(c) evalserve in-process: the route's work without the socket — parse the JSON body (orjson),
    check the columns, build the COCO objects, evaluate, AP per class, PR curves and the
    detection confusion matrix; (c2) the same for the per-image form of the same set (xyxy);
(d) evalserve over HTTP: the same JSON body posted to a real ``evalserve serve`` (uvicorn) on
    loopback, response read.

Checks that (a), (b), (c) and (d) give the same 12 COCO numbers (1e-9), then prints the times
and the ratios c/b and d/b (target <= 1.3) and a/d.
Run: ``python -m bench.detection [n_images]`` (default 5000).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import httpx2 as httpx
import numpy as np
import orjson

from app.services.detection import compute_report, parse_body
from bench._server import free_port, start_server
from bench._timing import row

T = TypeVar("T")

SUMMARY = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_1",
           "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large"]  # fmt: skip


def make_data(
    n_images: int = 5000, n_classes: int = 80, per_image: int = 100, seed: int = 0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A COCO ground-truth dataset and results list shaped like COCO val2017 + a detector."""
    rng = np.random.default_rng(seed)
    n_obj = rng.poisson(7.0, n_images)
    g_img = np.repeat(np.arange(1, n_images + 1), n_obj)
    n_gt = g_img.size
    wh = np.exp(rng.uniform(np.log(4), np.log(400), (n_gt, 2)))  # small, medium, large
    xy = rng.uniform(0, 1, (n_gt, 2)) * np.maximum(640 - wh, 1)
    g_box = np.round(np.hstack([xy, wh]), 2)
    g_cat = rng.integers(1, n_classes + 1, n_gt)
    crowd = rng.random(n_gt) < 0.01
    # Detections: up to 3 jittered copies of each object (20% with a wrong class), the rest
    # of the image's 100 are background boxes with lower scores.
    copies = np.minimum(rng.integers(0, 4, n_gt), per_image // 7)
    src = np.repeat(np.arange(n_gt), copies)
    jitter = rng.normal(0, 0.12, (src.size, 4))
    d_box = g_box[src] * np.hstack([np.ones((src.size, 2)), np.abs(1 + jitter[:, 2:])])
    d_box[:, :2] += jitter[:, :2] * g_box[src, 2:]
    d_cat = np.where(rng.random(src.size) < 0.8, g_cat[src], rng.integers(1, n_classes + 1))
    d_img, d_score = g_img[src], np.round(rng.random(src.size), 2)
    per = np.bincount(d_img, minlength=n_images + 1)[1:]
    n_bg = np.maximum(per_image - per, 0)
    b_img = np.repeat(np.arange(1, n_images + 1), n_bg)
    b_wh = np.exp(rng.uniform(np.log(4), np.log(400), (b_img.size, 2)))
    b_box = np.hstack([rng.uniform(0, 1, (b_img.size, 2)) * np.maximum(640 - b_wh, 1), b_wh])
    images = [{"id": i, "width": 640, "height": 640} for i in range(1, n_images + 1)]
    annotations = [
        {"id": n, "image_id": i, "category_id": c, "bbox": b, "area": b[2] * b[3], "iscrowd": z}
        for n, (i, c, b, z) in enumerate(
            zip(
                g_img.tolist(),
                g_cat.tolist(),
                g_box.tolist(),
                crowd.astype(int).tolist(),
                strict=True,
            ),
            start=1,
        )
    ]
    results = [
        {"image_id": i, "category_id": c, "bbox": np.round(b, 2).tolist(), "score": s}
        for i, c, b, s in zip(
            np.concatenate([d_img, b_img]).tolist(),
            np.concatenate([d_cat, rng.integers(1, n_classes + 1, b_img.size)]).tolist(),
            np.vstack([d_box, b_box]),
            np.concatenate([d_score, np.round(rng.random(b_img.size) * 0.6, 2)]).tolist(),
            strict=True,
        )
    ]
    categories = [{"id": c, "name": f"class-{c}"} for c in range(1, n_classes + 1)]
    gt = {"images": images, "annotations": annotations, "categories": categories}
    return gt, results


def as_images(gt: dict[str, Any], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same set in the per-image form, boxes ``xyxy``."""
    entries: dict[int, dict[str, Any]] = {}
    for im in gt["images"]:
        entries[im["id"]] = {
            "image_id": im["id"],
            "ground_truth": {"boxes": [], "labels": [], "iscrowd": [], "area": []},
            "predictions": {"boxes": [], "labels": [], "scores": []},
        }
    for a in gt["annotations"]:
        truth = entries[a["image_id"]]["ground_truth"]
        x, y, w, h = a["bbox"]
        truth["boxes"].append([x, y, x + w, y + h])
        truth["labels"].append(a["category_id"])
        truth["iscrowd"].append(a["iscrowd"])
        truth["area"].append(a["area"])
    for d in results:
        pred = entries[d["image_id"]]["predictions"]
        x, y, w, h = d["bbox"]
        pred["boxes"].append([x, y, x + w, y + h])
        pred["labels"].append(d["category_id"])
        pred["scores"].append(d["score"])
    return list(entries.values())


def run_pycocotools(gt: dict[str, Any], results: list[dict[str, Any]]) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        engine = COCOeval(coco, coco.loadRes(results), "bbox")
        engine.evaluate()
        engine.accumulate()
        engine.summarize()
    return [float(v) for v in engine.stats]


def _faster(gt: Any, results: Any) -> Any:
    from faster_coco_eval import COCO, COCOeval_faster

    coco = COCO(gt)
    engine = COCOeval_faster(coco, coco.loadRes(results), "bbox", print_function=_quiet)
    return engine


def run_faster(gt: dict[str, Any], results: list[dict[str, Any]]) -> list[float]:
    engine = _faster(gt, results)
    engine.evaluate()
    engine.accumulate()
    engine.summarize()
    return [float(v) for v in engine.stats]


def run_engine_only(engine: Any) -> list[float]:
    engine.evaluate()
    engine.accumulate()
    engine.summarize()
    return [float(v) for v in engine.stats]


def run_evalserve(body: bytes) -> list[float | None]:
    options, ds = parse_body(body, max_rows=50_000_000)
    report = compute_report(options, ds)
    return [report["metrics"][m] for m in SUMMARY]


def run_http(client: httpx.Client, body: bytes) -> list[float | None]:
    res = client.post(
        "/v1/detection-evaluations", content=body, headers={"content-type": "application/json"}
    )
    res.raise_for_status()
    metrics = res.json()["metrics"]
    return [metrics[m] for m in SUMMARY]


def _quiet(*_args: Any, **_kwargs: Any) -> None:
    pass


def _fresh(data: Any) -> Any:
    """The engines mutate their input (ids, areas, polygons): each run gets its own copy."""
    return orjson.loads(orjson.dumps(data))


def check_equal(name: str, got: list[float | None], ref: list[float]) -> None:
    for metric, value, want in zip(SUMMARY, got, ref, strict=True):
        value = -1.0 if value is None else value
        assert abs(value - want) <= 1e-9, (name, metric, value, want)


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) the server process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(fn: Callable[[], T], server: int | None = None) -> tuple[float, float, T]:
    """Wall and CPU seconds of one call (CPU of this process, plus the server's if given).

    On a shared machine wall time moves with the neighbours' load; CPU time much less.
    """
    cpu0, wall0 = time.process_time(), time.perf_counter()
    srv0 = server_cpu(server) if server else 0.0
    out = fn()
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0 + (server_cpu(server) - srv0 if server else 0.0)
    return wall, cpu, out


def main(n_images: int, repeat: int = 2) -> None:
    gt, results = make_data(n_images)
    body = orjson.dumps({"ground_truth": gt, "detections": results})
    print(
        f"{n_images} images, {len(gt['annotations'])} ground truths, {len(results)} detections, "
        f"{len(gt['categories'])} classes; JSON body {len(body) / 1e6:.1f} MB"
    )
    per_image = orjson.dumps({"images": as_images(gt, results)})
    best: dict[str, tuple[float, float]] = {}

    def keep(name: str, wall: float, cpu: float) -> None:
        old = best.get(name, (float("inf"), float("inf")))
        best[name] = (min(old[0], wall), min(old[1], cpu))

    wall, cpu, ref = timed(lambda: run_pycocotools(*_fresh((gt, results))))
    keep("a", wall, cpu)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(port, tmp)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
                for _ in range(repeat):  # interleaved, so a burst of load hits all alike
                    data = _fresh((gt, results))  # copying is not the engine's time
                    keep("b", *timed(partial(run_faster, *data))[:2])
                    engine = _faster(*_fresh((gt, results)))
                    keep("b'", *timed(partial(run_engine_only, engine))[:2])
                    wall, cpu, ours = timed(partial(run_evalserve, body))
                    keep("c", wall, cpu)
                    wall, cpu, ours2 = timed(partial(run_evalserve, per_image))
                    keep("c2", wall, cpu)
                    wall, cpu, via_http = timed(partial(run_http, client, body), proc.pid)
                    keep("d", wall, cpu)
                fast = run_faster(*_fresh((gt, results)))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    for name, got in (
        ("faster-coco-eval", fast),
        ("evalserve", ours),
        ("per-image", ours2),
        ("http", via_http),
    ):
        check_equal(name, got, ref)
    print("  12 COCO numbers equal to pycocotools within 1e-9 (b, c, c2, d)")
    labels = {
        "a": "(a) pycocotools",
        "b": "(b) faster-coco-eval (COCO+loadRes+eval)",
        "b'": "(b') faster-coco-eval eval only",
        "c": "(c) evalserve in-process (JSON bytes in)",
        "c2": "(c2) the same, per-image form (xyxy)",
        "d": "(d) evalserve over HTTP (uvicorn)",
    }
    widths = (44, 10, 10, 10, 10)
    print(row("", "wall s", "wall / b", "CPU s", "CPU / b", widths=widths))
    wall_b, cpu_b = best["b"]
    for key, label in labels.items():
        wall, cpu = best[key]
        print(row(label, f"{wall:.2f}", f"{wall / wall_b:.2f}", f"{cpu:.2f}", f"{cpu / cpu_b:.2f}",
                  widths=widths))  # fmt: skip
    print(
        f"  HTTP / engine: {best['d'][0] / wall_b:.2f} wall, {best['d'][1] / cpu_b:.2f} CPU "
        f"(target <= 1.3); pycocotools / HTTP: {best['a'][0] / best['d'][0]:.1f} wall"
    )


if __name__ == "__main__":
    main(int(float(sys.argv[1])) if len(sys.argv) > 1 else 5000)
