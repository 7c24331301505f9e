import re

import pytest
from httpx import AsyncClient
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from conduit.auth import User
from tests.factories import auth, create_article, favorite, follow, register

pytestmark = pytest.mark.anyio

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


async def test_create_article(client: AsyncClient) -> None:
    token = await register(client, "jake")

    article = await create_article(client, token, tags=["training", "dragons", "training"])

    assert article == {
        "slug": "how-to-train-your-dragon",
        "title": "How to train your dragon",
        "description": "Ever wonder how?",
        "body": "You have to believe",
        "tagList": ["dragons", "training"],
        "createdAt": article["createdAt"],
        "updatedAt": article["createdAt"],
        "favorited": False,
        "favoritesCount": 0,
        "author": {"username": "jake", "bio": None, "image": None, "following": False},
    }
    assert TIMESTAMP.match(article["createdAt"])


async def test_get_article(client: AsyncClient) -> None:
    token = await register(client, "jake")
    created = await create_article(client, token)

    response = await client.get(f"/api/articles/{created['slug']}")

    assert response.status_code == 200
    assert response.json() == {"article": created}


async def test_duplicate_and_non_ascii_titles_get_distinct_url_safe_slugs(
    client: AsyncClient,
) -> None:
    token = await register(client, "jake")

    first = await create_article(client, token, title="Ünïcödé 日本語 title!")
    second = await create_article(client, token, title="Ünïcödé 日本語 title!")
    symbols = await create_article(client, token, title="!!!")

    assert first["slug"] == "unicode-ri-ben-yu-title"
    assert re.fullmatch(r"unicode-ri-ben-yu-title-[0-9a-f]{8}", second["slug"])
    assert symbols["slug"] == "article"
    assert first["title"] == "Ünïcödé 日本語 title!"


async def test_injection_looking_input_is_stored_as_text(client: AsyncClient) -> None:
    token = await register(client, "jake")
    title = "'; DROP TABLE articles; --"

    article = await create_article(client, token, title=title, tags=["' OR 1=1 --"])
    listed = await client.get("/api/articles", params={"tag": "' OR 1=1 --"})
    missing = await client.get("/api/articles", params={"author": "' OR '1'='1"})

    assert article["title"] == title
    assert listed.json()["articlesCount"] == 1
    assert missing.json() == {"articles": [], "articlesCount": 0}


async def test_list_articles_newest_first_without_body(client: AsyncClient) -> None:
    token = await register(client, "jake")
    for title in ("one", "two", "three"):
        await create_article(client, token, title=title)

    response = await client.get("/api/articles")

    assert response.status_code == 200
    body = response.json()
    assert body["articlesCount"] == 3
    assert [a["title"] for a in body["articles"]] == ["three", "two", "one"]
    assert all("body" not in article for article in body["articles"])


async def test_list_filters(client: AsyncClient) -> None:
    jake = await register(client, "jake")
    jane = await register(client, "jane")
    await create_article(client, jake, title="Jake on dragons", tags=["dragons"])
    await create_article(client, jake, title="Jake on cats", tags=["cats"])
    janes = await create_article(client, jane, title="Jane on dragons", tags=["dragons"])
    await favorite(client, jake, janes["slug"])

    async def titles(**params: str) -> list[str]:
        response = await client.get("/api/articles", params=params)
        return [article["title"] for article in response.json()["articles"]]

    assert await titles(tag="dragons") == ["Jane on dragons", "Jake on dragons"]
    assert await titles(author="jake") == ["Jake on cats", "Jake on dragons"]
    assert await titles(favorited="jake") == ["Jane on dragons"]
    assert await titles(tag="dragons", author="jake") == ["Jake on dragons"]
    assert await titles(author="nobody") == []
    assert await titles(favorited="nobody") == []


async def test_pagination_counts_all_matches(client: AsyncClient) -> None:
    token = await register(client, "jake")
    for number in range(5):
        await create_article(client, token, title=f"Article {number}")

    response = await client.get("/api/articles", params={"limit": 2, "offset": 1})

    assert response.json()["articlesCount"] == 5
    assert [a["title"] for a in response.json()["articles"]] == ["Article 3", "Article 2"]


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        ({"limit": 101}, {"limit": ["must be less than or equal to 100"]}),
        ({"limit": 0}, {"limit": ["must be greater than or equal to 1"]}),
        ({"offset": -1}, {"offset": ["must be greater than or equal to 0"]}),
        ({"offset": 10_001}, {"offset": ["must be less than or equal to 10000"]}),
        ({"limit": "ten"}, {"limit": ["must be an integer"]}),
        ({"tag": "t" * 256}, {"tag": ["is too long (maximum is 255 characters)"]}),
    ],
)
async def test_list_parameters_are_bounded(
    client: AsyncClient, params: dict[str, str | int], errors: dict[str, list[str]]
) -> None:
    response = await client.get("/api/articles", params=params)

    assert response.status_code == 422
    assert response.json() == {"errors": errors}


