"""Writing a planned dataset: its rows, table by table in batches, to a migrated, empty database."""

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol, cast

from slugify import slugify
from sqlalchemy import Connection, Table, exists, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from conduit.articles.service import SLUG_MAX_LENGTH
from conduit.auth.passwords import PasswordHasher
from conduit.models import ArticleTotal, Base
from conduit.seed.plan import SEEDED_TABLES, Plan, _at, _distinct, _rng
from conduit.seed.text import _Prose, _usernames, tag_vocabulary

# Every seeded user signs in with this password (argon2 hashing it once per user would take
# minutes at the large scale; the hash is computed once and shared).
SEED_PASSWORD = "conduit-seed-password"  # noqa: S105
BATCH_ROWS = 2000
# Shares of users with a bio, and with an avatar.
BIO_SHARE = 0.75
IMAGE_SHARE = 0.6


class DatabaseNotReady(Exception):
    """The database is not migrated to head, or already holds data."""


Row = tuple[object, ...]
ProgressCallback = Callable[[int], None]


_USER_COLUMNS = (
    "id",
    "username",
    "email",
    "password_hash",
    "bio",
    "image",
    "created_at",
    "updated_at",
)
_ARTICLE_COLUMNS = (
    "id",
    "slug",
    "title",
    "description",
    "body",
    "author_id",
    "created_at",
    "updated_at",
)
_COMMENT_COLUMNS = ("id", "body", "article_id", "author_id", "created_at", "updated_at")


def _tag_rows(plan: Plan) -> Iterator[Row]:
    for index, name in enumerate(tag_vocabulary(plan.scale.tags)):
        yield index + 1, name


def _user_rows(plan: Plan, password_hash: str) -> Iterator[Row]:
    rng = _rng(plan.seed, "users")
    prose = _Prose(rng)
    names = _usernames(rng, plan.scale.users)
    for index, (name, created_ms) in enumerate(zip(names, plan.user_created_ms, strict=True)):
        bio = prose.text(1, 3) if rng.random() < BIO_SHARE else None
        image = (
            f"https://images.example.com/avatars/{name}.jpg" if rng.random() < IMAGE_SHARE else None
        )
        created = _at(created_ms)
        yield index + 1, name, f"{name}@example.com", password_hash, bio, image, created, created


def _article_rows(plan: Plan) -> Iterator[Row]:
    prose = _Prose(_rng(plan.seed, "articles"))
    slugs: set[str] = set()
    for index, article in enumerate(plan.articles):
        title = prose.title()
        slug = base = slugify(title, max_length=SLUG_MAX_LENGTH, word_boundary=True)
        while slug in slugs:
            slug = f"{base}-{prose.rng.getrandbits(32):08x}"
        slugs.add(slug)
        description = prose.text(1, 2)
        created, updated = _at(article.created_ms), _at(article.updated_ms)
        yield (
            index + 1,
            slug,
            title,
            description,
            prose.body(),
            article.author + 1,
            created,
            updated,
        )


def _article_tag_rows(plan: Plan) -> Iterator[Row]:
    for index, article in enumerate(plan.articles):
        for tag in article.tags:
            yield index + 1, tag + 1


def _follow_rows(plan: Plan) -> Iterator[Row]:
    rng = _rng(plan.seed, "follows")
    for follower, count in enumerate(plan.follows_per_user):
        for followee in _distinct(rng, plan.followee_weights, count, exclude=follower):
            yield follower + 1, followee + 1


def _favorite_rows(plan: Plan) -> Iterator[Row]:
    rng = _rng(plan.seed, "favorites")
    for article, count in enumerate(plan.favorites_per_article):
        for user in rng.sample(range(plan.scale.users), count):
            yield user + 1, article + 1


