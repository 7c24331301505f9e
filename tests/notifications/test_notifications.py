"""Notifications: written by the jobs of the events, read and marked read through the API."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select

from conduit.config import Settings
from conduit.jobs.outbox import JobRecord
from conduit.notifications import tasks as notifications_tasks
from tests.app_clients import clients_of
from tests.background import run_jobs
from tests.factories import add_comment, auth, create_article, follow, register

pytestmark = pytest.mark.anyio


async def _notifications(client: AsyncClient, token: str, **params: int) -> dict[str, Any]:
    response = await client.get("/api/notifications", headers=auth(token), params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_followers_comments_and_follows_each_notify_once(
    app: FastAPI, committing_client: AsyncClient
) -> None:
    client = committing_client
    author = await register(client, "author")
    reader = await register(client, "reader")
    bystander = await register(client, "bystander")
    await follow(client, reader, "author")
    article = await create_article(client, author, title="Fresh ink")
    comment_id = (await add_comment(client, reader, article["slug"], "Great read"))["id"]
    # The author's own comment notifies nobody.
    await add_comment(client, author, article["slug"], "Thanks")
    # Nothing before the jobs have run.
    assert (await _notifications(client, reader))["notificationsCount"] == 0

    await run_jobs(app)
    await run_jobs(app)

    for_reader = await _notifications(client, reader)
    [published] = for_reader["notifications"]
    assert published["kind"] == "article.published"
    assert published["actor"] == {
        "username": "author",
        "bio": None,
        "image": None,
        "following": True,
    }
    assert published["article"] == {"slug": article["slug"], "title": "Fresh ink"}
    assert published["comment"] is None
    assert published["read"] is False
    assert isinstance(published["id"], str)
    assert published["createdAt"].endswith("Z")
    assert (for_reader["notificationsCount"], for_reader["unreadCount"]) == (1, 1)

    for_author = await _notifications(client, author)
    assert [n["kind"] for n in for_author["notifications"]] == [
        "comment.created",
        "user.followed",
    ]
    commented, followed = for_author["notifications"]
    assert commented["actor"]["username"] == "reader"
    assert commented["actor"]["following"] is False
    assert commented["comment"] == {"id": comment_id, "body": "Great read"}
    assert commented["article"]["slug"] == article["slug"]
    assert followed["article"] is None
    assert followed["comment"] is None

    assert (await _notifications(client, bystander))["notifications"] == []


async def test_publishing_notifies_every_follower_in_batches(
    app: FastAPI, settings: Settings, committing_client: AsyncClient
) -> None:
    client = committing_client
    author = await register(client, "prolific")
    followers = [await register(client, f"fan{n}") for n in range(5)]
    for token in followers:
        await follow(client, token, "prolific")
    jobs = settings.jobs.model_copy(update={"fan_out_batch_size": 2})
    await create_article(client, author)
    await run_jobs(app, settings=settings.model_copy(update={"jobs": jobs}))

    for token in followers:
        kinds = [n["kind"] for n in (await _notifications(client, token))["notifications"]]
        assert kinds == ["article.published"]


async def test_an_article_deleted_before_its_jobs_ran_notifies_nobody_of_it_or_its_comment(
    app: FastAPI, committing_client: AsyncClient
) -> None:
    client = committing_client
    author = await register(client, "author")
    reader = await register(client, "reader")
    await follow(client, reader, "author")
    article = await create_article(client, author, title="Gone soon")
    await add_comment(client, reader, article["slug"], "Too late")
    response = await client.delete(f"/api/articles/{article['slug']}", headers=auth(author))
    assert response.status_code == 204

    await run_jobs(app)

    assert (await _notifications(client, reader))["notifications"] == []
    kinds = [n["kind"] for n in (await _notifications(client, author))["notifications"]]
    assert kinds == ["user.followed"]


async def test_marking_read_by_id_and_all_counts_only_your_own(
    app: FastAPI, committing_client: AsyncClient
) -> None:
    client = committing_client
    star = await register(client, "star")
    fans = [await register(client, f"admirer{n}") for n in range(3)]
    for token in fans:
        await follow(client, token, "star")
    await run_jobs(app)
    page = await _notifications(client, star)
    assert (page["notificationsCount"], page["unreadCount"]) == (3, 3)
    newest, middle, oldest = page["notifications"]
    assert [n["actor"]["username"] for n in page["notifications"]] == [
        "admirer2",
        "admirer1",
        "admirer0",
    ]

    # Someone else's ids change nothing.
    response = await client.post(
        "/api/notifications/read", headers=auth(fans[0]), json={"ids": [newest["id"]]}
    )
    assert response.status_code == 204
    assert (await _notifications(client, star))["unreadCount"] == 3

    response = await client.post(
        "/api/notifications/read", headers=auth(star), json={"ids": [newest["id"], "999999"]}
    )
    assert response.status_code == 204
    page = await _notifications(client, star, limit=2, offset=0)
    assert [n["read"] for n in page["notifications"]] == [True, False]
    assert (page["notificationsCount"], page["unreadCount"]) == (3, 2)
    assert [n["id"] for n in (await _notifications(client, star, offset=2))["notifications"]] == [
        oldest["id"]
    ]

    response = await client.post("/api/notifications/read", headers=auth(star), json={"all": True})
    assert response.status_code == 204
    assert (await _notifications(client, star))["unreadCount"] == 0
    assert middle["id"] != oldest["id"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"ids": []},
        {"ids": ["1"], "all": True},
        {"all": False},
        {"ids": ["one"]},
        {"ids": ["0"]},
        {"ids": [1]},
        {"ids": ["1"] * 101},
        # One past the largest id the 32-bit column holds.
        {"ids": ["2147483648"]},
        {"ids": ["999999999999999999"]},
    ],
)
async def test_mark_read_refuses_what_is_not_ids_or_all(client: AsyncClient, body: object) -> None:
    token = await register(client, "careful")
    response = await client.post("/api/notifications/read", headers=auth(token), json=body)
    assert response.status_code == 422
    assert "errors" in response.json()


async def test_the_largest_id_the_column_holds_is_accepted(client: AsyncClient) -> None:
    token = await register(client, "careful")
    response = await client.post(
        "/api/notifications/read", headers=auth(token), json={"ids": ["2147483647"]}
    )
    assert response.status_code == 204


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"offset": -1}])
async def test_the_page_is_bounded(client: AsyncClient, params: dict[str, int]) -> None:
    token = await register(client, "pager")
    response = await client.get("/api/notifications", headers=auth(token), params=params)
    assert response.status_code == 422


async def test_notifications_are_yours_only(client: AsyncClient) -> None:
    assert (await client.get("/api/notifications")).status_code == 401
    response = await client.post("/api/notifications/read", json={"all": True})
    assert response.status_code == 401


async def _unfollow(client: AsyncClient, token: str, username: str) -> None:
    response = await client.delete(f"/api/profiles/{username}/follow", headers=auth(token))
    assert response.status_code == 200, response.text


async def test_following_again_and_again_notifies_once_a_day(
    app: FastAPI, committing_client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = committing_client
    star = await register(client, "sought")
    pest = await register(client, "pest")
    for _ in range(20):
        await follow(client, pest, "sought")
        await _unfollow(client, pest, "sought")
    await run_jobs(app)
    # Each of the 20 jobs succeeded: the 19 that found the day's notification did nothing.
    jobs = clients_of(app).jobs
    async with jobs.context.database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(JobRecord)) == 0

    page = await _notifications(client, star)
    assert [n["kind"] for n in page["notifications"]] == ["user.followed"]
    assert page["unreadCount"] == 1

    tomorrow = datetime.now(UTC) + timedelta(days=1)
    monkeypatch.setattr(notifications_tasks, "utcnow", lambda: tomorrow)
    await follow(client, pest, "sought")
    await _unfollow(client, pest, "sought")
    await follow(client, pest, "sought")
    await run_jobs(app)

    page = await _notifications(client, star)
    assert [n["createdAt"][:10] for n in page["notifications"]] == [
        tomorrow.strftime("%Y-%m-%d"),
        datetime.now(UTC).strftime("%Y-%m-%d"),
    ]


async def test_a_recipient_keeps_the_newest_unread_up_to_the_cap(
    app: FastAPI, committing_client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notifications_tasks, "MAX_UNREAD", 3)
    client = committing_client
    star = await register(client, "crowded")
    fans = [await register(client, f"crowd{n}") for n in range(5)]
    for token in fans[:3]:
        await follow(client, token, "crowded")
        await run_jobs(app)
    oldest = (await _notifications(client, star))["notifications"][-1]
    response = await client.post(
        "/api/notifications/read", headers=auth(star), json={"ids": [oldest["id"]]}
    )
    assert response.status_code == 204

    for token in fans[3:]:
        await follow(client, token, "crowded")
        await run_jobs(app)

    page = await _notifications(client, star)
    # crowd1, the oldest unread, is dropped; crowd0, read, is not unread and stays.
    assert [(n["actor"]["username"], n["read"]) for n in page["notifications"]] == [
        ("crowd4", False),
        ("crowd3", False),
        ("crowd2", False),
        ("crowd0", True),
    ]
    assert page["unreadCount"] == 3
