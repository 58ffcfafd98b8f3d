"""`/v1/supernets`: register a family under a name, list them, show one with its search space."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from service.api.deps import DbId, SessionDep
from service.api.error_responses import errors
from service.api.schemas.catalog import SupernetDetailOut, SupernetIn, SupernetOut
from service.catalog import checkpoints
from service.catalog import supernets as supernet_catalog
from service.db.models import Supernet
from service.supernets.space import SearchSpace

router = APIRouter(prefix="/v1/supernets", tags=["supernets"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SupernetDetailOut,
    responses=errors(409, 413),
)
def register_supernet(
    body: SupernetIn, session: SessionDep, request: Request, response: Response
) -> SupernetDetailOut:
    """A client's checkpoint is a file name inside HWNAS_CHECKPOINT_DIR (422 otherwise)."""
    checkpoint = None
    if body.checkpoint is not None:
        settings = request.app.state.settings
        checkpoint = str(
            checkpoints.resolve_checkpoint(
                body.checkpoint,
                settings.resolved_checkpoint_dir,
                checkpoints.database_files(request.app.state.engine.url),
                settings.max_checkpoint_bytes,
            )
        )
    row = supernet_catalog.register_supernet(session, body.name, body.family, checkpoint)
    session.refresh(row)
    response.headers["Location"] = f"/v1/supernets/{row.id}"
    return _detail(row)


@router.get("", response_model=list[SupernetOut])
def list_supernets(session: SessionDep) -> list[SupernetOut]:
    return [SupernetOut.model_validate(row) for row in supernet_catalog.list_supernets(session)]


@router.get("/{supernet_id}", response_model=SupernetDetailOut, responses=errors(404))
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
