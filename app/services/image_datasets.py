"""Image datasets: ``.npy`` / ``.npz`` uploads and Arrow tensor columns, stored as Arrow.

An image dataset is stored like any other dataset (``format = "arrow"``: no new storage format,
no migration): one column of Arrow's canonical ``arrow.fixed_shape_tensor`` extension type holds
the images (shape C×H×W, in their uploaded numeric type, so uint8 pixels stay one byte each), the
target is an ordinary numeric column, and further 1-D columns (a site or patient id for a group
split) may ride along. What is uploaded:

- ``.npz`` (``np.savez``): the images under ``X`` (N×C×H×W, or N×H×W for one channel) — or the
  only other array — and the labels under the ``target`` name (``y``); other arrays of length N
  become columns. Read with ``allow_pickle=False``: object arrays are refused, never unpickled.
- ``.npy``: one structured array with a sub-array field of images and a field for the target,
  e.g. ``dtype=[("X", "u1", (1, 8, 8)), ("y", "i8")]`` (a plain array has no labels).
- Arrow (IPC file or stream): a ``fixed_shape_tensor`` column, or a ``fixed_size_list`` column
  whose shape comes from the field's metadata (``{"shape": "[1, 8, 8]"}``) or from the
  ``shape`` query parameter.

The description of the image column carries ``image_shape`` (``[C, H, W]``); that key is what
marks a dataset as an image dataset everywhere else.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from app.errors import InvalidInput, PayloadTooLarge

#: Upload formats read here (the dataset is then stored as Arrow).
FORMATS: Final[tuple[str, ...]] = ("npy", "npz")
MEDIA_TYPES: Final[dict[str, str]] = {"application/x-npy": "npy", "application/x-npz": "npz"}
IMAGE_KEYS: Final[tuple[str, ...]] = ("X", "x", "images")
_F32_MAX = float(np.finfo(np.float32).max)


# -- arrays -> table -------------------------------------------------------------------------------
def _check_pixels(X: NDArray[Any], field: str) -> NDArray[Any]:
    if X.dtype.kind not in "biuf":
        raise InvalidInput(f"has dtype {X.dtype}: images must be numeric", field=field)
    if X.ndim == 3:
        X = X[:, None]
    if X.ndim != 4:
        raise InvalidInput(f"has shape {X.shape}: images must be N×C×H×W or N×H×W", field=field)
    if X.shape[0] == 0 or 0 in X.shape[1:]:
        raise InvalidInput(f"has shape {X.shape}: no images", field=field)
    if X.dtype.kind == "b":
        X = X.astype(np.uint8)
    if X.dtype.kind == "f":
        if not np.isfinite(X).all():
            idx = [int(i) for i in np.argwhere(~np.isfinite(X))[0]]
            raise InvalidInput(f"{field}{idx} is not finite: pixels must be finite", field=field)
        if X.dtype.itemsize > 4:
            if (np.abs(X) > _F32_MAX).any():
                raise InvalidInput("holds values beyond float32", field=field)
            X = X.astype(np.float32)  # what training uses; half the storage
        elif X.dtype.itemsize < 4:
            X = X.astype(np.float32)  # float16 has no Arrow tensor kernels worth relying on
    return np.ascontiguousarray(X)


def _tensor_column(X: NDArray[Any]) -> pa.ExtensionArray:
    # built from the flat values: from_numpy_ndarray reads strides, and numpy leaves arbitrary
    # strides on size-1 axes (a channel axis), which it would turn into a permuted layout
    kind = pa.fixed_shape_tensor(pa.from_numpy_dtype(X.dtype), list(X.shape[1:]))
    storage = pa.FixedSizeListArray.from_arrays(
        pa.array(np.ascontiguousarray(X).reshape(-1)), int(np.prod(X.shape[1:]))
    )
    return pa.ExtensionArray.from_storage(kind, storage)


def _tensor_values(column: pa.ChunkedArray) -> NDArray[Any]:
    """A tensor column as one array (rows, *logical shape): ``shape`` is the physical layout and
    the logical tensor is it transposed by ``argsort(permutation)``."""
    kind = column.type
    flat = [c.storage.flatten().to_numpy(zero_copy_only=False) for c in column.chunks]
    data = (np.concatenate(flat) if flat else np.empty(0)).reshape(len(column), *kind.shape)
    perm = kind.permutation
    if perm is not None and list(perm) != sorted(perm):
        data = data.transpose(0, *(1 + np.argsort(perm)))
    return data


def _plain_column(name: str, values: NDArray[Any], n: int) -> pa.Array:
    if values.ndim != 1 or values.shape[0] != n:
        raise InvalidInput(
            f"has shape {values.shape}: besides the images, arrays must hold one value per "
            f"image ({n})",
            field=name,
        )
    if values.dtype.kind not in "biufU":
        raise InvalidInput(f"has dtype {values.dtype}: numbers or strings only", field=name)
    return pa.array(values)


def table_of_arrays(arrays: Mapping[str, NDArray[Any]], target: str) -> pa.Table:
    """The table of an ``.npz``'s arrays: images, target and the other per-image arrays.

    Raises
    ------
    InvalidInput
        No target array, no image array (or several candidates), shapes that disagree.

    Examples
    --------
    >>> t = table_of_arrays({"X": np.zeros((3, 4, 4), np.uint8), "y": np.arange(3)}, "y")
    >>> t.column_names, t.schema.field("X").type.shape
    (['X', 'y'], [1, 4, 4])
    """
    if target not in arrays:
        raise InvalidInput(
            f"is {target!r}, not an array of the file: {sorted(arrays)[:20]}", field="target"
        )
    key = next((k for k in IMAGE_KEYS if k in arrays and k != target), None)
    if key is None:
        candidates = [k for k, v in arrays.items() if k != target and v.ndim in (3, 4)]
        if len(candidates) != 1:
            raise InvalidInput(
                f"name the image array 'X' (found {sorted(arrays)[:20]})", field="body"
            )
        key = candidates[0]
    X = _check_pixels(arrays[key], key)
    n = X.shape[0]
    columns: dict[str, pa.Array] = {key: _tensor_column(X)}
    for name, values in arrays.items():
        if name != key:
            columns[name] = _plain_column(name, np.asarray(values), n)
    return pa.table(columns)


def read_npy(content: bytes, target: str) -> pa.Table:
    """The table of a structured ``.npy`` (one sub-array field of images, one of labels)."""
    try:
        arr = np.load(io.BytesIO(content), allow_pickle=False)
    except ValueError as exc:
        raise InvalidInput(
            f"not a readable .npy file without pickles ({exc})", field="body"
        ) from None
    except (OSError, EOFError) as exc:
        raise InvalidInput(f"not a readable .npy file ({exc})", field="body") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.names is None or arr.ndim != 1:
        raise InvalidInput(
            "a .npy upload must be a 1-D structured array with an image field and a "
            'label field, e.g. dtype=[("X", "u1", (1, 8, 8)), ("y", "i8")]; or send an .npz '
            "with arrays X and y",
            field="body",
        )
    return table_of_arrays({name: arr[name] for name in arr.dtype.names}, target)


def _npy_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[str, int]:
    """A member's array name and size in bytes, from its ``.npy`` header (objects refused)."""
    name = info.filename.removesuffix(".npy")
    if not info.filename.endswith(".npy"):
        raise InvalidInput(f"archive member {info.filename!r} is not an .npy array", field="body")
    with archive.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            read = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }.get(version)
            if read is None:
                raise ValueError(f"unsupported .npy version {version}")
            shape, _, dtype = read(f)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise InvalidInput(
                f"array {name!r} is not a readable .npy ({exc})", field="body"
            ) from None
    if dtype.hasobject:
        raise InvalidInput(
            f"array {name!r} holds Python objects ({dtype}); pickled data is never loaded",
            field="body",
        )
    return name, int(np.prod(shape)) * dtype.itemsize


