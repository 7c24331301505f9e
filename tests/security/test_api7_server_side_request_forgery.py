"""API7:2023 Server Side Request Forgery: Conduit never fetches a URL a client gives it. The
only URL it stores, a profile image, must be http(s), so that no client renders a `javascript:`
or `file:` link from it."""

import pytest
from httpx import AsyncClient

from tests.factories import auth, register

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "image", ["file:///etc/passwd", "javascript:alert(1)", "gopher://127.0.0.1:6379/_INFO"]
)
async def test_only_http_image_urls(client: AsyncClient, image: str) -> None:
    token = await register(client, "alice")

    response = await client.put("/api/user", headers=auth(token), json={"user": {"image": image}})

    assert response.status_code == 422
    assert response.json() == {"errors": {"image": ["must be an http(s) URL"]}}
