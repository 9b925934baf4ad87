"""IoU-family box losses against torchvision's reference values and its formulas in plain torch."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.losses import BOX_FORMATS, LOSSES, ciou, compute_loss, diou, giou, iou
from app.errors import InvalidInput

FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "box_losses.json"
MISSING = (
    f"reference fixture {FIXTURE} is missing: the box-loss tests compare against values "
    "computed with torchvision 0.29.1 kept in shared/fixtures beside the repository "
    "(CI copies shared/ next to its clone)"
)
REDUCTIONS = ("none", "mean", "sum")
LOSS_FNS = {"iou": iou, "giou": giou, "diou": diou, "ciou": ciou}


def _fixture_cases(key: str) -> list[Any]:
    if not FIXTURE.is_file():
        return [pytest.param(None, id="fixture-missing")]
    cases = json.loads(FIXTURE.read_text())[key]
    return [pytest.param(c, id=c.get("case", str(i))) for i, c in enumerate(cases)]


def _require(case: dict[str, Any] | None) -> dict[str, Any]:
    if case is None:
        pytest.fail(MISSING)
    return case


# ---------------------------------------------------------------- torchvision, written out
# torchvision is not installable here; these are torchvision.ops' formulas (boxes.py,
# _utils.py, giou_loss.py, diou_loss.py, ciou_loss.py) operation for operation.


def _upcast_non_float(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _upcast(t: torch.Tensor) -> torch.Tensor:
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t if t.dtype in (torch.int32, torch.int64) else t.int()


def tv_box_convert(boxes: torch.Tensor, in_fmt: str) -> torch.Tensor:
    if in_fmt == "xywh":
        x, y, w, h = boxes.unbind(-1)
        return torch.stack([x, y, x + w, y + h], dim=-1)
    if in_fmt == "cxcywh":
        cx, cy, w, h = boxes.unbind(-1)
        return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)
    return boxes


def tv_box_area(boxes: torch.Tensor) -> torch.Tensor:
    boxes = _upcast(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def tv_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    area1, area2 = tv_box_area(boxes1), tv_box_area(boxes2)
    lt = torch.max(boxes1[:, None, :2], boxes2[:, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = _upcast(rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    union = area1[:, None] + area2 - inter
    return inter / union


def _loss_inter_union(boxes1: torch.Tensor, boxes2: torch.Tensor):
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    xkis1, ykis1 = torch.max(x1, x1g), torch.max(y1, y1g)
    xkis2, ykis2 = torch.min(x2, x2g), torch.min(y2, y2g)
    intsctk = torch.zeros_like(x1)
    mask = (ykis2 > ykis1) & (xkis2 > xkis1)
    intsctk[mask] = (xkis2[mask] - xkis1[mask]) * (ykis2[mask] - ykis1[mask])
    unionk = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intsctk
    return intsctk, unionk


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    return loss.sum() if reduction == "sum" else loss


def tv_generalized_box_iou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = _upcast_non_float(boxes1), _upcast_non_float(boxes2)
    intsctk, unionk = _loss_inter_union(boxes1, boxes2)
    iouk = intsctk / (unionk + eps)
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    xc1, yc1 = torch.min(x1, x1g), torch.min(y1, y1g)
    xc2, yc2 = torch.max(x2, x2g), torch.max(y2, y2g)
    area_c = (xc2 - xc1) * (yc2 - yc1)
    miouk = iouk - ((area_c - unionk) / (area_c + eps))
    return _reduce(1 - miouk, reduction)


def _diou_iou_loss(boxes1, boxes2, eps=1e-7):
    intsct, union = _loss_inter_union(boxes1, boxes2)
    iou_ = intsct / (union + eps)
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    xc1, yc1 = torch.min(x1, x1g), torch.min(y1, y1g)
    xc2, yc2 = torch.max(x2, x2g), torch.max(y2, y2g)
    diagonal_distance_squared = ((xc2 - xc1) ** 2) + ((yc2 - yc1) ** 2) + eps
    x_p, y_p = (x2 + x1) / 2, (y2 + y1) / 2
    x_g, y_g = (x1g + x2g) / 2, (y1g + y2g) / 2
    centers_distance_squared = ((x_p - x_g) ** 2) + ((y_p - y_g) ** 2)
    loss = 1 - iou_ + (centers_distance_squared / diagonal_distance_squared)
    return loss, iou_


def tv_distance_box_iou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = _upcast_non_float(boxes1), _upcast_non_float(boxes2)
    loss, _ = _diou_iou_loss(boxes1, boxes2, eps=eps)
    return _reduce(loss, reduction)


def tv_complete_box_iou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    boxes1, boxes2 = _upcast_non_float(boxes1), _upcast_non_float(boxes2)
    diou_loss, iou_ = _diou_iou_loss(boxes1, boxes2, eps)
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    w_pred, h_pred = x2 - x1, y2 - y1
    w_gt, h_gt = x2g - x1g, y2g - y1g
    v = (4 / (torch.pi**2)) * torch.pow((torch.atan(w_gt / h_gt) - torch.atan(w_pred / h_pred)), 2)
    with torch.no_grad():
        alpha = v / (1 - iou_ + v + eps)
    return _reduce(diou_loss + alpha * v, reduction)


def reference(name: str, pred: np.ndarray, true: np.ndarray, fmt: str, eps: float) -> np.ndarray:
    """Unreduced torchvision loss of xyxy-converted boxes, with evalserve's NaN policy applied."""
    p = tv_box_convert(torch.from_numpy(np.asarray(pred, dtype=np.float64)), fmt)
    t = tv_box_convert(torch.from_numpy(np.asarray(true, dtype=np.float64)), fmt)
    if name == "iou" and eps == 0:
        out = (1 - tv_box_iou(p, t).diagonal()).numpy()
        return np.where(np.isnan(out), 1.0, out)  # two zero-area boxes: IoU 0
    if name == "iou":  # the IoU term of the other three losses
        inter, union = _loss_inter_union(p, t)
        return (1 - inter / (union + eps)).numpy()
    if name == "giou":
        return tv_generalized_box_iou_loss(p, t, eps=eps).numpy()
    d = tv_distance_box_iou_loss(p, t, eps=eps).numpy()
    if name == "diou":
        return d
    c = tv_complete_box_iou_loss(p, t, eps=eps).numpy()
    return np.where(np.isnan(c), d, c)  # a point box has no aspect term: CIoU = DIoU