async def test_viewer_flags(client: AsyncClient) -> None:
    author = await register(client, "author")
    reader = await register(client, "reader")
    article = await create_article(client, author)
    await favorite(client, reader, article["slug"])
    await follow(client, reader, "author")

    as_reader = (await client.get("/api/articles", headers=auth(reader))).json()["articles"][0]
    as_author = (await client.get("/api/articles", headers=auth(author))).json()["articles"][0]
    anonymous = (await client.get("/api/articles")).json()["articles"][0]

    assert (as_reader["favorited"], as_reader["author"]["following"]) == (True, True)
    assert (as_author["favorited"], as_author["author"]["following"]) == (False, False)
    assert (anonymous["favorited"], anonymous["author"]["following"]) == (False, False)
    assert as_reader["favoritesCount"] == anonymous["favoritesCount"] == 1


async def test_feed_shows_followed_authors_only(client: AsyncClient) -> None:
    reader = await register(client, "reader")
    followed = await register(client, "followed")
    stranger = await register(client, "stranger")
    await create_article(client, followed, title="Followed 1")
    await create_article(client, stranger, title="Stranger")
    await create_article(client, followed, title="Followed 2")
    await create_article(client, reader, title="Own")

    empty = await client.get("/api/articles/feed", headers=auth(reader))
    await follow(client, reader, "followed")
    feed = await client.get("/api/articles/feed", headers=auth(reader))
    page = await client.get(
        "/api/articles/feed", headers=auth(reader), params={"limit": 1, "offset": 1}
    )

    assert empty.json() == {"articles": [], "articlesCount": 0}
    assert [a["title"] for a in feed.json()["articles"]] == ["Followed 2", "Followed 1"]
    assert feed.json()["articlesCount"] == 2
    assert all(a["author"]["following"] for a in feed.json()["articles"])
    assert [a["title"] for a in page.json()["articles"]] == ["Followed 1"]


async def test_update_article(client: AsyncClient) -> None:
    token = await register(client, "jake")
    created = await create_article(client, token, tags=["a", "b"])

    response = await client.put(
        f"/api/articles/{created['slug']}",
        headers=auth(token),
        json={"article": {"title": "New title", "body": "New body", "slug": "hijack"}},
    )

    assert response.status_code == 200
    updated = response.json()["article"]
    assert updated["slug"] == created["slug"]
    assert (updated["title"], updated["body"]) == ("New title", "New body")
    assert updated["description"] == created["description"]
    assert updated["tagList"] == ["a", "b"]
    assert updated["createdAt"] == created["createdAt"]
    assert updated["updatedAt"] > created["updatedAt"]


async def test_update_tags_replaces_clears_or_rejects_null(client: AsyncClient) -> None:
    token = await register(client, "jake")
    slug = (await create_article(client, token, tags=["a", "b"]))["slug"]
    path = f"/api/articles/{slug}"

    replaced = await client.put(path, headers=auth(token), json={"article": {"tagList": ["c"]}})
    cleared = await client.put(path, headers=auth(token), json={"article": {"tagList": []}})
    rejected = await client.put(path, headers=auth(token), json={"article": {"tagList": None}})

    assert replaced.json()["article"]["tagList"] == ["c"]
    assert cleared.json()["article"]["tagList"] == []
    assert rejected.status_code == 422
    assert rejected.json() == {"errors": {"tagList": ["can't be blank"]}}


async def test_delete_article_removes_comments_and_favorites(client: AsyncClient) -> None:
    token = await register(client, "jake")
    slug = (await create_article(client, token))["slug"]
    await client.post(
        f"/api/articles/{slug}/comments", headers=auth(token), json={"comment": {"body": "x"}}
    )
    await favorite(client, token, slug)

    deleted = await client.delete(f"/api/articles/{slug}", headers=auth(token))

    assert deleted.status_code == 204
    assert (await client.get(f"/api/articles/{slug}")).status_code == 404
    favorites = await client.get("/api/articles", params={"favorited": "jake"})
    assert favorites.json()["articlesCount"] == 0
    assert (await client.get("/api/articles")).json()["articlesCount"] == 0


