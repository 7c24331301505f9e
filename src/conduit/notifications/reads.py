"""A user's notifications as the API shows them, rendered by the database."""

from typing import NewType

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    bindparam,
    case,
    func,
    select,
)

from conduit.articles import Article
from conduit.auth import User
from conduit.comments import Comment
from conduit.database import Read, Reader, aggregate
from conduit.notifications.models import Notification
from conduit.profiles import reads as profiles_reads
from conduit.profiles.reads import VIEWER_ID
from conduit.sql_json import JSONFunctions, as_text

# `{"notifications": [...], "notificationsCount": N, "unreadCount": M}`
NotificationsDocument = NewType("NotificationsDocument", str)

_LIMIT: BindParameter[int] = bindparam("limit", type_=Integer)
_OFFSET: BindParameter[int] = bindparam("offset", type_=Integer)


def _notification(j: JSONFunctions) -> ColumnElement[str]:
    """The notification of the enclosing query's row, joined to its actor in `users` and,
    outer, to its article and comment."""
    return j.object(
        id=as_text(Notification.id),
        kind=Notification.kind,
        createdAt=j.timestamp(Notification.created_at),
        read=j.boolean(Notification.read_at.is_not(None)),
        actor=profiles_reads.profile(j, viewer_id=VIEWER_ID),
        article=j.document(
            case(
                (
                    Notification.article_id.is_not(None),
                    j.object(slug=Article.slug, title=Article.title),
                )
            )
        ),
        comment=j.document(
            case(
                (
                    Notification.comment_id.is_not(None),
                    j.object(id=Comment.id, body=Comment.body),
                )
            )
        ),
    )


def _page(j: JSONFunctions) -> Select[str]:
    mine = Notification.recipient_id == VIEWER_ID
    # A deferred join, as for articles (`conduit.articles.reads`): JSON for the page's rows only.
    ids = (
        select(Notification.id)
        .where(mine)
        .order_by(Notification.created_at.desc(), Notification.id.desc())
        .limit(_LIMIT)
        .offset(_OFFSET)
        .subquery()
    )
    rows = (
        select(_notification(j).label("document"), Notification.created_at, Notification.id)
        .select_from(ids)
        .join(Notification, Notification.id == ids.c.id)
        .join(User, User.id == Notification.actor_id)
        .outerjoin(Article, Article.id == Notification.article_id)
        .outerjoin(Comment, Comment.id == Notification.comment_id)
        .subquery()
    )
    counts = select(
        func.count().label("total"),
        func.count(Notification.read_at).label("read"),
    ).where(mine)
    total = counts.subquery()
    return select(
        as_text(
            j.object(
                notifications=j.array(
                    j.document(rows.c.document),
                    from_=rows,
                    order_by=[rows.c.created_at.desc(), rows.c.id.desc()],
                ),
                notificationsCount=total.c.total,
                unreadCount=total.c.total - total.c.read,
            )
        )
    ).select_from(total)


_PAGE: Read[NotificationsDocument] = Read(_page)


async def page(db: Reader, *, user_id: int, limit: int, offset: int) -> NotificationsDocument:
    """Newest first."""
    return await aggregate(db, _PAGE, viewer_id=user_id, limit=limit, offset=offset)