# ---------------------------------------------------------------- the torchvision fixture


def test_reference_fixture_is_present_and_covers_the_degenerate_cases():
    assert FIXTURE.is_file(), MISSING
    data = json.loads(FIXTURE.read_text())
    names = {c["case"] for c in data["box_losses"]}
    assert {"identical", "disjoint", "touching_edge", "zero_area_pred"} <= names
    assert data["sigmoid_focal_loss"]


@pytest.mark.parametrize("case", _fixture_cases("box_losses"))
@pytest.mark.parametrize("name", ["giou", "diou", "ciou"])
def test_giou_diou_ciou_equal_torchvision_on_every_fixture_case(case, name):
    case = _require(case)
    fn = LOSS_FNS[name]
    kw = {"box_format": case["box_format"], "eps": case["eps"]}
    expected = case["expected"][name]
    per_box = np.asarray(expected["none"], dtype=np.float64)
    got = fn(case["target"], case["pred"], reduction="none", **kw)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64 and np.isfinite(got).all()
    finite = np.isfinite(per_box)
    np.testing.assert_allclose(got[finite], per_box[finite], rtol=1e-12, atol=1e-12)
    if finite.all():
        for reduction in ("mean", "sum"):
            value = fn(case["target"], case["pred"], reduction=reduction, **kw)
            assert value == pytest.approx(expected[reduction], rel=1e-12, abs=1e-12)
    else:  # torchvision's NaN (CIoU of a point box): our policy is CIoU = DIoU there
        assert name == "ciou"
        want_diou = np.asarray(case["expected"]["diou"]["none"], dtype=np.float64)
        np.testing.assert_allclose(got[~finite], want_diou[~finite], rtol=1e-12, atol=1e-12)
        assert fn(case["target"], case["pred"], reduction="sum", **kw) == pytest.approx(
            float(got.sum()), rel=1e-12
        )


