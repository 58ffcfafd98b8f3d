"""Pydantic request and response types of the HTTP API (ORM rows never leave the service layer)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.api.schemas.common import NAME_PATTERN, DescriptorValue, Key
from service.catalog.checkpoints import MAX_CHECKPOINT_NAME
from service.catalog.image_data import MAX_IMAGE_SOURCE_NAME
from service.supernets.data_options import OFA_CALIBRATION_IMAGES, DataOptions
from service.timestamps import UtcDatetime


class SupernetDataIn(BaseModel):
    """Data of an image family (ofa-mbv3-*, ofa-resnet50): folders inside HWNAS_IMAGE_DIR."""

    model_config = ConfigDict(extra="forbid", strict=True)

    image_folder: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_IMAGE_SOURCE_NAME,
        description="Folder (`class_name/*.jpg|png`) or listing file (`path label` lines) "
        "inside the server's image directory (HWNAS_IMAGE_DIR): the evaluation split, and the "
        "calibration split too unless calibration_folder is given",
        examples=["imagenet-val"],
    )
    calibration_folder: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_IMAGE_SOURCE_NAME,
        description="Separate source of the batch-norm calibration images (e.g. training images)",
    )
    calibration_images: int = Field(
        default=OFA_CALIBRATION_IMAGES,
        ge=1,
        le=1_000_000,
        description="Images drawn for batch-norm recalibration (OFA uses 2000)",
    )
    evaluation_images: int | None = Field(
        default=None, ge=1, le=10_000_000, description="At most this many evaluation images"
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of the drawn splits")
    resolutions: list[int] | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Restrict the resolution gene to these values (e.g. a latency table's)",
        examples=[[224]],
    )

    def options(self) -> DataOptions:
        return DataOptions(
            image_folder=self.image_folder,
            calibration_folder=self.calibration_folder,
            calibration_images=self.calibration_images,
            evaluation_images=self.evaluation_images,
            seed=self.seed,
            resolutions=tuple(self.resolutions) if self.resolutions is not None else None,
        )


class SupernetIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=200, pattern=NAME_PATTERN)
    family: str = Field(min_length=1, max_length=200, examples=["mbv3-digits"])
    checkpoint: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CHECKPOINT_NAME,
        description="Name of a checkpoint file inside the server's checkpoint directory "
        "(HWNAS_CHECKPOINT_DIR); the family's default weights if omitted",
        examples=["mbv3_digits.pt"],
    )
    data: SupernetDataIn | None = Field(
        default=None, description="Image data and resolutions of an image family"
    )


class SupernetUploadIn(BaseModel):
    """The text fields of a multipart registration (the checkpoint is the file field)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=200, pattern=NAME_PATTERN)
    family: str = Field(min_length=1, max_length=200, examples=["ofa-mbv3-w1.0"])
    data: SupernetDataIn | None = None


# Fields of `data` a multipart form may also give one by one.
SUPERNET_FORM_FIELDS = tuple(SupernetDataIn.model_fields)


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its `$defs` substituted in place (for `openapi_extra`,
    where `#/$defs/…` references would not resolve)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return dict(inline(schema))


class SupernetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    family: str
    dataset: str
    checkpoint_uri: str | None
    checkpoint_sha256: str | None
    data_options: dict[str, Any] | None = None
    created_at: UtcDatetime


class SupernetDetailOut(SupernetOut):
    search_space: list[dict[str, Any]]
    exact_ranges: dict[str, list[float]] = Field(
        description="Exact metrics of the smallest and largest network, e.g. macs: [min, max]"
    )
    n_genes: int
    log10_size: float


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    kind: Literal["host", "agent", "lut-only"]
    descriptor: dict[Key, DescriptorValue] = Field(
        default_factory=dict,
        max_length=64,
        description="host: threads, batch_size, warmup_runs, timed_runs (onnxruntime profile); "
        "agent: the same plus free-form facts about the device (JSON scalars)",
    )


class DeviceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: str
    descriptor: dict[str, Any]
    can_measure_latency: bool
    created_at: UtcDatetime
