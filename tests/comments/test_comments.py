import pytest
from httpx import AsyncClient

from tests.factories import auth, create_article, follow, register

pytestmark = pytest.mark.anyio


async def test_add_list_and_delete_comments(client: AsyncClient) -> None:
    token = await register(client, "jake")
    slug = (await create_article(client, token))["slug"]

    first = await client.post(
        f"/api/articles/{slug}/comments",
        headers=auth(token),
        json={"comment": {"body": "First!"}},
    )
    await client.post(
        f"/api/articles/{slug}/comments",
        headers=auth(token),
        json={"comment": {"body": "Second"}},
    )
    assert first.status_code == 201
    comment = first.json()["comment"]
    assert comment["body"] == "First!"
    assert comment["author"] == {
        "username": "jake",
        "bio": None,
        "image": None,
        "following": False,
    }
    assert comment["createdAt"] == comment["updatedAt"]

    listed = await client.get(f"/api/articles/{slug}/comments")
    assert [c["body"] for c in listed.json()["comments"]] == ["First!", "Second"]

    deleted = await client.delete(
        f"/api/articles/{slug}/comments/{comment['id']}", headers=auth(token)
    )
    assert deleted.status_code == 204
    assert deleted.content == b""
    remaining = await client.get(f"/api/articles/{slug}/comments")
    assert [c["body"] for c in remaining.json()["comments"]] == ["Second"]


async def test_comment_authors_show_following_for_the_viewer(client: AsyncClient) -> None:
    author = await register(client, "author")
    reader = await register(client, "reader")
    slug = (await create_article(client, author))["slug"]
    await client.post(
        f"/api/articles/{slug}/comments", headers=auth(author), json={"comment": {"body": "hi"}}
    )
    await follow(client, reader, "author")

    as_reader = await client.get(f"/api/articles/{slug}/comments", headers=auth(reader))
    anonymous = await client.get(f"/api/articles/{slug}/comments")

    assert as_reader.json()["comments"][0]["author"]["following"] is True
    assert anonymous.json()["comments"][0]["author"]["following"] is False


async def test_only_the_author_deletes_a_comment(client: AsyncClient) -> None:
    author = await register(client, "author")
    other = await register(client, "other")
    slug = (await create_article(client, author))["slug"]
    created = await client.post(
        f"/api/articles/{slug}/comments", headers=auth(author), json={"comment": {"body": "mine"}}
    )
    comment_id = created.json()["comment"]["id"]

    response = await client.delete(
        f"/api/articles/{slug}/comments/{comment_id}", headers=auth(other)
    )

    assert response.status_code == 403
    assert response.json() == {"errors": {"comment": ["forbidden"]}}
    listed = await client.get(f"/api/articles/{slug}/comments")
    assert len(listed.json()["comments"]) == 1


async def test_comment_of_another_article_is_not_found(client: AsyncClient) -> None:
    token = await register(client, "jake")
    first = (await create_article(client, token, title="First"))["slug"]
    second = (await create_article(client, token, title="Second"))["slug"]
    created = await client.post(
        f"/api/articles/{first}/comments", headers=auth(token), json={"comment": {"body": "x"}}
    )

    response = await client.delete(
        f"/api/articles/{second}/comments/{created.json()['comment']['id']}", headers=auth(token)
    )

    assert response.status_code == 404
    assert response.json() == {"errors": {"comment": ["not found"]}}


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"comment": {"body": ""}}, {"body": ["can't be blank"]}),
        ({"comment": {"body": "   "}}, {"body": ["can't be blank"]}),
        ({"comment": {}}, {"body": ["can't be blank"]}),
        (
            {"comment": {"body": "x" * 10_001}},
            {"body": ["is too long (maximum is 10000 characters)"]},
        ),
        ({"comment": "text"}, {"comment": ["must be an object"]}),
    ],
)
async def test_comment_validation(
    client: AsyncClient, body: object, errors: dict[str, list[str]]
) -> None:
    token = await register(client, "jake")
    slug = (await create_article(client, token))["slug"]

    response = await client.post(f"/api/articles/{slug}/comments", headers=auth(token), json=body)

    assert response.status_code == 422
    assert response.json() == {"errors": errors}


async def test_comments_of_unknown_article(client: AsyncClient) -> None:
    token = await register(client, "jake")

    listed = await client.get("/api/articles/nope/comments")
    added = await client.post(
        "/api/articles/nope/comments", headers=auth(token), json={"comment": {"body": "x"}}
    )
    deleted = await client.delete("/api/articles/nope/comments/1", headers=auth(token))

    for response in (listed, added, deleted):
        assert response.status_code == 404
        assert response.json() == {"errors": {"article": ["not found"]}}


async def test_comment_id_must_be_a_positive_integer(client: AsyncClient) -> None:
    token = await register(client, "jake")
    slug = (await create_article(client, token))["slug"]

    response = await client.delete(f"/api/articles/{slug}/comments/abc", headers=auth(token))

    assert response.status_code == 422
    assert response.json() == {"errors": {"comment_id": ["must be an integer"]}}
