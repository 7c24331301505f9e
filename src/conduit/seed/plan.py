"""The scales, and the plan of a dataset: everything but the text, from seeded random streams."""

import bisect
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

SPAN = timedelta(days=730)
MAX_TAGS_PER_ARTICLE = 10
MAX_FOLLOWS_PER_USER = 500
MAX_COMMENTS_PER_ARTICLE = 200
# Share of articles edited after publication.
EDITED_SHARE = 0.2
_MS = timedelta(milliseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ScaleName(StrEnum):
    TINY = "tiny"
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
    # A handful of tags and a page's worth of articles: what a request costs whatever the data.
    ScaleName.TINY: Scale(users=20, articles=20, favorites=100, follows=200, comments=160, tags=10),
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


SEEDED_TABLES = ("tags", "users", "articles", "article_tags", "follows", "favorites", "comments")


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
