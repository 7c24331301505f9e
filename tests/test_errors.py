from collections.abc import AsyncIterator

import pytest
from httpx import ASGITransport, AsyncClient

from conduit.config import Settings
from conduit.errors import validation_errors
from conduit.main import create_app
from tests.factories import auth, register

pytestmark = pytest.mark.anyio


# Not JSON, and not UTF-8 (which JSON must be): one rule for every body that cannot be read.
@pytest.mark.parametrize(
    "content",
    [b'{"article": {"title": ', b'{"article": {"title": "\xff\xfe"}}'],
    ids=["json", "utf8"],
)
async def test_malformed_json(client: AsyncClient, content: bytes) -> None:
    token = await register(client, "jake")

    response = await client.post(
        "/api/articles", headers=auth(token) | {"Content-Type": "application/json"}, content=content
    )

    assert response.status_code == 422
    assert response.json() == {"errors": {"body": ["is not valid JSON"]}}


async def test_body_of_the_wrong_shape(client: AsyncClient) -> None:
    bodies: list[object] = [[], "text", {"user": None}]
    for body in bodies:
        response = await client.post("/api/users", json=body)

        assert response.status_code == 422
        assert set(response.json()["errors"]) <= {"body", "user"}


async def test_oversized_body_is_refused(client: AsyncClient, settings: Settings) -> None:
    token = await register(client, "jake")
    huge = "x" * (settings.http.max_body_bytes + 1)

    response = await client.post(
        "/api/articles",
        headers=auth(token),
        json={"article": {"title": "t", "description": "d", "body": huge}},
    )

    assert response.status_code == 413
    assert response.json() == {"errors": {"request": ["content too large"]}}


async def test_unknown_route_and_method(client: AsyncClient) -> None:
    unknown = await client.get("/api/nothing-here")
    wrong_method = await client.patch("/api/tags")

    assert unknown.status_code == 404
    assert unknown.json() == {"errors": {"request": ["not found"]}}
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"errors": {"request": ["method not allowed"]}}


async def test_unexpected_error_is_a_500_without_details(
    caplog: pytest.LogCaptureFixture, settings: Settings
) -> None:
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/boom")

    assert response.status_code == 500
    assert response.json() == {"errors": {"server": ["internal error"]}}
    assert response.headers["x-request-id"]
    assert "secret internals" not in response.text
    assert any(record.message == "unhandled_error" for record in caplog.records)


def test_validation_errors_name_the_innermost_field() -> None:
    errors = validation_errors(
        [
            {"type": "missing", "loc": ("body", "user", "email")},
            {"type": "string_type", "loc": ("body", "user", "username"), "input": 3},
            {"type": "model_type", "loc": ("body",), "input": []},
            {"type": "something_new", "loc": ("query", "limit")},
        ]
    )

    assert errors == {
        "email": ["can't be blank"],
        "username": ["must be a string"],
        "body": ["must be an object"],
        "limit": ["is invalid"],
    }


async def test_oversized_streamed_body_is_refused(client: AsyncClient, settings: Settings) -> None:
    token = await register(client, "jake")

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"article": {"title": "t", "description": "d", "body": "'
        for _ in range(settings.http.max_body_bytes // 1024 + 1):
            yield b"x" * 1024
        yield b'"}}'

    response = await client.post(
        "/api/articles",
        headers=auth(token) | {"Content-Type": "application/json"},
        content=chunks(),
    )

    assert response.status_code == 413
    assert response.json() == {"errors": {"request": ["content too large"]}}
