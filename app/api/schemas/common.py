"""Field types shared by every resource."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

NAME_MAX_LENGTH = 200
MAX_TAGS = 50


def _no_control_chars(value: str) -> str:
    # PostgreSQL rejects NUL in text; other control characters only make names unreadable.
    if any(ord(c) < 32 for c in value):
        raise ValueError("must not contain NUL or other control characters")
    return value


Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=NAME_MAX_LENGTH, strip_whitespace=True),
    AfterValidator(_no_control_chars),
]
Tag = Annotated[
    str,
    StringConstraints(min_length=1, max_length=NAME_MAX_LENGTH),
    AfterValidator(_no_control_chars),
]
Label = Annotated[int | str, Field(union_mode="left_to_right")]
ScoreType = Literal["probability", "logit"]
Reduction = Literal["mean", "sum", "none"]


class StrictModel(BaseModel):
    """Unknown fields are an error: a typo in an option must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ParamSpec(BaseModel):
    """A named metric or loss with its parameters, e.g. ``{"name": "fbeta", "beta": 2}``."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(max_length=100, description="Registered name.")

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Page(BaseModel):
    total: int = Field(description="Items matching the filters.")
    limit: int
    offset: int


class StoreOptions(StrictModel):
    persist: bool = Field(False, description="Store the result and return its id.")
    name: Name | None = Field(None, description="A name to find it by.", examples=["nightly"])
    model: Name | None = Field(None, description="The model evaluated.", examples=["ranker-v3"])
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
