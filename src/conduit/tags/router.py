from fastapi import APIRouter, Response

from conduit.database import ReadSession
from conduit.schemas import JSONText
from conduit.tags import reads
from conduit.tags.schemas import TagsResponse

router = APIRouter(tags=["Tags"])


@router.get("/tags", response_model=TagsResponse)
async def list_tags(db: ReadSession) -> Response:
    """Every tag in use on at least one article, in alphabetical order."""
    return JSONText(await reads.in_use(db))