@pytest.mark.parametrize("case", _fixture_cases("box_losses"))
def test_iou_loss_is_one_minus_torchvision_box_iou_on_every_fixture_case(case):
    case = _require(case)
    box_iou = np.asarray(case["iou"], dtype=np.float64)
    # torchvision's NaN is the IoU of two zero-area boxes: IoU 0 (loss 1) by our policy
    want = np.where(np.isnan(box_iou), 1.0, 1.0 - box_iou)
    fmt = case["box_format"]
    got = iou(case["target"], case["pred"], reduction="none", box_format=fmt)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert iou(case["target"], case["pred"], box_format=fmt) == pytest.approx(want.mean(), 1e-12)
    assert iou(case["target"], case["pred"], reduction="sum", box_format=fmt) == pytest.approx(
        want.sum(), rel=1e-12
    )


@pytest.mark.parametrize("case", _fixture_cases("box_losses"))
def test_plain_torch_reference_reproduces_the_fixture(case):
    """The formulas written out above are torchvision's: they give the fixture's values."""
    case = _require(case)
    p = torch.tensor(case["pred"], dtype=torch.float64)
    t = torch.tensor(case["target"], dtype=torch.float64)
    got = {
        "giou": tv_generalized_box_iou_loss(p, t, eps=case["eps"]),
        "diou": tv_distance_box_iou_loss(p, t, eps=case["eps"]),
        "ciou": tv_complete_box_iou_loss(p, t, eps=case["eps"]),
    }
    for name, value in got.items():
        np.testing.assert_allclose(
            value.numpy(), case["expected"][name]["none"], rtol=1e-12, equal_nan=True
        )
    np.testing.assert_allclose(
        tv_box_iou(p, t).diagonal().numpy(), case["iou"], rtol=1e-12, equal_nan=True
    )


# ---------------------------------------------------------------- randomized, all formats


