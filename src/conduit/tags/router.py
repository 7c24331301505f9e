from fastapi import APIRouter, Response

from conduit.database import Session
from conduit.schemas import JSONText
from conduit.tags import service
from conduit.tags.schemas import TagsResponse

router = APIRouter(tags=["Tags"])


@router.get("/tags", response_model=TagsResponse)
async def list_tags(session: Session) -> Response:
    """Every tag in use on at least one article, in alphabetical order."""
    return JSONText(await service.list_tags_json(session))
