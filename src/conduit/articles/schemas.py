from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints, field_validator

from conduit.profiles.schemas import Profile
from conduit.schemas import NotBlank, Schema, Timestamp, reject_blank

MAX_TAGS = 10


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


Title = Annotated[str, NotBlank, StringConstraints(strip_whitespace=True, max_length=200)]
Description = Annotated[str, NotBlank, StringConstraints(strip_whitespace=True, max_length=1000)]
Body = Annotated[str, NotBlank, StringConstraints(max_length=100_000)]
TagName = Annotated[str, NotBlank, StringConstraints(strip_whitespace=True, max_length=50)]
TagList = Annotated[list[TagName], Field(max_length=MAX_TAGS), AfterValidator(_unique)]


class NewArticle(Schema):
    title: Title
    description: Description
    body: Body
    tag_list: TagList = Field(default_factory=list)


class NewArticleRequest(Schema):
    article: NewArticle


class UpdateArticle(Schema):
    """Only the fields sent change. `tagList: []` removes every tag; omitting it keeps them."""

    title: Title | None = None
    description: Description | None = None
    body: Body | None = None
    tag_list: TagList | None = None

    _reject_blank = field_validator("title", "description", "body", "tag_list", mode="before")(
        reject_blank
    )


class UpdateArticleRequest(Schema):
    article: UpdateArticle


class ArticleListItem(Schema):
    slug: str
    title: str
    description: str
    tag_list: list[str]
    created_at: Timestamp
    updated_at: Timestamp
    favorited: bool
    favorites_count: int
    author: Profile


class Article(ArticleListItem):
    body: str


class ArticleResponse(Schema):
    article: Article


class MultipleArticlesResponse(Schema):
    articles: list[ArticleListItem]
    articles_count: int