def _random_pairs(rng: np.random.Generator, n: int, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """Boxes in ``fmt``: overlapping, disjoint, nested, some lines and points, a few identical."""
    xy = rng.uniform(-20, 60, (n, 2))
    wh = rng.uniform(0, 25, (n, 2))
    xy_p = xy + rng.normal(0, 6, (n, 2))
    wh_p = wh * rng.uniform(0.3, 1.7, (n, 2))
    wh[: n // 8, rng.integers(0, 2)] = 0.0  # lines
    wh_p[n // 8 : n // 6] = 0.0  # points
    xy_p[-3:], wh_p[-3:] = xy[-3:], wh[-3:]  # identical
    if fmt == "xyxy":
        return np.hstack([xy, xy + wh]), np.hstack([xy_p, xy_p + wh_p])
    if fmt == "cxcywh":
        return np.hstack([xy + wh / 2, wh]), np.hstack([xy_p + wh_p / 2, wh_p])
    return np.hstack([xy, wh]), np.hstack([xy_p, wh_p])


@pytest.mark.parametrize("fmt", BOX_FORMATS)
@pytest.mark.parametrize("name", ["iou", "giou", "diou", "ciou"])
@pytest.mark.parametrize("eps", [None, 1e-3])
def test_losses_equal_torchvision_formulas_on_random_boxes(fmt, name, eps):
    rng = np.random.default_rng(sum(map(ord, fmt + name)))
    true, pred = _random_pairs(rng, 200, fmt)
    w = rng.uniform(0, 3, 200)
    if eps is None:
        kw, ref_eps = {}, LOSSES[name].params["eps"]
    else:
        kw, ref_eps = {"eps": eps}, eps
    want = reference(name, pred, true, fmt, ref_eps)
    fn = LOSS_FNS[name]
    got = fn(true, pred, reduction="none", box_format=fmt, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    assert fn(true, pred, box_format=fmt, **kw) == pytest.approx(want.mean(), rel=1e-12)
    assert fn(true, pred, reduction="sum", box_format=fmt, **kw) == pytest.approx(
        want.sum(), rel=1e-12
    )
    weighted = fn(true, pred, sample_weight=w, box_format=fmt, **kw)
    assert weighted == pytest.approx((w * want).sum() / w.sum(), rel=1e-12)


def test_eps_zero_matches_torchvision_wherever_it_is_defined():
    true, pred = _random_pairs(np.random.default_rng(10), 200, "xyxy")
    for name in ("giou", "diou", "ciou"):
        want = reference(name, pred, true, "xyxy", 0.0)
        got = LOSS_FNS[name](true, pred, eps=0.0, reduction="none")
        defined = np.isfinite(want)
        assert defined.sum() > 150
        np.testing.assert_allclose(got[defined], want[defined], rtol=1e-12, atol=1e-13)
        assert np.isfinite(got).all()


def _from_xywh(b: np.ndarray, fmt: str) -> np.ndarray:
    xy, wh = b[:, :2], b[:, 2:]
    return {"xywh": b, "xyxy": np.hstack([xy, xy + wh]), "cxcywh": np.hstack([xy + wh / 2, wh])}[
        fmt
    ]


_coord = st.integers(0, 6)
_size = st.integers(0, 3)


@settings(max_examples=200, deadline=None)
@given(
    boxes=st.lists(st.tuples(*[_coord, _coord, _size, _size] * 2), min_size=1, max_size=8),
    fmt=st.sampled_from(BOX_FORMATS),
    name=st.sampled_from(["iou", "giou", "diou", "ciou"]),
)  # fmt: skip
def test_small_integer_boxes_touching_nested_and_degenerate_match_torchvision(boxes, fmt, name):
    """Ties everywhere: shared edges, identical boxes, lines and points on a small grid."""
    b = np.asarray(boxes, dtype=np.float64)
    true, pred = _from_xywh(b[:, :4], fmt), _from_xywh(b[:, 4:], fmt)
    eps = LOSSES[name].params["eps"]
    assert isinstance(eps, float)
    got = LOSS_FNS[name](true, pred, reduction="none", box_format=fmt)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, reference(name, pred, true, fmt, eps), rtol=1e-12, atol=1e-13)


def test_box_formats_describe_the_same_boxes():
    rng = np.random.default_rng(11)
    xy, wh = rng.uniform(0, 10, (30, 2)), rng.uniform(0.5, 4, (30, 2))
    xy_p, wh_p = xy + rng.normal(0, 1, (30, 2)), wh * rng.uniform(0.5, 1.5, (30, 2))
    forms = {
        "xyxy": (np.hstack([xy, xy + wh]), np.hstack([xy_p, xy_p + wh_p])),
        "xywh": (np.hstack([xy, wh]), np.hstack([xy_p, wh_p])),
        "cxcywh": (np.hstack([xy + wh / 2, wh]), np.hstack([xy_p + wh_p / 2, wh_p])),
    }
    for fn in LOSS_FNS.values():
        values = [fn(t, p, box_format=f, reduction="none") for f, (t, p) in forms.items()]
        np.testing.assert_allclose(values[1], values[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(values[2], values[0], rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- NaN policy, hand-computed


def test_iou_of_two_zero_area_boxes_is_zero_even_for_the_same_point():
    points = [[3.0, 3.0, 3.0, 3.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 5.0, 0.0]]
    same = iou(points, points, reduction="none")
    np.testing.assert_array_equal(same, [1.0, 1.0, 1.0])  # loss 1: IoU 0, never NaN
    # and the other three losses of torchvision agree: eps turns 0/0 into 0/eps = 0
    for fn in (giou, diou, ciou):
        np.testing.assert_allclose(fn(points, points, reduction="none"), 1.0, rtol=1e-15)
    assert iou([[3, 3, 3, 3]], [[4, 4, 4, 4]]) == 1.0
    assert iou([[0, 0, 10, 10]], [[3, 3, 3, 3]]) == 1.0  # a point inside a box


def test_ratios_with_a_zero_denominator_are_zero_when_eps_is_zero():
    point = [[2.0, 2.0, 2.0, 2.0]]
    assert iou(point, point, eps=0.0) == 1.0
    assert giou(point, point, eps=0.0) == 1.0  # 1 - (0 - 0/0): 0/0 taken as 0
    assert diou(point, point, eps=0.0) == 1.0
    assert ciou(point, point, eps=0.0) == 1.0
    assert ciou([[0, 0, 2, 2]], [[0, 0, 2, 2]], eps=0.0) == 0.0  # v = 0 and IoU = 1: a = 0/0


def test_ciou_with_a_point_box_drops_the_aspect_term():
    box, point = [[0.0, 0.0, 10.0, 10.0]], [[3.0, 3.0, 3.0, 3.0]]
    assert ciou(box, point) == diou(box, point) == pytest.approx(1 + 0.04, abs=1e-9)
    assert ciou(point, box) == diou(point, box)


def test_ciou_with_a_line_box_uses_atan_of_infinity_as_torchvision():
    box, line = [[0.0, 0.0, 4.0, 2.0]], [[1.0, 1.0, 3.0, 1.0]]  # h = 0 < w: angle π/2
    iou_ = 0.0
    d = diou(box, line)
    v = 4 / math.pi**2 * (math.atan(2.0) - math.pi / 2) ** 2
    want = d + v / (1 - iou_ + v + 1e-7) * v
    assert ciou(box, line) == pytest.approx(want, rel=1e-14)
    assert ciou(box, line) == pytest.approx(float(reference("ciou", line, box, "xyxy", 1e-7)[0]))


def test_hand_computed_values():
    a, b = [[0.0, 0.0, 2.0, 2.0]], [[1.0, 0.0, 3.0, 2.0]]  # I = 2, U = 6, C = 3 x 2
    assert iou(a, b) == pytest.approx(1 - 2 / 6, rel=1e-15)
    assert giou(a, b, eps=0.0) == pytest.approx(1 - 2 / 6 + 0 / 6, rel=1e-15)
    assert diou(a, b, eps=0.0) == pytest.approx(1 - 2 / 6 + 1 / 13, rel=1e-15)
    assert ciou(a, b, eps=0.0) == pytest.approx(1 - 2 / 6 + 1 / 13, rel=1e-15)  # same aspect
    c = [[0.0, 0.0, 4.0, 1.0]]  # I = 2, U = 6, centres (1, 1) and (2, 0.5), C = 4 x 2
    v = 4 / math.pi**2 * (math.atan(4.0) - math.atan(1.0)) ** 2
    want = 1 - 2 / 6 + 1.25 / 20 + v / (1 - 2 / 6 + v) * v
    assert ciou(a, c, eps=0.0) == pytest.approx(want, rel=1e-14)


def test_zero_area_boxes_are_valid_and_touching_boxes_do_not_overlap():
    assert iou([[0, 0, 1, 1]], [[1, 0, 2, 1]]) == 1.0
    assert giou([[0, 0, 1, 1]], [[1, 0, 2, 1]]) == pytest.approx(1.0, abs=1e-12)


# ---------------------------------------------------------------- invalid input


def _err(fn: Any, *args: Any, **kw: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as err:
        fn(*args, **kw)
    return err.value


GOOD = [[0.0, 0.0, 1.0, 1.0]] * 5


@pytest.mark.parametrize("fn", list(LOSS_FNS.values()))
def test_boxes_with_negative_width_or_height_name_the_field_and_the_box(fn):
    bad = [list(b) for b in GOOD]
    bad[3] = [2.0, 0.0, 1.0, 1.0]
    e = _err(fn, GOOD, bad)
    assert e.field == "y_pred" and e.detail.startswith("y_pred[3] has x2 < x1")
    bad[1] = [0.0, 2.0, 1.0, 1.0]
    e = _err(fn, bad, GOOD)
    assert e.field == "y_true" and e.detail.startswith("y_true[1] has y2 < y1")
    e = _err(fn, GOOD, [[0, 0, 1, 1]] * 4 + [[5, 5, -1, 2]], box_format="xywh")
    assert e.field == "y_pred" and e.detail.startswith("y_pred[4] has w < 0")
    e = _err(fn, [[0, 0, 1, -2], *GOOD[1:]], GOOD, box_format="cxcywh")
    assert e.field == "y_true" and e.detail.startswith("y_true[0] has h < 0")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_coordinates_name_the_field_and_the_box(value):
    bad = [list(b) for b in GOOD]
    bad[2][1] = value
    e = _err(giou, GOOD, bad)
    assert e.field == "y_pred" and e.detail.startswith("y_pred[2] is ")
    e = _err(ciou, bad, GOOD)
    assert e.field == "y_true" and e.detail.startswith("y_true[2] is ")


@pytest.mark.parametrize(
    ("y_true", "y_pred", "kw", "field"),
    [
        (GOOD, [[0, 0, 1]] * 5, {}, "y_pred"),
        ([0, 0, 1, 1], [0, 0, 1, 1], {}, "y_true"),
        ([], [], {}, "y_true"),
        (GOOD, GOOD[:4], {}, "y_pred"),
        (GOOD, [["a", 0, 1, 1]] * 5, {}, "y_pred"),
        (GOOD, GOOD, {"box_format": "xyzw"}, "box_format"),
        (GOOD, GOOD, {"box_format": None}, "box_format"),
        (GOOD, GOOD, {"eps": -1e-7}, "eps"),
        (GOOD, GOOD, {"eps": math.nan}, "eps"),
        (GOOD, GOOD, {"reduction": "avg"}, "reduction"),
        (GOOD, GOOD, {"sample_weight": [1.0] * 4}, "sample_weight"),
    ],
)
def test_invalid_inputs_and_parameters_name_their_field(y_true, y_pred, kw, field):
    for name in LOSS_FNS:
        assert _err(compute_loss, name, y_true, y_pred, **kw).field == field


def test_coordinates_too_large_to_square_are_rejected_rather_than_nan():
    e = _err(diou, [[-1e300, 0.0, 1e300, 1.0]], [[0.0, 0.0, 1e300, 1.0]])
    assert e.field == "y_pred" and "y_pred[0]" in e.detail and "overflow" in e.detail
    assert giou([[-1e300, 0.0, 1e300, 1.0]], [[0.0, 0.0, 1e300, 1.0]]) == pytest.approx(0.5)


def test_registry_describes_the_box_losses():
    for name in LOSS_FNS:
        spec = LOSSES[name]
        assert spec.tasks == {"detection"} and spec.input == "box"
        assert spec.params["box_format"] == "xyxy"
    assert LOSSES["iou"].params["eps"] == 0.0 and LOSSES["ciou"].params["eps"] == 1e-7
    # identical boxes: 1 - 1 / (1 + eps) each
    assert compute_loss("ciou", GOOD, GOOD, reduction="sum", box_format="cxcywh") == pytest.approx(
        5 * (1 - 1 / (1 + 1e-7)), rel=1e-6
    )
