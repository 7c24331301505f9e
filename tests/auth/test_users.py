from datetime import UTC, datetime, timedelta

import jwt
import pytest
from httpx import AsyncClient

from conduit.auth.tokens import ALGORITHM
from tests.conftest import TEST_SECRET
from tests.factories import PASSWORD, auth, register

pytestmark = pytest.mark.anyio


async def test_register_returns_user_with_token(client: AsyncClient) -> None:
    response = await client.post(
        "/api/users",
        json={"user": {"username": "jake", "email": "Jake@Jake.JAKE", "password": PASSWORD}},
    )

    assert response.status_code == 201
    user = response.json()["user"]
    assert user == {
        "username": "jake",
        "email": "jake@jake.jake",
        "bio": None,
        "image": None,
        "token": user["token"],
    }
    claims = jwt.decode(user["token"], TEST_SECRET, algorithms=[ALGORITHM], audience="conduit-api")
    assert set(claims) == {"iss", "aud", "sub", "sid", "iat", "nbf", "exp"}
    assert jwt.get_unverified_header(user["token"])["typ"] == "at+jwt"


async def test_login_and_current_user(client: AsyncClient) -> None:
    await register(client, "jake")

    login = await client.post(
        "/api/users/login", json={"user": {"email": "JAKE@example.com", "password": PASSWORD}}
    )
    assert login.status_code == 200
    token = login.json()["user"]["token"]

    for scheme in ("Token", "Bearer", "token"):
        response = await client.get("/api/user", headers={"Authorization": f"{scheme} {token}"})
        assert response.status_code == 200
        assert response.json()["user"]["username"] == "jake"
        assert response.json()["user"]["token"] == token


@pytest.mark.parametrize(
    ("email", "password"),
    [("jake@example.com", "wrong-password"), ("nobody@example.com", PASSWORD)],
)
async def test_login_failure_does_not_say_which_part_was_wrong(
    client: AsyncClient, email: str, password: str
) -> None:
    await register(client, "jake")

    response = await client.post(
        "/api/users/login", json={"user": {"email": email, "password": password}}
    )

    assert response.status_code == 401
    assert response.json() == {"errors": {"credentials": ["invalid"]}}


@pytest.mark.parametrize(
    ("user", "errors"),
    [
        (
            {"username": "", "email": "", "password": ""},
            {
                "username": ["can't be blank"],
                "email": ["can't be blank"],
                "password": ["can't be blank"],
            },
        ),
        (
            {},
            {
                "username": ["can't be blank"],
                "email": ["can't be blank"],
                "password": ["can't be blank"],
            },
        ),
        (
            {"username": "jake", "email": "not-an-email", "password": PASSWORD},
            {"email": ["is invalid"]},
        ),
        (
            {"username": "jake", "email": "jake@example.com", "password": "short"},
            {"password": ["is too short (minimum is 8 characters)"]},
        ),
        (
            {"username": "j" * 51, "email": "jake@example.com", "password": PASSWORD},
            {"username": ["is too long (maximum is 50 characters)"]},
        ),
        (
            {"username": "ja ke", "email": "jake@example.com", "password": PASSWORD},
            {"username": ["is invalid"]},
        ),
        (
            {"username": 42, "email": "jake@example.com", "password": PASSWORD},
            {"username": ["must be a string"]},
        ),
    ],
)
async def test_register_validation(
    client: AsyncClient, user: dict[str, object], errors: dict[str, list[str]]
) -> None:
    response = await client.post("/api/users", json={"user": user})

    assert response.status_code == 422
    assert response.json() == {"errors": errors}


async def test_register_duplicate_username_then_email(client: AsyncClient) -> None:
    await register(client, "jake")

    same_username = await client.post(
        "/api/users",
        json={"user": {"username": "jake", "email": "other@example.com", "password": PASSWORD}},
    )
    same_email = await client.post(
        "/api/users",
        json={"user": {"username": "other", "email": "JAKE@example.com", "password": PASSWORD}},
    )

    assert same_username.status_code == 409
    assert same_username.json() == {"errors": {"username": ["has already been taken"]}}
    assert same_email.status_code == 409
    assert same_email.json() == {"errors": {"email": ["has already been taken"]}}


@pytest.mark.parametrize("username", ["JAKE", "Jake", "jaKe"])
async def test_a_username_differing_only_by_case_is_taken(
    client: AsyncClient, username: str
) -> None:
    await register(client, "jake")

    response = await client.post(
        "/api/users",
        json={"user": {"username": username, "email": "other@example.com", "password": PASSWORD}},
    )

    assert response.status_code == 409
    assert response.json() == {"errors": {"username": ["has already been taken"]}}
    assert (await client.get(f"/api/profiles/{username}")).status_code == 404


async def test_update_user(client: AsyncClient) -> None:
    token = await register(client, "jake")

    response = await client.put(
        "/api/user",
        headers=auth(token),
        json={
            "user": {
                "username": "jacob",
                "email": "jacob@example.com",
                "bio": "I like to skateboard",
                "image": "https://example.com/jacob.jpg",
            }
        },
    )

    assert response.status_code == 200
    assert response.json()["user"] == {
        "username": "jacob",
        "email": "jacob@example.com",
        "bio": "I like to skateboard",
        "image": "https://example.com/jacob.jpg",
        "token": token,
    }
    current = await client.get("/api/user", headers=auth(token))
    assert current.json()["user"]["username"] == "jacob"


