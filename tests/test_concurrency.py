"""Concurrent requests that really commit, against the real database: each test sends a crowd of
requests at once and checks what must hold however they interleave."""

import asyncio
import re
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response

from conduit.config import Rate, Settings
from conduit.ratelimit.limiter import RateLimiter
from conduit.ratelimit.policies import Policies
from tests.app_clients import clients_of
from tests.factories import PASSWORD, auth, bearer, create_article, oauth_tokens, register

pytestmark = pytest.mark.anyio

# Twice PostgreSQL's 20 write connections (pool and overflow), so that requests overlap there and
# some wait for a connection, as all but one do for SQLite's; few enough that the file takes
# seconds.
CROWD = 40
# Users who each send a burst of their own, all at once.
FEW = 8
BURST = 6


@pytest.fixture(autouse=True)
def sign_in_for_a_crowd(app: FastAPI, settings: Settings) -> Iterator[None]:
    """Every request comes from the test client's one address, which the sign-in limit would
    refuse after 20 a minute: what is under test here is the database, not the limiter."""
    rates = settings.rate_limit.model_copy(
        update={"sign_in": Rate(quota=10 * CROWD, window_seconds=60)}
    )
    connected = clients_of(app)
    crowded = RateLimiter(
        Policies.from_settings(rates),
        connected.store,
        prefix=f"{settings.redis.key_prefix}:{uuid.uuid4().hex[:12]}",
    )
    app.state.clients = replace(connected, rate_limiter=crowded)
    yield
    app.state.clients = replace(clients_of(app), rate_limiter=connected.rate_limiter)


async def _register_all(client: AsyncClient, prefix: str, count: int) -> list[str]:
    return list(
        await asyncio.gather(*(register(client, f"{prefix}{number}") for number in range(count)))
    )


def _statuses(responses: list[Response]) -> list[int]:
    return [response.status_code for response in responses]


def _case_variant(word: str, number: int) -> str:
    """The `number`th spelling of `word` in upper and lower case: `twinning`, `Twinning`, ..."""
    return "".join(
        letter.upper() if number >> place & 1 else letter for place, letter in enumerate(word)
    )


@pytest.mark.parametrize("taken", ["username", "email", "username ignoring case"])
async def test_concurrent_duplicate_registrations_have_one_winner(
    committing_client: AsyncClient, taken: str
) -> None:
    usernames = {
        "username": ["twin"] * CROWD,
        "email": [f"twin{number}" for number in range(CROWD)],
        "username ignoring case": [_case_variant("twinning", number) for number in range(CROWD)],
    }[taken]
    users = [
        {
            "username": usernames[number],
            "email": "twin@example.com" if taken == "email" else f"twin{number}@example.com",
            "password": PASSWORD,
        }
        for number in range(CROWD)
    ]

    responses = await asyncio.gather(
        *(committing_client.post("/api/users", json={"user": user}) for user in users)
    )

    assert sorted(_statuses(responses)) == [201] + [409] * (CROWD - 1)
    (winner,) = [response for response in responses if response.status_code == 201]
    for response in responses:
        if response is not winner:
            field = "email" if taken == "email" else "username"
            assert response.json() == {"errors": {field: ["has already been taken"]}}
    registered = winner.json()["user"]
    me = await committing_client.get("/api/user", headers=auth(registered["token"]))
    assert me.json()["user"] == registered


async def test_concurrent_identical_titles_get_distinct_slugs(
    committing_client: AsyncClient,
) -> None:
    token = await register(committing_client, "writer")

    articles = await asyncio.gather(
        *(create_article(committing_client, token, title="Same title") for _ in range(CROWD))
    )

    slugs = {article["slug"] for article in articles}
    assert len(slugs) == CROWD
    assert "same-title" in slugs
    assert all(re.fullmatch(r"same-title(-[0-9a-f]{8})?", slug) for slug in slugs)
    listed = (await committing_client.get("/api/articles", params={"limit": CROWD})).json()
    assert listed["articlesCount"] == CROWD
    assert {article["slug"] for article in listed["articles"]} == slugs
    read = await asyncio.gather(*(committing_client.get(f"/api/articles/{slug}") for slug in slugs))
    assert {response.json()["article"]["slug"] for response in read} == slugs


async def test_concurrent_favorites_by_distinct_users_count_exactly(
    committing_client: AsyncClient,
) -> None:
    author = await register(committing_client, "author")
    slug = (await create_article(committing_client, author))["slug"]
    fans = await _register_all(committing_client, "fan", CROWD)

    responses = await asyncio.gather(
        *(
            committing_client.post(f"/api/articles/{slug}/favorite", headers=auth(token))
            for token in fans + fans
        )
    )

    assert _statuses(responses) == [200] * 2 * CROWD
    assert all(response.json()["article"]["favorited"] for response in responses)
    seen = await asyncio.gather(
        *(committing_client.get(f"/api/articles/{slug}", headers=auth(token)) for token in fans)
    )
    assert [
        (view.json()["article"]["favorited"], view.json()["article"]["favoritesCount"])
        for view in seen
    ] == [(True, CROWD)] * CROWD


