from fastapi import Response

from conduit import api
from conduit.auth.dependencies import AnonymousCaller
from conduit.cache import NOT_MODIFIED, Cached
from conduit.database import ReadSession
from conduit.tags import reads
from conduit.tags.schemas import TagsResponse

router = api.router(tags=["Tags"])


@router.get("/tags", response_model=TagsResponse, responses=NOT_MODIFIED)
async def list_tags(db: ReadSession, caller: AnonymousCaller, cache: Cached) -> Response:
    """Every tag in use on at least one article, in alphabetical order."""
    return await cache.respond(caller, reads.cached(db))
