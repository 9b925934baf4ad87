"""Checks and blockwise reading of segmentation masks, for :mod:`app.core.segmentation`.

Masks are checked in two stages. :func:`check_masks` looks at shapes and dtypes only (cheap,
before any pass over the pixels). :func:`iter_blocks` then walks the pixels in blocks of at most
``chunk_pixels`` and checks the values of each block as it hands it out (class ids in range,
whole numbers, finite scores), so a batch of 4k × 4k masks is read once and, if C-contiguous,
never copied whole (a strided view, e.g. a transposed tensor, is copied once by ``reshape``).
Every error names the field and the first offending index, ``y_true[i][h][w]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.errors import InvalidInput

#: Pixels per block: 256 Ki pixels keep a block's temporaries (2 MiB as intp) in cache, which
#: measured faster than larger blocks; memory stays bounded whatever the masks' size.
DEFAULT_CHUNK_PIXELS = 1 << 18


@dataclass(frozen=True)
class Masks:
    """Checked masks: ``y_true`` (N, H, W) and ``y_pred`` (N, H, W) ids or (N, C, H, W) scores."""

    y_true: NDArray[Any]
    y_pred: NDArray[Any]
    num_classes: int
    ignore_index: int | None

    @property
    def scores(self) -> bool:
        """Whether ``y_pred`` holds class scores (argmax over axis 1) rather than class ids."""
        return self.y_pred.ndim == 4

    @property
    def n_images(self) -> int:
        return int(self.y_true.shape[0])

    @property
    def mask_shape(self) -> tuple[int, int]:
        return int(self.y_true.shape[1]), int(self.y_true.shape[2])


@dataclass(frozen=True)
class Block:
    """A block of pixels: images ``first .. first + n - 1``, flat pixels ``offset ..``.

    ``true`` holds integer class ids of shape ``(n, m)`` and ``pred`` predicted ids of the same
    shape, both in ``[0, C)`` except at the pixels of ``ignored`` (true id ``ignore_index``;
    None: no such pixel), where their values are arbitrary and must not be counted.
    """

    first: int
    offset: int
    true: NDArray[np.integer[Any]]
    pred: NDArray[np.integer[Any]]
    ignored: NDArray[np.bool_] | None


def _index(field: str, idx: tuple[int, ...]) -> str:
    return field + "".join(f"[{int(i)}]" for i in idx)


def _as_array(values: ArrayLike, field: str) -> NDArray[Any]:
    """``values`` as an array; a ragged nested list is refused naming the first odd mask."""
    try:
        arr = np.asarray(values)
    except ValueError:
        raise InvalidInput(_ragged(values, field), field=field) from None
    if arr.dtype.kind not in "biuf":
        raise InvalidInput(
            f"must hold numbers (class ids or scores), got dtype {arr.dtype}", field=field
        )
    return arr


def _ragged(values: Any, field: str) -> str:
    """Say which mask of a ragged nested list has a shape unlike the first one's."""
    first: tuple[int, ...] | None = None
    for i, mask in enumerate(values):
        try:
            shape = np.shape(mask)
        except ValueError:
            return f"{field}[{i}] is ragged: its rows have different lengths"
        if first is None:
            first = shape
        elif shape != first:
            return (
                f"{field}[{i}] has shape {shape} but {field}[0] has shape {first}: every mask "
                "must have the same shape"
            )
    return "masks have different shapes"