async def test_only_the_author_changes_an_article(client: AsyncClient) -> None:
    author = await register(client, "author")
    other = await register(client, "other")
    slug = (await create_article(client, author))["slug"]

    updated = await client.put(
        f"/api/articles/{slug}", headers=auth(other), json={"article": {"body": "hijacked"}}
    )
    deleted = await client.delete(f"/api/articles/{slug}", headers=auth(other))

    for response in (updated, deleted):
        assert response.status_code == 403
        assert response.json() == {"errors": {"article": ["forbidden"]}}
    assert (await client.get(f"/api/articles/{slug}")).json()["article"]["body"] != "hijacked"


async def test_favorite_and_unfavorite(client: AsyncClient) -> None:
    author = await register(client, "author")
    reader = await register(client, "reader")
    slug = (await create_article(client, author))["slug"]

    first = await client.post(f"/api/articles/{slug}/favorite", headers=auth(reader))
    twice = await client.post(f"/api/articles/{slug}/favorite", headers=auth(reader))
    by_author = await client.post(f"/api/articles/{slug}/favorite", headers=auth(author))
    removed = await client.delete(f"/api/articles/{slug}/favorite", headers=auth(reader))

    assert (first.json()["article"]["favorited"], first.json()["article"]["favoritesCount"]) == (
        True,
        1,
    )
    assert twice.json()["article"]["favoritesCount"] == 1
    assert by_author.json()["article"]["favoritesCount"] == 2
    assert (
        removed.json()["article"]["favorited"],
        removed.json()["article"]["favoritesCount"],
    ) == (False, 1)


@pytest.mark.parametrize(
    ("article", "errors"),
    [
        (
            {"title": "", "description": " ", "body": ""},
            {
                "title": ["can't be blank"],
                "description": ["can't be blank"],
                "body": ["can't be blank"],
            },
        ),
        (
            {"title": "t" * 201, "description": "d", "body": "b"},
            {"title": ["is too long (maximum is 200 characters)"]},
        ),
        (
            {"title": "t", "description": "d", "body": "b", "tagList": [str(n) for n in range(11)]},
            {"tagList": ["has too many items (maximum is 10)"]},
        ),
        (
            {"title": "t", "description": "d", "body": "b", "tagList": ["x" * 51]},
            {"tagList": ["is too long (maximum is 50 characters)"]},
        ),
        (
            {"title": "t", "description": "d", "body": "b", "tagList": "dragons"},
            {"tagList": ["must be a list"]},
        ),
        (
            {"title": ["t"], "description": "d", "body": "b"},
            {"title": ["must be a string"]},
        ),
    ],
)
async def test_create_article_validation(
    client: AsyncClient, article: dict[str, object], errors: dict[str, list[str]]
) -> None:
    token = await register(client, "jake")

    response = await client.post("/api/articles", headers=auth(token), json={"article": article})

    assert response.status_code == 422
    assert response.json() == {"errors": errors}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/articles/nope"),
        ("PUT", "/api/articles/nope"),
        ("DELETE", "/api/articles/nope"),
        ("POST", "/api/articles/nope/favorite"),
        ("DELETE", "/api/articles/nope/favorite"),
    ],
)
async def test_unknown_article(client: AsyncClient, method: str, path: str) -> None:
    token = await register(client, "jake")

    response = await client.request(
        method, path, headers=auth(token), json={"article": {"body": "x"}}
    )

    assert response.status_code == 404
    assert response.json() == {"errors": {"article": ["not found"]}}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/articles"),
        ("GET", "/api/articles/feed"),
        ("PUT", "/api/articles/some-slug"),
        ("DELETE", "/api/articles/some-slug"),
        ("POST", "/api/articles/some-slug/favorite"),
        ("DELETE", "/api/articles/some-slug/favorite"),
        ("POST", "/api/articles/some-slug/comments"),
        ("DELETE", "/api/articles/some-slug/comments/1"),
    ],
)
async def test_writes_require_auth(client: AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path, json={"article": {"title": "x"}})

    assert response.status_code == 401
    assert response.json() == {"errors": {"token": ["is missing"]}}


async def test_the_article_total_follows_a_cascade_from_deleting_a_user(
    client: AsyncClient, connection: AsyncConnection
) -> None:
    """The unfiltered `articlesCount` is a kept total; deleting a user outside the API deletes
    their articles by cascade, and the total must follow."""
    leaving = await register(client, "leaving")
    staying = await register(client, "staying")
    for title in ("One", "Two"):
        await create_article(client, leaving, title=title)
    await create_article(client, staying, title="Three")

    await connection.execute(delete(User).where(User.username == "leaving"))

    listed = (await client.get("/api/articles")).json()
    assert [article["title"] for article in listed["articles"]] == ["Three"]
    assert listed["articlesCount"] == 1
