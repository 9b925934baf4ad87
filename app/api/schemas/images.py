"""Request models of image runs: the ``cnn`` model options, image arrays and Grad-CAM.

Types and unknown options are checked here; ranges by :class:`app.training.spec.CNNSpec`, which
names the same dotted fields (``model.blocks[0].kernel``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from app.api.schemas.common import StrictModel

#: Rows of features, or images N×H×W / N×C×H×W (first match wins: tabular rows stay cheap).
Array = Annotated[
    list[list[float]] | list[list[list[float]]] | list[list[list[list[float]]]],
    Field(union_mode="left_to_right"),
]
MAX_GRADCAM_IMAGES = 4096


class ConvBlockOptions(StrictModel):
    channels: int | None = Field(None, description="Output channels.", examples=[16])
    kernel: int | None = Field(None, description="Odd kernel size (same padding).", examples=[3])
    pool: Literal["max", "avg", "none"] | None = Field(None, description="Pooling after it.")
    pool_size: int | None = Field(None, description="Pooling window and stride (default 2).")


class CNNFields(StrictModel):
    """``type`` of ``model`` and the options of a cnn (the MLP's options extend these).

    One object rather than a tagged union keeps error paths flat (``model.hidden``); options of
    the other model type are refused by the spec (``model.hidden`` on a cnn is a 422).
    """

    type: Literal["mlp", "cnn"] | None = Field(
        None, description="mlp (default; tabular rows) or cnn (images C×H×W)."
    )
    blocks: list[ConvBlockOptions] | None = Field(
        None,
        description="cnn: conv → [batch norm] → activation → pooling blocks (default 16 and 32 "
        "channels, 3×3, max-pool 2).",
        examples=[[{"channels": 16}, {"channels": 32}]],
    )
    head: list[int] | None = Field(
        None, description="cnn: hidden widths of the head (default [64])."
    )
    head_pool: Literal["flatten", "avg"] | None = Field(
        None, description="cnn: flatten the last maps (default) or average them over space."
    )
    batch_norm: bool | None = Field(None, description="cnn: BatchNorm2d after each conv.")
    input_norm: bool | None = Field(
        None,
        description="cnn: standardize each input channel by the training images' statistics "
        "(default true).",
    )
    input_shape: list[int] | None = Field(
        None, description="cnn: [C, H, W]; default: the shape of the training images."
    )


class GradCAMRequest(StrictModel):
    """Grad-CAM maps of posted images, for a run with a cnn."""

    X: Array = Field(
        ...,
        description="Images N×C×H×W (N×H×W for one channel) of the run's shape, or flat rows "
        f"of C·H·W values; at most {MAX_GRADCAM_IMAGES}.",
    )
    layer: str | None = Field(
        None,
        max_length=50,
        description="The conv block explained (conv0, conv1, ...; default the last).",
    )
    target: int | list[int] | None = Field(
        None,
        description="Class explained (one for all images, or one per image); default the "
        "predicted class. Binary: 1 explains the logit, 0 its negation.",
    )
    overlays: bool = Field(
        True, description="Return a PNG overlay per image (base64), at most 64 of them."
    )
