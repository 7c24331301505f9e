"""The jobs that write notifications, one per event; each writes a recipient's notification
once, whatever the number of runs (`Notification.job_id`). A follow notifies once a day per
follower however often it is undone and redone (`Notification.dedupe_key`), and a recipient
keeps at most `MAX_UNREAD` unread notifications, the oldest dropped."""

from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.articles import reads as articles_reads
from conduit.comments import reads as comments_reads
from conduit.database import SessionReader, insert, utcnow
from conduit.jobs import Arguments, Job, JobContext, enqueue, task
from conduit.notifications.models import Kind, Notification
from conduit.profiles import reads as profiles_reads

# The unread notifications a user keeps: a flood (of followers, of comments) costs their storage
# no more than this.
MAX_UNREAD = 1_000


class Event(Arguments):
    # When it happened, which is when its notifications are dated (jobs may run in any order).
    at: datetime


class Published(Event):
    article_id: int
    author_id: int


class Commented(Event):
    comment_id: int


class Followed(Event):
    follower_id: int
    followee_id: int


async def _notify(
    session: AsyncSession, job: Job, event: Event, rows: list[dict[str, object]]
) -> None:
    """Insert the rows, each at most once (per job and recipient, and per dedupe key), then drop
    the recipients' unread beyond `MAX_UNREAD`: two statements, whatever the number of rows."""
    if not rows:
        return
    await session.execute(
        insert(session, Notification)
        .values(
            [
                {"dedupe_key": None} | row | {"job_id": job.id, "created_at": event.at}
                for row in rows
            ]
        )
        # No conflict target: a row that conflicts on either unique constraint is skipped.
        .on_conflict_do_nothing()
    )
    newest_first = (
        select(
            Notification.id,
            func.row_number()
            .over(
                partition_by=Notification.recipient_id,
                order_by=(Notification.created_at.desc(), Notification.id.desc()),
            )
            .label("rank"),
        )
        .where(
            Notification.recipient_id.in_({row["recipient_id"] for row in rows}),
            Notification.read_at.is_(None),
        )
        .subquery()
    )
    await session.execute(
        delete(Notification).where(
            Notification.id.in_(select(newest_first.c.id).where(newest_first.c.rank > MAX_UNREAD))
        )
    )


async def published(session: AsyncSession, *, article_id: int, author_id: int) -> None:
    event = Published(at=utcnow(), article_id=article_id, author_id=author_id)
    await enqueue(session, article_published, event)


async def commented(session: AsyncSession, *, comment_id: int) -> None:
    await enqueue(session, comment_created, Commented(at=utcnow(), comment_id=comment_id))


async def followed(session: AsyncSession, *, follower_id: int, followee_id: int) -> None:
    event = Followed(at=utcnow(), follower_id=follower_id, followee_id=followee_id)
    await enqueue(session, user_followed, event)


@task("notifications.article_published", Published)
async def article_published(context: JobContext, job: Job, event: Published) -> None:
    """Every follower of the author, `fan_out_batch_size` at a time, each batch a transaction
    of its own: a run that fails half-way resumes where it may, and writes nobody twice."""
    batch_size = context.settings.jobs.fan_out_batch_size
    after = 0
    while True:
        async with context.unit_of_work() as session:
            db = SessionReader(session)
            if not await articles_reads.present(db, article_id=event.article_id):
                return
            followers = await profiles_reads.followers(
                db, user_id=event.author_id, after=after, limit=batch_size
            )
            await _notify(
                session,
                job,
                event,
                [
                    {
                        "recipient_id": follower_id,
                        "kind": Kind.ARTICLE_PUBLISHED,
                        "actor_id": event.author_id,
                        "article_id": event.article_id,
                    }
                    for follower_id in followers
                ],
            )
        if len(followers) < batch_size:
            return
        after = followers[-1]


@task("notifications.comment_created", Commented)
async def comment_created(context: JobContext, job: Job, event: Commented) -> None:
    """The article's author, unless they wrote the comment."""
    async with context.unit_of_work() as session:
        authors = await comments_reads.authors(SessionReader(session), comment_id=event.comment_id)
        if authors is None:
            return
        if authors.commenter_id != authors.article_author_id:
            await _notify(
                session,
                job,
                event,
                [
                    {
                        "recipient_id": authors.article_author_id,
                        "kind": Kind.COMMENT_CREATED,
                        "actor_id": authors.commenter_id,
                        "article_id": authors.article_id,
                        "comment_id": event.comment_id,
                    }
                ],
            )


@task("notifications.user_followed", Followed)
async def user_followed(context: JobContext, job: Job, event: Followed) -> None:
    async with context.unit_of_work() as session:
        await _notify(
            session,
            job,
            event,
            [
                {
                    "recipient_id": event.followee_id,
                    "kind": Kind.USER_FOLLOWED,
                    "actor_id": event.follower_id,
                    "dedupe_key": (
                        f"followed:{event.follower_id}:{event.followee_id}:{event.at.astimezone(UTC).date()}"
                    ),
                }
            ],
        )
