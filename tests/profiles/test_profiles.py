import pytest
from httpx import AsyncClient

from tests.factories import auth, register

pytestmark = pytest.mark.anyio


async def test_profile_without_auth(client: AsyncClient) -> None:
    token = await register(client, "celeb")
    await client.put("/api/user", headers=auth(token), json={"user": {"bio": "famous"}})

    response = await client.get("/api/profiles/celeb")

    assert response.status_code == 200
    assert response.json() == {
        "profile": {"username": "celeb", "bio": "famous", "image": None, "following": False}
    }


async def test_follow_and_unfollow(client: AsyncClient) -> None:
    await register(client, "celeb")
    token = await register(client, "fan")

    followed = await client.post("/api/profiles/celeb/follow", headers=auth(token))
    again = await client.post("/api/profiles/celeb/follow", headers=auth(token))
    seen = await client.get("/api/profiles/celeb", headers=auth(token))
    unfollowed = await client.delete("/api/profiles/celeb/follow", headers=auth(token))
    after = await client.get("/api/profiles/celeb", headers=auth(token))

    assert followed.status_code == again.status_code == 200
    assert followed.json()["profile"]["following"] is True
    assert again.json()["profile"]["following"] is True
    assert seen.json()["profile"]["following"] is True
    assert unfollowed.json()["profile"]["following"] is False
    assert after.json()["profile"]["following"] is False


async def test_following_is_per_viewer(client: AsyncClient) -> None:
    await register(client, "celeb")
    fan = await register(client, "fan")
    other = await register(client, "other")
    await client.post("/api/profiles/celeb/follow", headers=auth(fan))

    response = await client.get("/api/profiles/celeb", headers=auth(other))

    assert response.json()["profile"]["following"] is False


async def test_cannot_follow_yourself(client: AsyncClient) -> None:
    token = await register(client, "narcissus")

    response = await client.post("/api/profiles/narcissus/follow", headers=auth(token))

    assert response.status_code == 422
    assert response.json() == {"errors": {"profile": ["can't follow yourself"]}}


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_unknown_profile(client: AsyncClient, method: str) -> None:
    token = await register(client, "fan")
    path = "/api/profiles/nobody" + ("" if method == "GET" else "/follow")

    response = await client.request(method, path, headers=auth(token))

    assert response.status_code == 404
    assert response.json() == {"errors": {"profile": ["not found"]}}


@pytest.mark.parametrize("method", ["POST", "DELETE"])
async def test_follow_requires_auth(client: AsyncClient, method: str) -> None:
    response = await client.request(method, "/api/profiles/celeb/follow")

    assert response.status_code == 401
    assert response.json() == {"errors": {"token": ["is missing"]}}
