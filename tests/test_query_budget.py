"""The number of SQL statements per endpoint is fixed: it does not grow with the page size or
with how many tags, favorites and follows the articles have (no N+1)."""

import re

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from conduit.cache import versions
from tests.app_clients import clients_of
from tests.factories import auth, create_article, favorite, follow, register
from tests.statements import StatementRecorder

pytestmark = pytest.mark.anyio


async def _populate(client: AsyncClient, articles: int) -> tuple[str, str]:
    """`articles` articles by `author`, each tagged, favorited and commented by `reader`, who
    follows the author. Returns (reader token, one slug)."""
    author = await register(client, "author")
    reader = await register(client, "reader")
    await follow(client, reader, "author")
    slug = ""
    for number in range(articles):
        slug = (await create_article(client, author, title=f"A{number}", tags=["x", f"t{number}"]))[
            "slug"
        ]
        await favorite(client, reader, slug)
        await client.post(
            f"/api/articles/{slug}/comments", headers=auth(author), json={"comment": {"body": "c"}}
        )
    return reader, slug


async def _count(
    statements: StatementRecorder, client: AsyncClient, path: str, token: str | None
) -> int:
    statements.clear()
    response = await client.get(path, headers=auth(token) if token else {})
    assert response.status_code == 200, response.text
    return statements.count


ENDPOINTS = [
    # (path, authenticated, statements on a cold cache, then on a warm one). A document is one
    # statement (the JSON, built by the database), cached as every viewer but a signed-in one
    # sees it; a signed-in viewer costs one statement to be identified and one for their
    # `favorited` and `following` flags. The feed is the viewer's own, flags and all.
    ("/api/articles?limit=20", False, 1, 0),
    ("/api/articles?limit=20", True, 3, 2),
    ("/api/articles?limit=20&tag=x", True, 3, 2),
    ("/api/articles?limit=20&favorited=reader", True, 3, 2),
    ("/api/articles/feed?limit=20", True, 2, 1),
    ("/api/articles/{slug}", False, 1, 0),
    ("/api/articles/{slug}", True, 3, 2),
    ("/api/articles/{slug}/comments", False, 1, 0),
    ("/api/articles/{slug}/comments", True, 3, 2),
    ("/api/tags", False, 1, 0),
    ("/api/profiles/author", False, 1, 0),
    ("/api/profiles/author", True, 3, 2),
]


@pytest.mark.parametrize("articles", [2, 21])
async def test_statement_count_is_fixed(
    app: FastAPI, client: AsyncClient, statements: StatementRecorder, articles: int
) -> None:
    """Every endpoint on the same articles, each from a cold cache (a new epoch: every entry
    before it dead), then warm."""
    reader, slug = await _populate(client, articles)
    counts, recorded = {}, {}
    for path, authenticated, _, _ in ENDPOINTS:
        await clients_of(app).cache.invalidate({versions.EPOCH})
        url, token = path.format(slug=slug), reader if authenticated else None
        first = await _count(statements, client, url, token)
        recorded[(path, authenticated)] = list(statements.statements)
        second = await _count(statements, client, url, token)
        counts[(path, authenticated)] = (first, second)

    expected = {
        (path, authenticated): (cold, warm) for path, authenticated, cold, warm in ENDPOINTS
    }
    wrong = {key: recorded[key] for key, count in counts.items() if count != expected[key]}
    assert counts == expected, wrong


def _paging_subquery(statement: str) -> str | None:
    """The innermost parenthesised subquery of `statement` that pages its rows newest first."""
    found = []
    for at in (match.start() for match in re.finditer("OFFSET", statement)):
        depth, start = 0, at
        while depth >= 0:
            start -= 1
            depth += {")": 1, "(": -1}.get(statement[start], 0)
        depth, end = 0, at
        while depth >= 0:
            end += 1
            depth += {"(": 1, ")": -1}.get(statement[end], 0)
        if re.search(r"(articles|notifications)\.created_at DESC", statement[start:end]):
            found.append(statement[start : end + 1])
    return min(found, key=len, default=None)


@pytest.mark.parametrize(
    "path",
    [
        "/api/articles?limit=2&offset={offset}",
        "/api/articles?limit=2&offset={offset}&tag=x",
        "/api/articles/feed?limit=2&offset={offset}",
        "/api/notifications?limit=2&offset={offset}",
    ],
)
async def test_a_deep_page_builds_json_for_its_own_rows_only(
    client: AsyncClient, statements: StatementRecorder, path: str
) -> None:
    """The page's ids come first, from the index alone; the JSON is built for those rows only,
    not for every row OFFSET skips."""
    reader, _ = await _populate(client, 5)
    pages = []
    for offset in (0, 3):
        statements.clear()
        response = await client.get(path.format(offset=offset), headers=auth(reader))
        assert response.status_code == 200, response.text
        [page] = [statement for statement in statements.statements if _paging_subquery(statement)]
        pages.append(page)

    first, deep = pages
    assert first == deep
    assert "json" not in str(_paging_subquery(deep)).lower(), deep
