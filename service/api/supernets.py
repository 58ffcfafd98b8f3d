"""`/v1/supernets`: register a family under a name (a checkpoint named inside the server's
checkpoint directory, or uploaded as a multipart form), list them, show one with its space."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from service.api.checkpoint_form import FILE_FIELD, InvalidFormError, ReceivedForm, receive_form
from service.api.deps import DbId, SessionDep
from service.api.schemas.catalog import (
    SUPERNET_FORM_FIELDS,
    SupernetDetailOut,
    SupernetIn,
    SupernetOut,
    SupernetUploadIn,
    inline_schema,
)
from service.catalog import checkpoints, image_data
from service.catalog import supernets as supernet_catalog
from service.db.models import Supernet
from service.supernets.space import SearchSpace

router = APIRouter(prefix="/v1/supernets", tags=["supernets"])

_REGISTER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "JSON (the checkpoint, if any, named inside HWNAS_CHECKPOINT_DIR), or a "
        "multipart form with the checkpoint file itself as the field `checkpoint` (streamed "
        "to the server's artifact directory; at most HWNAS_MAX_CHECKPOINT_BYTES, else 413)",
        "content": {
            "application/json": {"schema": inline_schema(SupernetIn)},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["name", "family", FILE_FIELD],
                    "properties": {
                        "name": {"type": "string"},
                        "family": {"type": "string"},
                        FILE_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "A torch checkpoint (torch.save of a state dict, or "
                            "of {'state_dict': …}); read with torch.load(weights_only=True)",
                        },
                        "data": {
                            "type": "string",
                            "description": "The `data` object of the JSON form, as JSON text "
                            "(or give its fields as form fields of their own)",
                        },
                        **{
                            name: {"type": "string", "description": f"data.{name}"}
                            for name in SUPERNET_FORM_FIELDS
                        },
                    },
                }
            },
        },
    }
}


class Registration:
    """A parsed registration request: the body, and the uploaded file if there was one."""

    def __init__(self, body: SupernetIn | SupernetUploadIn, form: ReceivedForm | None) -> None:
        self.body, self.form = body, form


async def _registration(request: Request) -> AsyncIterator[Registration]:
    """The body as JSON or as a multipart form; an upload left behind is removed afterwards."""
    content_type = request.headers.get("content-type", "").lower()
    if not content_type.startswith("multipart/form-data"):
        yield Registration(_validated(SupernetIn, await _json(request)), None)
        return
    settings = request.app.state.settings
    form = await receive_form(
        request,
        settings.uploaded_checkpoint_dir,
        settings.max_checkpoint_bytes,
        settings.max_request_bytes,
    )
    try:
        if form.checkpoint is None:
            raise InvalidFormError(
                f"a multipart registration carries the checkpoint file as the field "
                f"{FILE_FIELD!r}; without a file, send JSON instead"
            )
        yield Registration(_validated(SupernetUploadIn, _form_body(form.fields)), form)
    except BaseException:
        form.discard()  # whatever failed, after the file arrived: nothing is kept
        raise


RegistrationDep = Annotated[Registration, Depends(_registration, scope="function")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SupernetDetailOut,
    openapi_extra=_REGISTER_BODY,
)
def register_supernet(
    registration: RegistrationDep, session: SessionDep, request: Request, response: Response
) -> SupernetDetailOut:
    """A client's checkpoint is a file name inside HWNAS_CHECKPOINT_DIR or an uploaded file; its
    image folders are names inside HWNAS_IMAGE_DIR (422 otherwise). Nothing is kept on failure."""
    settings = request.app.state.settings
    body = registration.body
    options = None
    if body.data is not None:
        options = image_data.resolved_options(body.data.options(), settings.resolved_image_dir)
    sha256 = shown = None
    if registration.form is not None:
        upload = registration.form
        assert upload.checkpoint is not None and upload.sha256 is not None
        checkpoints.check_weights_only(upload.checkpoint, body.family, upload.filename or "")
        path, created = checkpoints.keep_upload(
            upload.checkpoint, settings.uploaded_checkpoint_dir, upload.sha256
        )
        # From here `discard` removes the kept file if the registration fails, unless it was
        # there before (the same bytes uploaded for another supernet).
        upload.checkpoint = path if created else None
        checkpoint, sha256, shown = str(path), upload.sha256, upload.filename
    elif isinstance(body, SupernetIn) and body.checkpoint is not None:
        checkpoint = str(
            checkpoints.resolve_checkpoint(
                body.checkpoint,
                settings.resolved_checkpoint_dir,
                checkpoints.database_files(request.app.state.engine.url),
                settings.max_checkpoint_bytes,
            )
        )
    else:
        checkpoint = None
    row = supernet_catalog.register_supernet(
        session, body.name, body.family, checkpoint, options, sha256, shown
    )
    session.refresh(row)
    response.headers["Location"] = f"/v1/supernets/{row.id}"
    return _detail(row)


@router.get("", response_model=list[SupernetOut])
def list_supernets(session: SessionDep) -> list[SupernetOut]:
    return [SupernetOut.model_validate(row) for row in supernet_catalog.list_supernets(session)]


@router.get("/{supernet_id}", response_model=SupernetDetailOut)
def show_supernet(supernet_id: DbId, session: SessionDep) -> SupernetDetailOut:
    return _detail(supernet_catalog.get_supernet(session, supernet_id))


def _detail(row: Supernet) -> SupernetDetailOut:
    space = SearchSpace.from_json(row.search_space)
    return SupernetDetailOut.model_validate(
        {
            **SupernetOut.model_validate(row).model_dump(),
            "search_space": row.search_space,
            "exact_ranges": row.exact_ranges,
            "n_genes": len(space.genes),
            "log10_size": space.log10_size(),
        }
    )


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, RecursionError) as exc:
        raise InvalidFormError(
            "the request body could not be parsed as JSON (malformed, or nested too deeply); "
            "send JSON, or a multipart/form-data upload with the file field 'checkpoint'"
        ) from exc


_Body = TypeVar("_Body", SupernetIn, SupernetUploadIn)


def _validated(model: type[_Body], data: Any) -> _Body:
    """Validated like a declared body: errors in the API's usual 422 form."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(_in_body(exc)) from exc


def _in_body(exc: ValidationError) -> list[dict[str, Any]]:
    return [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]


def _form_body(fields: dict[str, str]) -> dict[str, Any]:
    """Form fields as the JSON form's object: `data` as JSON text, or its fields one by one."""
    body: dict[str, Any] = {k: v for k, v in fields.items() if k not in SUPERNET_FORM_FIELDS}
    if "data" in fields:
        try:
            body["data"] = json.loads(fields["data"])
        except ValueError as exc:
            raise InvalidFormError(f"form field 'data' is not JSON: {exc}") from exc
    flat = {k: v for k, v in fields.items() if k in SUPERNET_FORM_FIELDS}
    if flat:
        if "data" in fields:
            raise InvalidFormError(
                f"give the data options either as the JSON field 'data' or as the fields "
                f"{sorted(flat)}, not both"
            )
        body["data"] = {k: _form_value(k, v) for k, v in flat.items()}
    return body


def _form_value(name: str, text: str) -> Any:
    """Numbers and lists of the data options arrive as text in a form."""
    if name in ("calibration_images", "evaluation_images", "seed"):
        return int(text) if text.strip().lstrip("-").isdigit() else text
    if name == "resolutions":
        parts = [p.strip() for p in text.strip("[] ").split(",") if p.strip()]
        return [int(p) if p.isdigit() else p for p in parts]
    return text
