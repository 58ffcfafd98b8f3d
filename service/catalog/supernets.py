"""Supernets: registration, lookup, and the loaded model of each. Never commits."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.catalog.checkpoints import load_failure
from service.db.models import Supernet
from service.errors import ConflictError, InvalidInputError, NotFoundError
from service.supernets.checksum import sha256_of
from service.supernets.data_options import DataOptions, UnsupportedResolutionError
from service.supernets.image_folder import ImageFolderError
from service.supernets.protocol import Supernet as SupernetModel
from service.supernets.registry import (
    DataOptionsRefusedError,
    UnknownFamilyError,
    family_names,
    load_supernet,
)


class UnknownSupernetError(NotFoundError):
    code = "unknown_supernet"


class UnknownFamilyInputError(InvalidInputError):
    code = "unknown_family"


class InvalidDataOptionsError(InvalidInputError):
    code = "invalid_data_options"


@lru_cache(maxsize=4)
def loaded_supernet(
    family: str, checkpoint: str | None, options: DataOptions | None = None
) -> SupernetModel:
    """The supernet of `family` with `checkpoint` and data options, loaded once per process."""
    return load_supernet(family, checkpoint, options)


def register_supernet(
    session: Session,
    name: str,
    family: str,
    checkpoint: str | None,
    options: DataOptions | None = None,
    checkpoint_sha256: str | None = None,
    checkpoint_name: str | None = None,
) -> Supernet:
    """Load the family (to check it and read its space and dataset) and store it under `name`.

    `checkpoint` and the paths in `options` are trusted here: the API resolves a client's names
    inside the server's directories first. `checkpoint_sha256`, when given, was computed as the
    file arrived; `checkpoint_name` is what errors call the file (an upload's own name). Any load
    failure is a 422 and stores nothing.
    """
    families = family_names()
    if family not in families:
        raise UnknownFamilyInputError(
            f"unknown supernet family {family!r}; installed families: {families}"
        )
    sha256 = None
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise InvalidInputError(f"checkpoint {checkpoint!r} is not a file on the server")
        checkpoint = str(path.resolve())
        sha256 = checkpoint_sha256 or sha256_of(path)
    if name_taken(session, name):
        raise ConflictError(
            f"a supernet named {name!r} already exists (names are compared ignoring case); "
            "choose another name"
        )
    try:
        model = loaded_supernet(family, checkpoint, options)
    except UnknownFamilyError as exc:
        raise UnknownFamilyInputError(str(exc)) from exc
    except (DataOptionsRefusedError, UnsupportedResolutionError, ImageFolderError) as exc:
        raise InvalidDataOptionsError(str(exc)) from exc
    except Exception as exc:  # a family's loader may raise anything for a bad file
        raise _load_error(family, checkpoint_name or checkpoint, exc) from exc
    row = Supernet(
        name=name,
        family=family,
        checkpoint_uri=checkpoint,
        checkpoint_sha256=sha256,
        dataset=model.dataset,
        search_space=model.space.to_json(),
        exact_ranges=exact_ranges(model),
        data_options=options.to_json() if options is not None else None,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise ConflictError(f"a supernet named {name!r} already exists") from exc
    return row


def _load_error(family: str, checkpoint: str | None, exc: Exception) -> InvalidInputError:
    if checkpoint is None:
        return InvalidInputError(f"family {family!r} could not load its default weights: {exc}")
    return load_failure(family, checkpoint, exc)


def exact_ranges(model: SupernetModel) -> dict[str, list[float]]:
    """MACs and params of the smallest and the largest network of the space."""
    smallest, largest = model.space.smallest(), model.space.largest()
    return {
        "macs": [float(model.macs(smallest)), float(model.macs(largest))],
        "params": [float(model.params(smallest)), float(model.params(largest))],
    }


def list_supernets(session: Session) -> list[Supernet]:
    return list(session.scalars(select(Supernet).order_by(Supernet.id)))


def get_supernet(session: Session, supernet_id: int) -> Supernet:
    row = session.get(Supernet, supernet_id)
    if row is None:
        raise UnknownSupernetError(f"supernet {supernet_id} does not exist; see GET /v1/supernets")
    return row


def find_supernet(session: Session, name: str) -> Supernet | None:
    return session.scalar(select(Supernet).where(Supernet.name == name))


def name_taken(session: Session, name: str) -> bool:
    """Whether a supernet has this name in any case (names are unique ignoring case)."""
    query = select(Supernet.id).where(func.lower(Supernet.name) == name.lower()).limit(1)
    return session.scalar(query) is not None


def supernet_model(row: Supernet) -> SupernetModel:
    return loaded_supernet(row.family, row.checkpoint_uri, DataOptions.from_json(row.data_options))
