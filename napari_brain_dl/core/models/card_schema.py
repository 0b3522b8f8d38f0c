"""The model card schema (pydantic): unknown fields and unknown steps are refused by name.

`check_card_fields` runs before a card is parsed, so a misspelt ``postprocesing:`` or an op
``zscor`` fails with a sentence naming it instead of being silently dropped. `json_schema`
exports the same schema for card authors (``docs/model-card.schema.json``).
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PreOp = Literal["conform", "resample", "scale", "zscore", "clip", "zscore_foreground"]
PostOp = Literal["softmax", "sigmoid", "argmax", "largest_component", "fill_holes", "brats_regions"]
Task = Literal["skullstrip", "segmentation", "parcellation", "tissue", "synthesis", "super_resolution",
               "classification", "other"]


class PreStep(BaseModel):
    """One preprocessing step: ``op`` and its own parameters (e.g. ``spacing``, ``low``)."""

    model_config = ConfigDict(extra="allow")
    op: PreOp


class PostStep(BaseModel):
    """One postprocessing step: ``op`` and its own parameters (e.g. ``threshold``)."""

    model_config = ConfigDict(extra="allow")
    op: PostOp


class Architecture(BaseModel):
    """``type``: meshnet | torchscript | monai | monai_bundle | project, plus that type's fields."""

    model_config = ConfigDict(extra="allow")
    type: str


class Output(BaseModel):
    """What the model returns; ``channels`` names probability / region channels."""

    model_config = ConfigDict(extra="allow")
    kind: Literal["labels", "image", "probabilities"] = "labels"


class CardSchema(BaseModel):
    """A napari-brain-dl model card (YAML or JSON). Paths are relative to the card's folder."""

    model_config = ConfigDict(extra="forbid", title="napari-brain-dl model card")
    id: Any = Field(description="stable identifier, e.g. brats-tumor-seg")
    aliases: list[str] | None = Field(None, description="former ids that still resolve to this model")
    name: Any = Field(description="human readable name")
    task: Task
    inputs: str | list[str] = Field(description="input contrasts in the order the model takes them")
    required_inputs: list[str] | None = Field(
        None, description="inputs the model cannot do without (the others may be given as all-zero volumes)")
    architecture: Architecture
    orientation: str | None = Field(None, description="axis codes the model expects, e.g. LPS")
    spacing: Any = Field(None, description="voxel size in mm: one number or three")
    preprocessing: list[PreStep] | None = None
    postprocessing: list[PostStep] | None = None
    output: Output | None = None
    labels: Any = Field(None, description="label table: [{value, name, color}] or {value: name}")
    weights: Any = Field(None, description="{file, sha256, format}")
    inference: Any = Field(None, description="{mode, roi_size, overlap, crop, margin, divisible, amp}")
    license: Any = None
    intended_use: Any = None
    metrics: Any = Field(None, description="measured metrics on named validation cases")
    training: Any = Field(None, description="training data, recipe, command and seed")
    source: Any = None
    description: Any = None
    trusted: bool = False


def check_card_fields(data: dict[str, Any]) -> None:
    """Raise `ValueError` naming the first unknown field, unknown op or wrong kind in `data`."""
    try:
        CardSchema.model_validate(data)
    except ValidationError as exc:
        raise ValueError(_sentence(exc.errors()[0])) from None


def _sentence(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        field = str(error["loc"][-1])
        close = difflib.get_close_matches(field, CardSchema.model_fields, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown field {field!r}{hint}"
    if error["type"] == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{where}: {error.get('input')!r} is not one of {expected}"
    return f"{where}: {error['msg'].lower()}"


def json_schema() -> dict[str, Any]:
    """The card schema as JSON Schema (for editors and card authors)."""
    return CardSchema.model_json_schema()
