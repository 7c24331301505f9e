"""Comments as the API shows them, rendered by the database."""

from functools import cache, partial
from typing import NewType

import orjson
from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    String,
    bindparam,
    exists,
    select,
)

from conduit.articles import Article
from conduit.articles import reads as articles_reads
from conduit.auth import User
from conduit.cache import CachedRead, Document, Entry, document_of
from conduit.cache import versions as cached_versions
from conduit.comments.models import Comment
from conduit.database import Read, Reader
from conduit.errors import NotFound
from conduit.profiles import reads as profiles_reads
from conduit.profiles.reads import VIEWER_ID
from conduit.sql_json import JSONFunctions, as_text

# `{"comment": {...}}`
CommentDocument = NewType("CommentDocument", str)
# `{"comments": [...]}`
CommentsDocument = NewType("CommentsDocument", str)

_SLUG: BindParameter[str] = bindparam("slug", type_=String)
_COMMENT_ID: BindParameter[int] = bindparam("comment_id", type_=Integer)


def _comment(j: JSONFunctions, *, viewer_id: BindParameter[int] | None) -> ColumnElement[str]:
    """The comment of the enclosing query's `comments` row (joined to its author in `users`)."""
    return j.object(
        id=Comment.id,
        createdAt=j.timestamp(Comment.created_at),
        updatedAt=j.timestamp(Comment.updated_at),
        body=Comment.body,
        author=profiles_reads.profile(j, viewer_id=viewer_id),
    )


@cache
def _comments_read(*, signed_in: bool) -> Read[CommentsDocument]:
    """Oldest first; no row at all when there is no article at `slug`."""
    viewer_id = VIEWER_ID if signed_in else None

    def build(j: JSONFunctions) -> Select[str]:
        article_id = articles_reads.id_of(_SLUG).scalar_subquery()
        rows = (
            select(_comment(j, viewer_id=viewer_id).label("document"), Comment.id)
            .join(User, User.id == Comment.author_id)
            .where(Comment.article_id == article_id)
            .subquery()
        )
        comments = j.array(j.document(rows.c.document), from_=rows, order_by=[rows.c.id])
        return select(as_text(j.object(comments=comments))).where(
            exists(articles_reads.id_of(_SLUG))
        )

    return Read(build)


def _comment_by_id(j: JSONFunctions) -> Select[str]:
    return (
        select(as_text(j.object(comment=_comment(j, viewer_id=VIEWER_ID))))
        .select_from(Comment)
        .join(User, User.id == Comment.author_id)
        .where(Comment.id == _COMMENT_ID)
    )


_COMMENT: Read[CommentDocument] = Read(_comment_by_id)


class CommentAuthors(BaseModel):
    """Who wrote a comment, on which article, and who wrote that."""

    model_config = ConfigDict(frozen=True)

    commenter_id: int
    article_id: int
    article_author_id: int


def _authors(j: JSONFunctions) -> Select[str]:
    authors = j.object(
        commenter_id=Comment.author_id,
        article_id=Comment.article_id,
        article_author_id=Article.author_id,
    )
    return (
        select(as_text(authors))
        .select_from(Comment)
        .join(Article, Article.id == Comment.article_id)
        .where(Comment.id == _COMMENT_ID)
    )


_AUTHORS: Read[str] = Read(_authors)


async def authors(db: Reader, *, comment_id: int) -> CommentAuthors | None:
    """None when the comment is gone."""
    document = await db.scalar(_AUTHORS, comment_id=comment_id)
    return None if document is None else CommentAuthors.model_validate_json(document)


async def list_for_article(db: Reader, *, slug: str, viewer_id: int | None) -> CommentsDocument:
    read = _comments_read(signed_in=viewer_id is not None)
    document = await db.scalar(read, slug=slug, viewer_id=viewer_id)
    if document is None:
        raise NotFound("article")
    return document


async def get(db: Reader, *, comment_id: int, viewer_id: int) -> CommentDocument:
    document = await db.scalar(_COMMENT, comment_id=comment_id, viewer_id=viewer_id)
    if document is None:
        raise NotFound("comment")
    return document


def cached(db: Reader, *, slug: str) -> CachedRead:
    """An article's comments, shared by every viewer; a signed-in viewer's flags set on a
    copy."""

    async def build(viewer_id: int | None) -> str:
        return await list_for_article(db, slug=slug, viewer_id=viewer_id)

    names = (cached_versions.comments(slug), cached_versions.PROFILES)
    entry = Entry(_comments_read(signed_in=False), f"comments:{slug}", names)
    return CachedRead(entry, build, partial(_for_viewer, db))


async def _for_viewer(db: Reader, document: Document, viewer_id: int) -> Document:
    """The shared comments with each author's `following` as the viewer sees it."""
    comments = orjson.loads(document.body)
    authors = [comment["author"] for comment in comments["comments"]]
    following = await profiles_reads.followed(
        db, viewer_id=viewer_id, usernames=list({author["username"] for author in authors})
    )
    for author in authors:
        author["following"] = author["username"] in following
    return document_of(orjson.dumps(comments))
