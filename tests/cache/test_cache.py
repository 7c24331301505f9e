"""The read cache in one process, on the store the run uses (Redis when TEST_REDIS_URL is set,
memory otherwise): each viewer sees their own flags, one rebuild per miss, a rolled-back write
invalidates nothing, a slow reader cannot store what a write replaced, and HTTP revalidation.
Exact invalidation across two processes is `tests/e2e/test_cache_invalidation.py`."""

import asyncio
from dataclasses import dataclass, replace
from typing import Any

import pytest
from fastapi import FastAPI, Request
from httpx import ASGITransport, AsyncClient
from sqlalchemy import literal_column, select

from conduit import cache
from conduit.cache import versions
from conduit.cache.entries import MemoryEntries
from conduit.database import NotGiven, Read, transaction
from conduit.errors import Conflict
from conduit.sql_json import as_text
from tests.app_clients import clients_of
from tests.factories import auth, create_article, favorite, follow, register
from tests.statements import StatementRecorder

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Anonymous:
    """A caller with no rate limit to count, for calling the cache directly."""

    request: Request
    viewer_id: int | None = None

    async def count(self, alongside: Any = ()) -> list[object] | None:
        del alongside
        return None

    async def may_fill(self) -> bool:
        return True


def _read(value: str) -> Read[str]:
    """A statement of its own: `value` is part of its SQL."""
    return Read(lambda _: select(as_text(literal_column(f"'{value}'"))))


async def _built(value: str) -> str:
    return value


def _versioned(app: FastAPI) -> cache.VersionedCache:
    """The app's cache, which the tests' settings turn on, to be read directly."""
    read_cache = clients_of(app).cache
    assert isinstance(read_cache, cache.VersionedCache)
    return read_cache


async def test_each_viewer_sees_their_own_flags_whoever_filled_the_cache(
    client: AsyncClient,
) -> None:
    author = await register(client, "author")
    fan = await register(client, "fan")
    other = await register(client, "other")
    slug = (await create_article(client, author))["slug"]
    await client.post(
        f"/api/articles/{slug}/comments", headers=auth(author), json={"comment": {"body": "hi"}}
    )
    await favorite(client, fan, slug)
    await follow(client, fan, "author")

    def flags(body: dict[str, Any], path: str) -> tuple[bool, bool]:
        if path.endswith("/comments"):
            return (False, body["comments"][0]["author"]["following"])
        if path.startswith("/api/profiles"):
            return (False, body["profile"]["following"])
        article = body["articles"][0] if "articles" in body else body["article"]
        return (article["favorited"], article["author"]["following"])

    paths = [
        "/api/articles",
        f"/api/articles/{slug}",
        f"/api/articles/{slug}/comments",
        "/api/profiles/author",
    ]
    expected = {"fan": (True, True), "other": (False, False), "anonymous": (False, False)}
    for path in paths:
        for viewer, token in [("fan", fan), ("other", other), ("anonymous", None), ("fan", fan)]:
            response = await client.get(path, headers=auth(token) if token else {})
            assert response.status_code == 200, response.text
            wanted = expected[viewer]
            if path.endswith("/comments") or path.startswith("/api/profiles"):
                wanted = (False, wanted[1])
            assert flags(response.json(), path) == wanted, (path, viewer)


async def test_concurrent_misses_of_one_entry_build_it_once(
    client: AsyncClient, statements: StatementRecorder
) -> None:
    author = await register(client, "author")
    for number in range(3):
        await create_article(client, author, title=f"Article {number}")
    statements.clear()

    responses = await asyncio.gather(*(client.get("/api/articles") for _ in range(20)))

    assert {response.status_code for response in responses} == {200}
    assert len({response.content for response in responses}) == 1
    assert statements.count == 1, statements.statements


async def test_a_rolled_back_write_invalidates_nothing(app: FastAPI) -> None:
    read_cache = _versioned(app)
    database = clients_of(app).database
    caller = Anonymous(Request({"type": "http", "headers": []}))
    entry = cache.Entry(_read("one"), "rollback", (versions.ARTICLES,))
    assert (await read_cache.read(caller, entry, lambda: _built("first"))).body == b"first"

    async def write(*, fail: bool) -> None:
        async with transaction(database.sessions, cache=read_cache) as session:
            versions.changed(session, versions.ARTICLES)
            if fail:
                raise Conflict("article")

    with pytest.raises(Conflict):
        await write(fail=True)
    kept = await read_cache.read(caller, entry, lambda: _built("second"))
    await write(fail=False)
    rebuilt = await read_cache.read(caller, entry, lambda: _built("third"))

    assert (kept.body, rebuilt.body) == (b"first", b"third")


async def test_a_unit_of_work_opened_without_the_cache_refuses_a_change(app: FastAPI) -> None:
    """Rather than leave the documents it changes served as they were."""
    database = clients_of(app).database
    async with transaction(database.sessions) as session:
        with pytest.raises(NotGiven):
            versions.changed(session, versions.ARTICLES)


