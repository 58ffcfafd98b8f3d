"""`/v1/supernets`: register a family under a name, list them, show one with its search space."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from service.api.deps import SessionDep
from service.api.schemas.catalog import SupernetDetailOut, SupernetIn, SupernetOut
from service.catalog import supernets as supernet_catalog
from service.db.models import Supernet
from service.supernets.space import SearchSpace

router = APIRouter(prefix="/v1/supernets", tags=["supernets"])


def _out(row: Supernet) -> SupernetOut:
    return SupernetOut(
        id=row.id,
        name=row.name,
        family=row.family,
        dataset=row.dataset,
        checkpoint_uri=row.checkpoint_uri,
        checkpoint_sha256=row.checkpoint_sha256,
        created_at=row.created_at,
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SupernetDetailOut)
def register_supernet(
    body: SupernetIn, session: SessionDep, response: Response
) -> SupernetDetailOut:
    row = supernet_catalog.register_supernet(session, body.name, body.family, body.checkpoint)
    session.refresh(row)
    response.headers["Location"] = f"/v1/supernets/{row.id}"
    return _detail(row)


@router.get("", response_model=list[SupernetOut])
def list_supernets(session: SessionDep) -> list[SupernetOut]:
    return [_out(row) for row in supernet_catalog.list_supernets(session)]


@router.get("/{supernet_id}", response_model=SupernetDetailOut)
def show_supernet(supernet_id: int, session: SessionDep) -> SupernetDetailOut:
    return _detail(supernet_catalog.get_supernet(session, supernet_id))


def _detail(row: Supernet) -> SupernetDetailOut:
    space = SearchSpace.from_json(row.search_space)
    return SupernetDetailOut(
        **_out(row).model_dump(),
        search_space=row.search_space,
        exact_ranges=row.exact_ranges,
        n_genes=len(space.genes),
        log10_size=space.log10_size(),
    )
