from typing import Annotated

from pydantic import AfterValidator, Field, field_validator

from conduit.profiles.schemas import Profile
from conduit.schemas import (
    NOT_BLANK_TEXT,
    Input,
    NotBlank,
    NotNull,
    Schema,
    Strip,
    Timestamp,
    reject_blank,
)

MAX_TAGS = 10


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


Title = Annotated[str, Field(max_length=200, pattern=NOT_BLANK_TEXT), NotBlank, Strip]
Description = Annotated[str, Field(max_length=1000, pattern=NOT_BLANK_TEXT), NotBlank, Strip]
Body = Annotated[str, Field(max_length=100_000, pattern=NOT_BLANK_TEXT), NotBlank]
TagName = Annotated[str, Field(max_length=50, pattern=NOT_BLANK_TEXT), NotBlank, Strip]
TagList = Annotated[list[TagName], Field(max_length=MAX_TAGS), AfterValidator(_unique)]


class NewArticle(Input):
    title: Title
    description: Description
    body: Body
    tag_list: TagList = Field(default_factory=list)


class NewArticleRequest(Input):
    article: NewArticle


class UpdateArticle(Input):
    """Only the fields sent change; none can be null. `tagList: []` removes every tag;
    omitting it keeps them."""

    title: Annotated[Title | None, NotNull] = None
    description: Annotated[Description | None, NotNull] = None
    body: Annotated[Body | None, NotNull] = None
    tag_list: Annotated[TagList | None, NotNull] = None

    _reject_blank = field_validator("title", "description", "body", "tag_list", mode="before")(
        reject_blank
    )


class UpdateArticleRequest(Input):
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
