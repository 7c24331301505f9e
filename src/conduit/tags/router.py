from fastapi import APIRouter, Response

from conduit.database import ReadSession
from conduit.errors import responses
from conduit.ratelimit.dependencies import AnonymousLimit
from conduit.schemas import JSONText
from conduit.tags import reads
from conduit.tags.schemas import TagsResponse

router = APIRouter(tags=["Tags"], responses=responses(429))


@router.get("/tags", response_model=TagsResponse, dependencies=[AnonymousLimit])
async def list_tags(db: ReadSession) -> Response:
    """Every tag in use on at least one article, in alphabetical order."""
    return JSONText(await reads.in_use(db))
