from typing import Annotated

from fastapi import Depends

from conduit.articles import service
from conduit.articles.models import Article
from conduit.database import Session
from conduit.errors import NotFound
from conduit.schemas import PathName


async def valid_article(slug: PathName, session: Session) -> Article:
    article = await service.get_by_slug(session, slug)
    if article is None:
        raise NotFound("article")
    return article


ValidArticle = Annotated[Article, Depends(valid_article)]
