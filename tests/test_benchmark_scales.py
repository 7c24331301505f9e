"""The `tiny` scale gives `./dev bench` what its scenarios rotate over (the fixtures of
benchmarks.setup.database): 8 articles with comments for the article and comments scenarios, 8
readers who follow 5 to 50 authors for the signed-in ones, and a page of the list, with the
harness's seed (1) on any day. Nothing is seeded here: the plan decides it."""

from datetime import UTC, datetime, timedelta

import pytest
from benchmarks.setup.database import READERS, TINY_SLUGS

from conduit import seed as seeding

pytestmark = pytest.mark.one_pass

LIST_PAGE = 20
READERS_FOLLOW = range(5, 51)


@pytest.mark.parametrize("days", range(0, 366, 61))
def test_the_tiny_scale_has_what_the_scenarios_rotate_over(days: int) -> None:
    scale = seeding.SCALES[seeding.ScaleName.TINY]
    now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=days)

    plan = seeding.plan(scale, seed=1, now=now)

    assert scale.articles >= LIST_PAGE
    assert sum(count > 0 for count in plan.comments_per_article) >= TINY_SLUGS
    assert sum(count in READERS_FOLLOW for count in plan.follows_per_user) >= READERS