def check_masks(
    y_true: ArrayLike, y_pred: ArrayLike, num_classes: int, ignore_index: int | None
) -> Masks:
    """Check shapes, dtypes and the class count; values are checked by :func:`iter_blocks`.

    Raises
    ------
    InvalidInput
        Ragged or non-numeric masks, a wrong number of dimensions, masks of different shapes or
        counts, a class axis whose length is not ``num_classes``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer):
        raise InvalidInput(f"is {num_classes!r}: must be an integer", field="num_classes")
    if num_classes < 1:
        raise InvalidInput(f"is {num_classes}: must be at least 1", field="num_classes")
    if ignore_index is not None and (
        isinstance(ignore_index, bool) or not isinstance(ignore_index, int | np.integer)
    ):
        raise InvalidInput(f"is {ignore_index!r}: must be an integer", field="ignore_index")
    t = _as_array(y_true, "y_true")
    p = _as_array(y_pred, "y_pred")
    if t.ndim != 3:
        raise InvalidInput(f"must be 3-D (N, H, W) class ids, got shape {t.shape}", field="y_true")
    if p.ndim not in (3, 4):
        raise InvalidInput(
            f"must be 3-D (N, H, W) class ids or 4-D (N, C, H, W) class scores, got shape "
            f"{p.shape}",
            field="y_pred",
        )
    if t.size == 0:
        raise InvalidInput(f"has no pixels (shape {t.shape})", field="y_true")
    if p.shape[0] != t.shape[0]:
        raise InvalidInput(
            f"has {p.shape[0]} masks but y_true has {t.shape[0]}: one mask per image",
            field="y_pred",
        )
    if p.shape[-2:] != t.shape[1:]:
        raise InvalidInput(
            f"masks have shape {p.shape[-2:]} (y_pred shape {p.shape}) but y_true masks have "
            f"shape {t.shape[1:]}: every pixel needs a prediction",
            field="y_pred",
        )
    if p.ndim == 4 and p.shape[1] != num_classes:
        raise InvalidInput(
            f"has {p.shape[1]} class scores on axis 1 (shape {p.shape}) but num_classes is "
            f"{num_classes}",
            field="y_pred",
        )
    return Masks(t, p, int(num_classes), None if ignore_index is None else int(ignore_index))


def _blocks(n: int, pixels: int, chunk: int) -> Iterator[tuple[slice, slice]]:
    """(image slice, flat pixel slice) pairs covering ``n`` masks of ``pixels`` pixels."""
    if pixels <= chunk:
        step = max(1, chunk // pixels)
        for i in range(0, n, step):
            yield slice(i, min(i + step, n)), slice(0, pixels)
    else:
        for i in range(n):
            for j in range(0, pixels, chunk):
                yield slice(i, i + 1), slice(j, min(j + chunk, pixels))


def _raise_at(
    bad: NDArray[np.bool_],
    values: NDArray[Any],
    field: str,
    first: int,
    offset: int,
    width: int,
    why: str,
) -> None:
    """Raise naming ``field[i][h][w]`` of the first set pixel of a ``(n, m)`` block."""
    k, j = np.unravel_index(int(np.argmax(bad)), bad.shape)
    h, w = divmod(offset + int(j), width)
    where = _index(field, (first + int(k), h, w))
    raise InvalidInput(f"{where} is {values[k, j].item()!r}: {why}", field=field)


def _ids(
    block: NDArray[Any],
    field: str,
    num_classes: int,
    exempt: NDArray[np.bool_] | None,
    place: tuple[int, int, int],
) -> NDArray[np.integer[Any]]:
    """Check a block of class ids: whole and in ``[0, C)`` except at the ``exempt`` pixels.

    Integer blocks come back as they are (no copy; values at exempt pixels untouched), float
    blocks as int64 with the exempt pixels set to 0.
    """
    first, offset, width = place
    if block.dtype.kind == "f":
        bad = ~np.isfinite(block) | (block != np.round(block))
        if exempt is not None:
            bad &= ~exempt
        if bad.any():
            hint = " (post class scores as (N, C, H, W))" if field == "y_pred" else ""
            _raise_at(bad, block, field, first, offset, width, "class ids must be whole" + hint)
        if exempt is not None:  # NaN or fractions at ignored pixels are not looked at
            block = np.where(exempt, 0.0, block)
    lo, hi = block.min(), block.max()
    if lo < 0 or hi >= num_classes:
        bad = (block < 0) | (block >= num_classes)
        if exempt is not None:
            bad &= ~exempt
        if bad.any():
            why = f"class ids must lie in [0, {num_classes}) (num_classes={num_classes})" + (
                "" if field == "y_pred" else " or equal ignore_index"
            )
            _raise_at(bad, block, field, first, offset, width, why)
    return block.astype(np.int64) if block.dtype.kind == "f" else block


def iter_blocks(masks: Masks, chunk_pixels: int = DEFAULT_CHUNK_PIXELS) -> Iterator[Block]:
    """Checked blocks of class ids, true and predicted, covering every pixel once.

    ``y_true`` ids must be whole numbers in ``[0, C)`` or equal ``ignore_index``. Predicted ids
    (posted, or the argmax over axis 1 of finite scores, the first maximum on ties, as
    ``torch.argmax``) must lie in ``[0, C)`` at every pixel that is not ignored; predictions at
    ignored pixels are not checked.
    """
    t, p, c = masks.y_true, masks.y_pred, masks.num_classes
    n, (height, width) = masks.n_images, masks.mask_shape
    pixels = height * width
    t2 = t.reshape(n, pixels)
    p2 = p.reshape(n, c, pixels) if masks.scores else p.reshape(n, pixels)
    # A block of scores holds C values per pixel: fewer pixels keep its memory bounded.
    chunk = max(1, chunk_pixels // c) if masks.scores else max(1, chunk_pixels)
    for images, span in _blocks(n, pixels, chunk):
        place = (images.start, span.start, width)
        true = t2[images, span]
        ignored = None
        if masks.ignore_index is not None:
            hit = true == masks.ignore_index
            ignored = hit if hit.any() else None
        true_ids = _ids(true, "y_true", c, ignored, place)
        if masks.scores:
            scores = p2[images, :, span]
            if scores.dtype.kind == "f" and not np.isfinite(scores).all():
                k, cls, j = np.unravel_index(int(np.argmax(~np.isfinite(scores))), scores.shape)
                h, w = divmod(span.start + int(j), width)
                where = _index("y_pred", (images.start + int(k), int(cls), h, w))
                raise InvalidInput(
                    f"{where} is {scores[k, cls, j].item()!r}: class scores must be finite",
                    field="y_pred",
                )
            pred_ids = np.argmax(scores, axis=1).astype(np.int64, copy=False)
        else:
            pred_ids = _ids(p2[images, span], "y_pred", c, ignored, place)
        yield Block(images.start, span.start, true_ids, pred_ids, ignored)