async def test_update_user_clears_bio_and_image_with_empty_string_or_null(
    client: AsyncClient,
) -> None:
    token = await register(client, "jake")
    await client.put(
        "/api/user",
        headers=auth(token),
        json={"user": {"bio": "bio", "image": "https://example.com/a.png"}},
    )

    response = await client.put(
        "/api/user", headers=auth(token), json={"user": {"bio": "", "image": None}}
    )

    assert response.json()["user"]["bio"] is None
    assert response.json()["user"]["image"] is None


async def test_update_user_keeps_fields_not_sent(client: AsyncClient) -> None:
    token = await register(client, "jake")
    await client.put("/api/user", headers=auth(token), json={"user": {"bio": "kept"}})

    response = await client.put(
        "/api/user", headers=auth(token), json={"user": {"username": "jacob"}}
    )

    assert response.json()["user"]["bio"] == "kept"
    assert response.json()["user"]["email"] == "jake@example.com"


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"email": None}, {"email": ["can't be blank"]}),
        ({"username": ""}, {"username": ["can't be blank"]}),
        ({"password": None}, {"password": ["can't be blank"]}),
        ({"password": "short7c"}, {"password": ["is too short (minimum is 8 characters)"]}),
        ({"image": "javascript:alert(1)"}, {"image": ["must be an http(s) URL"]}),
        ({"bio": "b" * 2001}, {"bio": ["is too long (maximum is 2000 characters)"]}),
    ],
)
async def test_update_user_validation(
    client: AsyncClient, change: dict[str, object], errors: dict[str, list[str]]
) -> None:
    token = await register(client, "jake")

    response = await client.put("/api/user", headers=auth(token), json={"user": change})

    assert response.status_code == 422
    assert response.json() == {"errors": errors}


async def test_update_to_a_taken_username_conflicts(client: AsyncClient) -> None:
    await register(client, "celeb")
    token = await register(client, "jake")

    response = await client.put(
        "/api/user", headers=auth(token), json={"user": {"username": "celeb"}}
    )
    case_variant = await client.put(
        "/api/user", headers=auth(token), json={"user": {"username": "CeLeB"}}
    )
    own = await client.put("/api/user", headers=auth(token), json={"user": {"username": "JAKE"}})

    assert response.status_code == 409
    assert response.json() == {"errors": {"username": ["has already been taken"]}}
    assert case_variant.status_code == 409
    assert case_variant.json() == {"errors": {"username": ["has already been taken"]}}
    # One's own name in another case is still one's own.
    assert own.status_code == 200
    assert own.json()["user"]["username"] == "JAKE"


async def test_password_change_takes_effect(client: AsyncClient) -> None:
    token = await register(client, "jake")

    await client.put("/api/user", headers=auth(token), json={"user": {"password": "a" * 64}})

    old = await client.post(
        "/api/users/login", json={"user": {"email": "jake@example.com", "password": PASSWORD}}
    )
    new = await client.post(
        "/api/users/login", json={"user": {"email": "jake@example.com", "password": "a" * 64}}
    )
    assert old.status_code == 401
    assert new.status_code == 200


async def test_missing_token(client: AsyncClient) -> None:
    response = await client.get("/api/user")

    assert response.status_code == 401
    assert response.json() == {"errors": {"token": ["is missing"]}}
    assert response.headers["WWW-Authenticate"] == "Token"


def _claims(**claims: object) -> dict[str, object]:
    now = datetime.now(UTC)
    return {"sub": "1", "iat": now, "exp": now + timedelta(hours=1)} | claims


def _token(**claims: object) -> str:
    return jwt.encode(_claims(**claims), TEST_SECRET, algorithm=ALGORITHM)


@pytest.mark.parametrize(
    "header",
    [
        "Token not-a-jwt",
        "Basic dXNlcjpwYXNz",
        "Token",
        f"Token {_token(exp=datetime.now(UTC) - timedelta(hours=1))}",
        f"Token {jwt.encode(_claims(), 'another-secret-key-of-32-bytes!!', algorithm=ALGORITHM)}",
        f"Token {jwt.encode(_claims(), None, algorithm='none')}",
        f"Token {_token(sub='jake')}",
        f"Token {_token(sub='999999')}",
    ],
)
async def test_invalid_token(client: AsyncClient, header: str) -> None:
    await register(client, "jake")

    response = await client.get("/api/user", headers={"Authorization": header})

    assert response.status_code == 401
    assert response.json() == {"errors": {"token": ["is invalid"]}}


async def test_responses_never_carry_the_password_hash(client: AsyncClient) -> None:
    token = await register(client, "jake")

    for response in (
        await client.get("/api/user", headers=auth(token)),
        await client.get("/api/profiles/jake"),
    ):
        assert "password" not in response.text
        assert "argon2" not in response.text
