"""Reading ``.npz`` request bodies (numpy's zip of ``.npy`` arrays) without ever unpickling.

A body is an ``.npz`` archive when its content type is ``application/x-npz``, or
``application/octet-stream`` and it starts with the zip signature (``PK``). Its arrays are named
like the columns of an Arrow body (``y_true``, ``y_pred``, ``y_score``, ``sample_weight``, ...)
and the options travel as query parameters. Arrays are read with ``allow_pickle=False``; an
object array is refused. Each array's header is read before its data, so a compressed archive
(``np.savez_compressed``) whose arrays would exceed the body limit once inflated is refused with
413 before anything is allocated.
"""

from __future__ import annotations

import io
import math
import zipfile
from typing import Any

import numpy as np

from app.errors import InvalidInput, PayloadTooLarge

NPZ_MEDIA_TYPE = "application/x-npz"
OCTET_STREAM = "application/octet-stream"
_ZIP_MAGIC = b"PK"


def _array_name(info: zipfile.ZipInfo) -> str:
    if not info.filename.endswith(".npy"):
        raise InvalidInput(
            f"archive member {info.filename!r} is not an .npy array (write the body with "
            "np.savez or np.savez_compressed)",
            field="body",
        )
    return info.filename.removesuffix(".npy")


def _header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> int:
    """The array's size in bytes, read from its ``.npy`` header; object arrays are refused."""
    with archive.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, NotImplementedError) as exc:
            raise InvalidInput(
                f"array {name!r} is not a readable .npy ({exc})", field=name
            ) from None
    if dtype.hasobject:
        raise InvalidInput(
            f"array {name!r} holds Python objects (dtype {dtype}): arrays must be numeric; "
            "pickled data is never loaded",
            field=name,
        )
    return math.prod(shape) * dtype.itemsize


def read_npz(body: bytes, max_bytes: int) -> dict[str, np.ndarray[Any, Any]]:
    """The arrays of an ``.npz`` body by name.

    Raises
    ------
    InvalidInput
        Not a zip archive, a member that is not an ``.npy`` array, an object array.
    PayloadTooLarge
        The arrays, inflated, exceed ``max_bytes``.
    """
    if not body.startswith(_ZIP_MAGIC):
        raise InvalidInput(
            "is not an .npz archive (a zip file written by np.savez or np.savez_compressed)",
            field="body",
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
    except zipfile.BadZipFile as exc:
        raise InvalidInput(f"is not a readable .npz archive ({exc})", field="body") from None
    with archive:
        sizes = {
            _array_name(info): _header(archive, info, _array_name(info))
            for info in archive.infolist()
        }
        total = sum(sizes.values())
        if total > max_bytes:
            raise PayloadTooLarge(
                f"the .npz arrays take {total} bytes once inflated; the limit is {max_bytes} "
                "bytes (EVALSERVE_MAX_BODY_BYTES)",
                field="body",
            )
    out: dict[str, np.ndarray[Any, Any]] = {}
    with np.load(io.BytesIO(body), allow_pickle=False) as npz:
        for name in sizes:
            try:
                out[name] = npz[name]
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
                raise InvalidInput(
                    f"array {name!r} is not a readable .npy ({exc})", field=name
                ) from None
    if "y_true" not in out:
        held = ", ".join(repr(k) for k in out) or "no arrays"
        raise InvalidInput(
            f"the .npz archive has no array named 'y_true' (it holds {held})", field="y_true"
        )
    return out