async def test_a_reader_that_read_before_a_write_cannot_store_the_old_state(app: FastAPI) -> None:
    """The race a plain delete loses: the reader misses, reads the database, the writer
    commits and invalidates, and only then does the reader store what it read."""
    read_cache = _versioned(app)
    caller = Anonymous(Request({"type": "http", "headers": []}))
    entry = cache.Entry(_read("race"), "race", (versions.ARTICLES,))
    database_read, write_done = asyncio.Event(), asyncio.Event()

    async def slow_build() -> str:
        database_read.set()
        await write_done.wait()
        return "before the write"

    reader = asyncio.ensure_future(read_cache.read(caller, entry, slow_build))
    await database_read.wait()
    await read_cache.invalidate({versions.ARTICLES})
    write_done.set()
    assert (await reader).body == b"before the write"

    after = await read_cache.read(caller, entry, lambda: _built("after the write"))

    assert after.body == b"after the write"


async def test_a_changed_statement_never_reads_an_older_entry(app: FastAPI) -> None:
    """A deploy that changes a read's SQL, and so the shape of its document, keys its
    entries apart from those of the code before it."""
    read_cache = _versioned(app)
    caller = Anonymous(Request({"type": "http", "headers": []}))
    before = cache.Entry(_read("shape one"), "shape", (versions.TAGS,))
    after = cache.Entry(_read("shape two"), "shape", (versions.TAGS,))

    await read_cache.read(caller, before, lambda: _built("old shape"))
    found = await read_cache.read(caller, after, lambda: _built("new shape"))

    assert found.body == b"new shape"


async def test_etags_revalidate_until_a_write_changes_the_document(client: AsyncClient) -> None:
    author = await register(client, "author")
    slug = (await create_article(client, author))["slug"]
    path = f"/api/articles/{slug}"

    first = await client.get(path)
    etag = first.headers["ETag"]
    same = await client.get(path, headers={"If-None-Match": etag})
    weak = await client.get(path, headers={"If-None-Match": f'"other", W/{etag}'})
    anything = await client.get(path, headers={"If-None-Match": "*"})
    await favorite(client, await register(client, "fan"), slug)
    changed = await client.get(path, headers={"If-None-Match": etag})

    assert first.status_code == 200
    assert etag[0] == etag[-1] == '"'
    assert (first.headers["Cache-Control"], first.headers["Vary"]) == (
        "no-cache",
        "Authorization, X-API-Key",
    )
    assert (same.status_code, same.content, same.headers["ETag"]) == (304, b"", etag)
    assert (weak.status_code, anything.status_code) == (304, 304)
    assert changed.status_code == 200
    assert changed.json()["article"]["favoritesCount"] == 1
    assert changed.headers["ETag"] != etag


async def test_signed_in_responses_have_etags_and_are_never_stored(client: AsyncClient) -> None:
    token = await register(client, "reader")

    for path in ["/api/articles", "/api/articles/feed", "/api/tags", "/api/profiles/reader"]:
        response = await client.get(path, headers=auth(token))
        again = await client.get(
            path, headers={**auth(token), "If-None-Match": response.headers["ETag"]}
        )

        assert response.headers["Cache-Control"] == "no-store", path
        assert again.status_code == 304, path


async def test_a_disabled_cache_builds_every_read(
    app: FastAPI, client: AsyncClient, statements: StatementRecorder
) -> None:
    app.state.clients = replace(clients_of(app), cache=cache.Uncached())
    await client.get("/api/tags")
    statements.clear()

    response = await client.get("/api/tags")

    assert response.status_code == 200
    assert "ETag" in response.headers
    assert statements.count == 1


async def test_memory_keeps_documents_within_its_byte_budget() -> None:
    entries = MemoryEntries(max_bytes=3_000, ttl_seconds=60)
    caller = Anonymous(Request({"type": "http", "headers": []}))
    tags: dict[str, str | None] = {"tags": None}

    for key in ("first", "second", "third"):
        await entries.put(key, tags, cache.document_of(b"x" * 800))
    await entries.put("huge", tags, cache.document_of(b"x" * 5_000))
    found = {
        key: (await entries.find(caller, ["tags"], key)).entry is not None
        for key in ("first", "second", "third", "huge")
    }

    assert found == {"first": False, "second": True, "third": True, "huge": False}


async def test_a_browser_app_may_revalidate_with_etags(app_with_cors: FastAPI) -> None:
    origin = {"Origin": "https://app.example"}
    async with AsyncClient(
        transport=ASGITransport(app=app_with_cors), base_url="http://test"
    ) as client:
        preflight = await client.options(
            "/api/tags",
            headers={
                **origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "if-none-match",
            },
        )
        response = await client.get("/api/tags", headers=origin)

    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    exposed = response.headers["Access-Control-Expose-Headers"]
    assert preflight.status_code == 200
    assert "if-none-match" in allowed
    assert "ETag" in {name.strip() for name in exposed.split(",")}
