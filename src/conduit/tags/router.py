from fastapi import APIRouter

from conduit.database import Session
from conduit.tags import service
from conduit.tags.schemas import TagsResponse

router = APIRouter(tags=["Tags"])


@router.get("/tags")
async def list_tags(session: Session) -> TagsResponse:
    """Every tag in use on at least one article, in alphabetical order."""
    return TagsResponse(tags=await service.list_tags(session))
