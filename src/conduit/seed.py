"""A deterministic, realistic dataset for demos and benchmarks: `conduit seed`.

The same seed, scale and anchor time give the same rows. Rows are planned in memory (who wrote
what, when, with which tags), then generated and written table by table in batches: COPY on
PostgreSQL, executemany on SQLite. Ids are assigned here, in creation order, so that no insert
has to report one back.
"""

import bisect
import itertools
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol, cast

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from slugify import slugify
from sqlalchemy import Connection, Table, exists, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from conduit import migrations
from conduit.articles.service import SLUG_MAX_LENGTH
from conduit.auth.passwords import PasswordHasher
from conduit.models import ArticleTotal, Base

# Every seeded user signs in with this password (argon2 hashing it once per user would take
# minutes at the large scale; the hash is computed once and shared).
SEED_PASSWORD = "conduit-seed-password"  # noqa: S105
SPAN = timedelta(days=730)
BATCH_ROWS = 2000
MAX_TAGS_PER_ARTICLE = 10
MAX_FOLLOWS_PER_USER = 500
MAX_COMMENTS_PER_ARTICLE = 200
BODY_CHARS = (2048, 8192)
# Shares of articles edited after publication, of users with a bio, with an avatar, and of
# usernames with a number in them.
EDITED_SHARE = 0.2
BIO_SHARE = 0.75
IMAGE_SHARE = 0.6
NUMBERED_NAME_SHARE = 0.3
_MS = timedelta(milliseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class DatabaseNotReady(Exception):
    """The database is not migrated to head, or already holds data."""


class ScaleName(StrEnum):
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


@dataclass(frozen=True, slots=True)
class Scale:
    users: int
    articles: int
    favorites: int
    follows: int
    comments: int
    tags: int

    def __post_init__(self) -> None:
        if min(self.users - 1, self.articles, self.tags - MAX_TAGS_PER_ARTICLE + 1) < 1:
            raise ValueError("a scale needs 2 users, 1 article and 10 tags at least")
        if self.favorites > self.users * self.articles:
            raise ValueError("more favorites than user-article pairs")
        if self.follows > self.users * min(self.users - 1, MAX_FOLLOWS_PER_USER):
            raise ValueError("more follows than the users can make")
        if self.comments > self.articles * MAX_COMMENTS_PER_ARTICLE:
            raise ValueError("more comments than the articles can take")


SCALES = {
    ScaleName.SMALL: Scale(
        users=500, articles=1_000, favorites=12_000, follows=5_000, comments=4_000, tags=300
    ),
    ScaleName.MEDIUM: Scale(
        users=5_000, articles=10_000, favorites=120_000, follows=50_000, comments=40_000, tags=300
    ),
    ScaleName.LARGE: Scale(
        users=20_000,
        articles=100_000,
        favorites=1_200_000,
        follows=200_000,
        comments=400_000,
        tags=400,
    ),
}


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FIRST = _words(
    "ada alan alice amara anna ben carla chen chloe dan diego elena emma eric farah felix grace"
    " hana hugo ines ivan jack jana jin kai kofi lara leo lina luca maya mei mila nadia noah"
    " nora olga omar paul priya quinn rafael rosa sam sara sofia tariq theo uma vera wei yara"
    " yusuf zoe"
)
_LAST = _words(
    "abara adams baker becker chen costa davis diaz evans fischer garcia gomez hansen ito jones"
    " kim kowalski lee lopez martin meyer moreau nakamura nguyen novak okafor olsen park patel"
    " perez popescu rossi santos schmidt silva smith suzuki tanaka taylor torres wagner walker"
    " wang weber white wilson yilmaz zhang"
)
_TECH = _words(
    "python rust go java kotlin swift typescript javascript react vue svelte angular django"
    " fastapi flask rails laravel spring node deno postgres mysql sqlite redis kafka rabbitmq"
    " docker kubernetes terraform ansible aws gcp azure linux git graphql rest grpc websockets"
    " html css tailwind webassembly llvm compilers databases caching queues testing security"
    " cryptography oauth accessibility design ux performance observability logging tracing"
    " devops ci microservices monoliths serverless elixir haskell ocaml scala clojure zig"
    " c cpp dotnet csharp php ruby perl lua bash vim emacs vscode neovim machine-learning"
    " data-science pandas numpy pytorch statistics algorithms concurrency async networking"
    " http dns tls mobile android ios embedded iot gamedev opengl vulkan audio career"
    " interviews remote-work productivity open-source documentation architecture"
)
_ASPECTS = _words(
    "tips internals patterns performance testing security tooling migration basics advanced"
    " in-production best-practices pitfalls ecosystem deep-dive"
)
_NOUNS = _words(
    "service schema query index cache queue worker pipeline deploy release build test bug"
    " feature endpoint request response token session migration cluster node container"
    " function module package library framework interface protocol pattern benchmark profile"
    " latency throughput memory thread process socket stream buffer parser compiler runtime"
    " team review design decision tradeoff outage incident metric dashboard alert"
)
_VERBS = _words(
    "build ship debug scale test profile refactor deploy monitor design migrate rewrite"
    " optimise document secure automate measure simplify replace learn teach review"
)
_ADJECTIVES = _words(
    "fast slow simple robust fragile small large modern legacy reliable elegant pragmatic"
    " concurrent distributed typed dynamic lazy strict readable boring practical surprising"
)
_FILLER = _words(
    "the a an and or but so because when while if then that this these those it we you they"
    " our your their is are was were be been can will should would might must not only also"
    " just very more most less every each some many few all of in on at to for with from by"
    " about into over after before without between through during"
)
_TITLES = (
    "How to {verb} a {adj} {noun} with {tech}",
    "Why your {tech} {noun} is {adj}",
    "{n} lessons from {verb}ing {tech} in production",
    "A practical guide to {tech} {noun}s",
    "Understanding the {noun} in {tech}",
    "What I learned when we had to {verb} our {tech} {noun}",
    "{tech} vs {tech2}: choosing a {noun} for a {adj} team",
    "The {adj} way to {verb} {tech} {noun}s",
    "Stop trying to {verb} every {noun}",
    "From zero to {adj} {noun}: {tech} edition",
)


SEEDED_TABLES = ("tags", "users", "articles", "article_tags", "follows", "favorites", "comments")
Row = tuple[object, ...]
ProgressCallback = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class _ArticlePlan:
    author: int
    created_ms: int
    updated_ms: int
    tags: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """Who writes, follows, favorites and comments on what, and when. Indices are 0-based; the
    ids written are index + 1. Text is generated at write time, from its own random streams."""

    seed: int
    scale: Scale
    now_ms: int
    user_created_ms: list[int]
    articles: list[_ArticlePlan]
    followee_weights: list[float]
    favorites_per_article: list[int]
    follows_per_user: list[int]
    comments_per_article: list[int]

    @property
    def counts(self) -> dict[str, int]:
        """Rows per table, in the order they are written."""
        scale = self.scale
        article_tags = sum(len(article.tags) for article in self.articles)
        counts = (scale.tags, scale.users, scale.articles, article_tags, scale.follows)
        return dict(zip(SEEDED_TABLES, (*counts, scale.favorites, scale.comments), strict=True))


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


def _at(ms: int) -> datetime:
    return _EPOCH + ms * _MS


def _rng(seed: int, stream: str) -> random.Random:
    # Seeded for reproducible data, never for secrets. One stream per table, so that changing how
    # one table is generated leaves the others as they were.
    return random.Random(f"{seed}:{stream}")  # noqa: S311


def _heavy_tailed(rng: random.Random, count: int) -> list[float]:
    return [rng.paretovariate(1.5) for _ in range(count)]


def _allocate(total: int, weights: Sequence[float], cap: int) -> list[int]:
    """Split `total` over the weights, at most `cap` each, summing exactly to `total`."""
    per_weight = total / sum(weights)
    counts = [min(cap, int(weight * per_weight)) for weight in weights]
    remaining = total - sum(counts)
    heaviest_first = sorted(range(len(weights)), key=lambda index: -weights[index])
    while remaining:
        for index in heaviest_first:
            if remaining and counts[index] < cap:
                counts[index] += 1
                remaining -= 1
    return counts


def _distinct(rng: random.Random, cum_weights: Sequence[float], k: int, exclude: int) -> list[int]:
    """`k` distinct indices drawn by weight, never `exclude`."""
    size = len(cum_weights)
    if k > size // 4:
        return rng.sample([index for index in range(size) if index != exclude], k)
    chosen: dict[int, None] = {}
    while len(chosen) < k:
        index = bisect.bisect(cum_weights, rng.random() * cum_weights[-1])
        if index != exclude:
            chosen[index] = None
    return list(chosen)


def tag_vocabulary(count: int) -> list[str]:
    combined = (f"{tech}-{aspect}" for aspect in _ASPECTS for tech in _TECH)
    return list(itertools.islice(itertools.chain(_TECH, combined), count))


def _plan_articles(
    rng: random.Random, scale: Scale, user_created: Sequence[int], now_ms: int
) -> list[_ArticlePlan]:
    """Prolific authors write most articles, each after its author joined; oldest first."""
    activity = list(itertools.accumulate(_heavy_tailed(rng, scale.users)))
    tag_weights = list(itertools.accumulate(1 / rank for rank in range(1, scale.tags + 1)))
    articles = []
    for _ in range(scale.articles):
        author = bisect.bisect(activity, rng.random() * activity[-1])
        created = rng.randint(user_created[author], now_ms - 3_600_000)
        updated = rng.randint(created, now_ms) if rng.random() < EDITED_SHARE else created
        tag_count = rng.choice((0, 1, 2, 2, 3, 3, 3, 4, 4, 5, 6, MAX_TAGS_PER_ARTICLE))
        tags = tuple(sorted(_distinct(rng, tag_weights, tag_count, exclude=-1)))
        articles.append(_ArticlePlan(author, created, updated, tags))
    articles.sort(key=lambda article: article.created_ms)
    return articles


def plan(scale: Scale, *, seed: int, now: datetime) -> Plan:
    """Everything but the text, for timestamps over the two years before `now`."""
    rng = _rng(seed, "plan")
    now_ms, start_ms = _ms(now), _ms(now - SPAN)
    users_until = start_ms + (now_ms - start_ms) * 4 // 5
    user_created = sorted(rng.randint(start_ms, users_until) for _ in range(scale.users))
    articles = _plan_articles(rng, scale, user_created, now_ms)
    authored = [1.0] * scale.users
    for article in articles:
        authored[article.author] += 1
    popularity = _heavy_tailed(rng, scale.articles)
    return Plan(
        seed=seed,
        scale=scale,
        now_ms=now_ms,
        user_created_ms=user_created,
        articles=articles,
        followee_weights=list(itertools.accumulate(authored)),
        favorites_per_article=_allocate(scale.favorites, popularity, scale.users),
        follows_per_user=_allocate(
            scale.follows,
            _heavy_tailed(rng, scale.users),
            min(scale.users - 1, MAX_FOLLOWS_PER_USER),
        ),
        comments_per_article=_allocate(scale.comments, popularity, MAX_COMMENTS_PER_ARTICLE),
    )


class _Prose:
    """Markdown-ish English text, assembled from a pool of generated sentences."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        words = _FILLER * 3 + _NOUNS + _VERBS + _ADJECTIVES + _TECH
        self.sentences = [self._sentence(words) for _ in range(3000)]

    def _sentence(self, words: Sequence[str]) -> str:
        picked = self.rng.choices(words, k=self.rng.randint(6, 22))
        match self.rng.choices(("code", "bold", "link", "plain"), weights=(8, 6, 3, 83))[0]:
            case "code":
                picked[-1] = f"`{picked[-1]}()`"
            case "bold":
                picked[0] = f"**{picked[0]}**"
            case "link":
                picked[-1] = f"[{picked[-1]}](https://example.com/{picked[-1]})"
        return " ".join(picked).capitalize() + self.rng.choice(".....?!")

    def text(self, low: int, high: int) -> str:
        """Between `low` and `high` sentences."""
        return " ".join(self.rng.choices(self.sentences, k=self.rng.randint(low, high)))

    def title(self) -> str:
        tech, tech2 = self.rng.sample(_TECH, 2)
        return self.rng.choice(_TITLES).format(
            verb=self.rng.choice(_VERBS),
            adj=self.rng.choice(_ADJECTIVES),
            noun=self.rng.choice(_NOUNS),
            tech=tech,
            tech2=tech2,
            n=self.rng.randint(3, 12),
        )

    def body(self) -> str:
        target = self.rng.randint(BODY_CHARS[0], BODY_CHARS[1] * 15 // 16)
        parts = [self.text(2, 4)]
        size = len(parts[0])
        while size < target:
            block = self._block()
            if size + len(block) + 2 > BODY_CHARS[1]:
                break
            parts.append(block)
            size += len(block) + 2
        return "\n\n".join(parts)

    def _block(self) -> str:
        match self.rng.choices(("heading", "list", "code", "paragraph"), weights=(12, 8, 5, 75))[0]:
            case "heading":
                return "## " + self.text(1, 1).rstrip(".?!")
            case "list":
                return "\n".join("- " + self.text(1, 1) for _ in range(self.rng.randint(2, 5)))
            case "code":
                calls = (f"{self.rng.choice(_VERBS)}({self.rng.choice(_NOUNS)})" for _ in range(4))
                return "```python\n" + "\n".join(calls) + "\n```"
        return self.text(3, 7)


def _usernames(rng: random.Random, count: int) -> Iterator[str]:
    taken: set[str] = set()
    while len(taken) < count:
        name = rng.choice(("", ".", "_", "-")).join((rng.choice(_FIRST), rng.choice(_LAST)))
        if name in taken or rng.random() < NUMBERED_NAME_SHARE:
            name += str(rng.randint(1, 9999))
        if name not in taken:
            taken.add(name)
            yield name


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