async def test_favorite_and_unfavorite_racing_keep_the_count_true(
    committing_client: AsyncClient,
) -> None:
    author = await register(committing_client, "author")
    slug = (await create_article(committing_client, author))["slug"]
    fans = await _register_all(committing_client, "fan", FEW)
    path = f"/api/articles/{slug}/favorite"

    async def toggle(token: str, number: int) -> Response:
        return await committing_client.request(
            "POST" if number % 2 == 0 else "DELETE", path, headers=auth(token)
        )

    async def views() -> list[tuple[bool, int]]:
        seen = await asyncio.gather(
            *(committing_client.get(f"/api/articles/{slug}", headers=auth(token)) for token in fans)
        )
        return [
            (view.json()["article"]["favorited"], view.json()["article"]["favoritesCount"])
            for view in seen
        ]

    responses = await asyncio.gather(
        *(toggle(token, number) for token in fans for number in range(BURST))
    )

    assert _statuses(responses) == [200] * FEW * BURST
    after_races = await views()
    favorited = sum(flag for flag, _ in after_races)
    assert {count for _, count in after_races} == {favorited}
    settled = await asyncio.gather(*(toggle(token, number) for number, token in enumerate(fans)))
    assert _statuses(settled) == [200] * FEW
    assert await views() == [(number % 2 == 0, FEW // 2) for number in range(FEW)]


async def test_concurrent_refreshes_with_one_token_leave_the_winner_signed_in(
    committing_client: AsyncClient,
) -> None:
    await register(committing_client, "jake")
    tokens = await oauth_tokens(committing_client, "jake")

    responses = await asyncio.gather(
        *(
            committing_client.post(
                "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
            )
            for _ in range(CROWD)
        )
    )

    assert sorted(_statuses(responses)) == [200] + [401] * (CROWD - 1)
    (winner,) = [response for response in responses if response.status_code == 200]
    for response in responses:
        if response is not winner:
            assert response.json() == {"errors": {"refresh_token": ["is invalid"]}}
    rotated = winner.json()
    me = await committing_client.get("/api/user", headers=bearer(rotated["access_token"]))
    assert me.json()["user"]["username"] == "jake"
    again = await committing_client.post(
        "/api/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert again.status_code == 200


async def _following(client: AsyncClient, tokens: list[str], username: str) -> list[bool]:
    profiles = await asyncio.gather(
        *(client.get(f"/api/profiles/{username}", headers=auth(token)) for token in tokens)
    )
    return [profile.json()["profile"]["following"] for profile in profiles]


async def _feeds(client: AsyncClient, tokens: list[str]) -> list[list[str]]:
    feeds = await asyncio.gather(
        *(client.get("/api/articles/feed", headers=auth(token)) for token in tokens)
    )
    return [[article["slug"] for article in feed.json()["articles"]] for feed in feeds]


async def test_follow_and_unfollow_storm_leaves_every_follow_consistent(
    committing_client: AsyncClient,
) -> None:
    client = committing_client
    star = await register(client, "star")
    slug = (await create_article(client, star))["slug"]
    fans = await _register_all(client, "fan", CROWD)
    path = "/api/profiles/star/follow"

    followed = await asyncio.gather(
        *(client.post(path, headers=auth(token)) for token in fans + fans[::2])
    )

    assert _statuses(followed) == [200] * len(followed)
    assert all(response.json()["profile"]["following"] for response in followed)

    stay, leave = fans[::2], fans[1::2]
    churned = await asyncio.gather(
        *(client.post(path, headers=auth(token)) for token in stay),
        *(client.delete(path, headers=auth(token)) for token in leave + leave[::2]),
    )

    assert _statuses(churned) == [200] * len(churned)
    assert [response.json()["profile"]["following"] for response in churned] == (
        [True] * len(stay) + [False] * (len(leave) + len(leave[::2]))
    )
    following = [True] * len(stay) + [False] * len(leave)
    assert await _following(client, stay + leave, "star") == following
    assert await _feeds(client, stay + leave) == [[slug] if flag else [] for flag in following]


async def test_one_user_toggling_follow_ends_consistent(committing_client: AsyncClient) -> None:
    client = committing_client
    star = await register(client, "star")
    slug = (await create_article(client, star))["slug"]
    fan = await register(client, "fan")
    path = "/api/profiles/star/follow"

    responses = await asyncio.gather(
        *(
            client.request("POST" if number % 2 == 0 else "DELETE", path, headers=auth(fan))
            for number in range(CROWD)
        )
    )

    assert _statuses(responses) == [200] * CROWD
    (following,) = await _following(client, [fan], "star")
    assert await _feeds(client, [fan]) == [[slug] if following else []]
    await client.post(path, headers=auth(fan))
    assert await _following(client, [fan], "star") == [True]
    assert await _feeds(client, [fan]) == [[slug]]
    await client.delete(path, headers=auth(fan))
    assert await _following(client, [fan], "star") == [False]
    assert await _feeds(client, [fan]) == [[]]