def _comment_rows(plan: Plan) -> Iterator[Row]:
    """Each comment after its article and its author's sign-up; ids in order of time."""
    rng = _rng(plan.seed, "comments")
    typical_delay_ms = 3 * 24 * 3_600_000
    comments = []
    for article, count in enumerate(plan.comments_per_article):
        for _ in range(count):
            author = rng.randrange(plan.scale.users)
            earliest = max(plan.articles[article].created_ms, plan.user_created_ms[author]) + 1000
            delay = int(rng.expovariate(1 / typical_delay_ms))
            comments.append((min(earliest + delay, plan.now_ms), article, author))
    comments.sort()
    prose = _Prose(rng)
    for index, (created_ms, article, author) in enumerate(comments):
        created = _at(created_ms)
        yield index + 1, prose.text(1, 4), article + 1, author + 1, created, created


class _CopyConnection(Protocol):
    """The part of asyncpg's connection used here."""

    async def copy_records_to_table(
        self, table_name: str, *, records: Iterable[Sequence[object]], columns: Sequence[str]
    ) -> str: ...


def _batches(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


async def _write(
    connection: AsyncConnection,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Row],
    on_progress: ProgressCallback,
) -> None:
    for batch in _batches(rows, BATCH_ROWS):
        if connection.dialect.name == "postgresql":
            raw = await connection.get_raw_connection()
            driver = cast(_CopyConnection, raw.driver_connection)
            await driver.copy_records_to_table(table.name, records=batch, columns=columns)
        else:
            await connection.execute(
                table.insert(), [dict(zip(columns, row, strict=True)) for row in batch]
            )
        on_progress(len(batch))


def _current_and_head(connection: Connection) -> tuple[str | None, str | None]:
    # Alembic costs every process a quarter second at start; only seeding needs it here.
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    from conduit import migrations  # noqa: PLC0415

    current = MigrationContext.configure(connection).get_current_revision()
    head = ScriptDirectory.from_config(migrations.alembic_config()).get_current_head()
    return current, head


async def ensure_ready(connection: AsyncConnection) -> None:
    """Raise `DatabaseNotReady` unless the schema is at head and every table is empty."""
    current, head = await connection.run_sync(_current_and_head)
    if current != head:
        raise DatabaseNotReady(
            f"The database is at migration {current or 'none'}, not {head}: "
            "run `conduit migrate` first."
        )
    for table in Base.metadata.sorted_tables:
        if table is ArticleTotal.__table__:
            continue
        if await connection.scalar(select(exists().select_from(table))):
            raise DatabaseNotReady(
                f"The database already has data (table {table.name} is not empty): "
                "seed an empty database."
            )


async def _finish_postgres(connection: AsyncConnection) -> None:
    """Move the id sequences past the ids written here, and give the planner statistics."""
    for name in ("tags", "users", "articles", "comments"):
        table = Base.metadata.tables[name]
        await connection.execute(
            select(func.setval(func.pg_get_serial_sequence(name, "id"), func.max(table.c.id)))
        )
    for name in SEEDED_TABLES:
        await connection.execute(text(f"ANALYZE {name}"))


async def seed(
    connection: AsyncConnection, plan: Plan, *, on_progress: ProgressCallback = lambda _: None
) -> None:
    """Write the planned dataset in the connection's transaction; the caller commits."""
    await ensure_ready(connection)
    password_hash = await PasswordHasher(concurrency=1).hash(SEED_PASSWORD)
    tables: list[tuple[str, Sequence[str], Iterable[Row]]] = [
        ("tags", ("id", "name"), _tag_rows(plan)),
        ("users", _USER_COLUMNS, _user_rows(plan, password_hash)),
        ("articles", _ARTICLE_COLUMNS, _article_rows(plan)),
        ("article_tags", ("article_id", "tag_id"), _article_tag_rows(plan)),
        ("follows", ("follower_id", "followee_id"), _follow_rows(plan)),
        ("favorites", ("user_id", "article_id"), _favorite_rows(plan)),
        ("comments", _COMMENT_COLUMNS, _comment_rows(plan)),
    ]
    for name, columns, rows in tables:
        await _write(connection, Base.metadata.tables[name], columns, rows, on_progress)
    await connection.execute(update(ArticleTotal).values(count=len(plan.articles)))
    if connection.dialect.name == "postgresql":
        await _finish_postgres(connection)