def read_npz(content: bytes, target: str, max_bytes: int) -> pa.Table:
    """The table of an ``.npz`` archive, read with ``allow_pickle=False``.

    Each array's header is read first, so an archive whose arrays would exceed ``max_bytes``
    once inflated is refused (413) before anything is allocated.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile as exc:
        raise InvalidInput(f"not a readable .npz archive ({exc})", field="body") from None
    with archive:
        sizes = dict(_npy_header(archive, info) for info in archive.infolist())
    if sum(sizes.values()) > max_bytes:
        raise PayloadTooLarge(
            f"the arrays take {sum(sizes.values())} bytes once inflated; the limit is "
            f"{max_bytes} (EVALSERVE_MAX_DATASET_BYTES)",
            field="body",
        )
    try:
        with np.load(io.BytesIO(content), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in sizes}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InvalidInput(f"not a readable .npz archive ({exc})", field="body") from None
    return table_of_arrays(arrays, target)


# -- tensor columns of Arrow tables ----------------------------------------------------------------
def _parse_shape(text: str | bytes, field: str) -> tuple[int, ...]:
    try:
        raw = json.loads(text) if str(text).strip().startswith("[") else str(text).split(",")
        shape = tuple(int(v) for v in raw)
    except (ValueError, TypeError):
        raise InvalidInput(f"is {text!r}: give the image shape as C,H,W", field=field) from None
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or min(shape) < 1:
        raise InvalidInput(f"is {text!r}: give the image shape as C,H,W", field=field)
    return shape


def parse_shape(text: str | None) -> tuple[int, int, int] | None:
    """The ``shape`` query parameter: ``C,H,W`` or ``H,W``.

    >>> parse_shape("1,8,8"), parse_shape("28,28"), parse_shape(None)
    ((1, 8, 8), (1, 28, 28), None)
    """
    if text is None:
        return None
    c, h, w = _parse_shape(text, "shape")
    return (c, h, w)


def _is_list_column(t: pa.DataType) -> bool:
    return bool(pa.types.is_fixed_size_list(t))


def _is_tensor_type(t: pa.DataType) -> bool:
    return isinstance(t, pa.FixedShapeTensorType)


def has_images(table: pa.Table) -> bool:
    """Whether a table holds a tensor or fixed-size-list column."""
    return any(_is_tensor_type(f.type) or _is_list_column(f.type) for f in table.schema)


def normalize(table: pa.Table, shape: tuple[int, int, int] | None) -> pa.Table:
    """The table with its image column as ``fixed_shape_tensor`` (C, H, W), checked.

    Raises
    ------
    InvalidInput
        Several image columns, a list column of unknown shape or whose length is not C·H·W,
        null or non-numeric values.
    """
    fields = [f for f in table.schema if _is_tensor_type(f.type) or _is_list_column(f.type)]
    if len(fields) != 1:
        names = [f.name for f in fields]
        raise InvalidInput(f"has image columns {names}: one image column per dataset", field="body")
    f = fields[0]
    column = table.column(f.name)
    if column.null_count:
        raise InvalidInput(f"column {f.name!r} has {column.null_count} null images", field="body")
    if _is_tensor_type(f.type):
        values = _tensor_values(column)
        t_shape = tuple(int(v) for v in values.shape[1:])
        if len(t_shape) == 2:
            t_shape = (1, *t_shape)
        if len(t_shape) != 3:
            raise InvalidInput(
                f"column {f.name!r} holds tensors of shape {t_shape}: images are C×H×W",
                field="body",
            )
    else:
        meta = (f.metadata or {}).get(b"shape")
        if shape is None and meta is None:
            raise InvalidInput(
                f"column {f.name!r} holds lists of {f.type.list_size} values: give the image "
                "shape (?shape=C,H,W, or the field metadata 'shape')",
                field="shape",
            )
        t_shape = shape or _parse_shape(meta, "shape")  # type: ignore[arg-type]
        if int(np.prod(t_shape)) != f.type.list_size:
            raise InvalidInput(
                f"is {list(t_shape)} = {int(np.prod(t_shape))} values, but the lists of column "
                f"{f.name!r} hold {f.type.list_size}",
                field="shape",
            )
        flat = column.combine_chunks().flatten()
        if flat.null_count:
            raise InvalidInput(f"column {f.name!r} has null pixels", field="body")
        values = flat.to_numpy(zero_copy_only=False).reshape(len(column), *t_shape)
    if shape is not None and tuple(t_shape) != tuple(shape):
        raise InvalidInput(
            f"is {list(shape)} but the column holds images of shape {list(t_shape)}",
            field="shape",
        )
    X = _check_pixels(np.asarray(values).reshape(len(column), *t_shape), f.name)
    index = table.schema.get_field_index(f.name)
    return table.set_column(index, f.name, _tensor_column(X))


def image_column(table: pa.Table) -> str:
    return next(f.name for f in table.schema if _is_tensor_type(f.type))


def describe_images(table: pa.Table, name: str) -> dict[str, Any]:
    """The description of the image column (``image_shape`` marks an image dataset)."""
    t = table.schema.field(name).type
    return {
        "name": name,
        "type": f"fixed_shape_tensor<{t.value_type}>{list(t.shape)}",
        "numeric": False,
        "null_count": 0,
        "finite": True,
        "n_distinct": None,
        "image_shape": [int(v) for v in t.shape],
        "pixel_type": str(t.value_type),
    }


def to_ipc(table: pa.Table) -> bytes:
    """The Arrow IPC file the dataset is stored as."""
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


# -- reading back ---------------------------------------------------------------------------------
def is_image_column(column: pa.ChunkedArray) -> bool:
    return _is_tensor_type(column.type)


def pixel_rows(column: pa.ChunkedArray) -> NDArray[np.float32]:
    """A stored image column as float32 rows of C·H·W values (training's layout)."""
    return _tensor_values(column).reshape(len(column), -1).astype(np.float32, copy=False)


def image_shape(columns: list[dict[str, Any]]) -> tuple[str, tuple[int, int, int]] | None:
    """The image column's name and (C, H, W) from a dataset's stored description."""
    for c in columns:
        if c.get("image_shape"):
            s = c["image_shape"]
            return c["name"], (int(s[0]), int(s[1]), int(s[2]))
    return None
