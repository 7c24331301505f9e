"""API9:2023 Improper Inventory Management: the routes Conduit serves are exactly the reviewed
inventory below, all documented with the credentials they accept. A new route fails this test
until it is added here on purpose."""

import pytest
from httpx import AsyncClient

pytestmark = pytest.mark.anyio

PUBLIC = {
    ("POST", "/api/users"),
    ("POST", "/api/users/login"),
    ("POST", "/api/auth/token"),
    ("POST", "/api/auth/refresh"),
    ("POST", "/api/users/password-reset"),
    ("POST", "/api/users/password-reset/confirm"),
    ("GET", "/api/tags"),
}
AUTHENTICATED = {
    ("GET", "/api/user"),
    ("PUT", "/api/user"),
    ("POST", "/api/auth/logout"),
    ("POST", "/api/auth/logout-all"),
    ("GET", "/api/user/api-keys"),
    ("POST", "/api/user/api-keys"),
    ("DELETE", "/api/user/api-keys/{key_id}"),
    ("GET", "/api/profiles/{username}"),
    ("POST", "/api/profiles/{username}/follow"),
    ("DELETE", "/api/profiles/{username}/follow"),
    ("GET", "/api/articles"),
    ("POST", "/api/articles"),
    ("GET", "/api/articles/feed"),
    ("GET", "/api/articles/{slug}"),
    ("PUT", "/api/articles/{slug}"),
    ("DELETE", "/api/articles/{slug}"),
    ("POST", "/api/articles/{slug}/favorite"),
    ("DELETE", "/api/articles/{slug}/favorite"),
    ("GET", "/api/articles/{slug}/comments"),
    ("POST", "/api/articles/{slug}/comments"),
    ("DELETE", "/api/articles/{slug}/comments/{comment_id}"),
    ("GET", "/api/notifications"),
    ("POST", "/api/notifications/read"),
}


async def test_the_documented_routes_are_the_inventory(client: AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()

    documented = {
        (method.upper(), path) for path, item in schema["paths"].items() for method in item
    }

    assert documented == PUBLIC | AUTHENTICATED


async def test_every_non_public_route_declares_its_credentials(client: AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()

    for method, path in AUTHENTICATED:
        operation = schema["paths"][path][method.lower()]
        schemes = {name for requirement in operation["security"] for name in requirement}
        assert schemes == {"Token", "OAuth2", "APIKey"}, (method, path)


async def test_public_routes_declare_no_credentials(client: AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()

    for method, path in PUBLIC:
        assert "security" not in schema["paths"][path][method.lower()], (method, path)


async def test_every_documented_error_has_the_shape_conduit_sends(client: AsyncClient) -> None:
    """Each route declares its error responses with the error schema, and no FastAPI default
    (a validation error shape Conduit never sends) is left in the document."""
    schema = (await client.get("/openapi.json")).json()

    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for code, response in operation["responses"].items():
                if int(code) < 400:
                    continue
                shape = (
                    "OAuth2ErrorResponse"
                    if path == "/api/auth/token" and code == "400"
                    else ("ErrorResponse")
                )
                reference = response["content"]["application/json"]["schema"]["$ref"]
                assert reference == f"#/components/schemas/{shape}", (method, path, code)
    assert "HTTPValidationError" not in schema["components"]["schemas"]


@pytest.mark.parametrize("path", ["/admin", "/api/debug", "/api/v2/articles", "/api/users/1"])
async def test_nothing_undocumented_answers(client: AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code in {404, 405}
