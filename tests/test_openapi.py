"""The OpenAPI document tells the truth: who may call each operation, every status it can send,
the constraints of its input as the API enforces them, and the links between operations. And
the input no database can store is a 422 naming the field, on every database."""

import difflib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import jsonschema_rs
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import BigInteger, Integer, SmallInteger

from conduit import openapi
from conduit.database import Base
from conduit.schemas import digits_up_to
from tests.factories import auth, create_article, register

pytestmark = pytest.mark.anyio

METHODS = {"get", "put", "post", "delete"}
COMMITTED = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"
REGENERATE = ".venv/bin/python -m conduit.openapi > docs/openapi.json"


@pytest.fixture
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


async def test_the_committed_document_is_the_app_s(document: dict[str, Any]) -> None:
    """docs/openapi.json, the API reference readable without running a server, is the app's."""
    committed = COMMITTED.read_text(encoding="utf-8")
    generated = openapi.render(document)

    difference = difflib.unified_diff(
        committed.splitlines(), generated.splitlines(), str(COMMITTED), "the app's", lineterm=""
    )
    assert committed == generated, (
        f"docs/openapi.json is not the app's document; regenerate it: {REGENERATE}\n"
        + "\n".join(list(difference)[:40])
    )


@pytest.mark.one_pass
async def test_the_regeneration_command_writes_the_app_s_document(document: dict[str, Any]) -> None:
    written = await anyio.run_process([sys.executable, "-m", "conduit.openapi"])

    assert written.stdout.decode() == openapi.render(document)


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        operation["operationId"]: operation | {"path": path, "method": method}
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS and path.startswith("/api/")
    }


async def test_optional_authentication_is_declared_optional(document: dict[str, Any]) -> None:
    operations = _operations(document)
    for name in ("list_articles", "get_article", "list_comments", "get_profile"):
        assert {} in operations[name]["security"], name
    for name in ("feed", "create_article", "get_current_user", "follow"):
        assert {} not in operations[name]["security"], name
    for name in ("list_tags", "register", "login"):
        assert "security" not in operations[name], name


async def test_every_operation_declares_the_errors_it_can_send(document: dict[str, Any]) -> None:
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    for name, operation in _operations(document).items():
        responses = operation["responses"]
        assert {"429", "503"} <= set(responses), name
        assert "Retry-After" in responses["503"]["headers"], name
        if "requestBody" in operation:
            assert "413" in responses, name
        if operation.get("security"):
            assert "401" in responses, name
        for code in ("401", "403", "404", "409", "413", "503"):
            if code in responses:
                assert responses[code]["content"]["application/json"]["schema"] == error


async def test_links_lead_to_operations_and_their_parameters(document: dict[str, Any]) -> None:
    operations = _operations(document)
    linked = 0
    for operation in operations.values():
        for response in operation["responses"].values():
            for link in response.get("links", {}).values():
                target = operations[link["operationId"]]
                declared = {parameter["name"] for parameter in target.get("parameters", ())}
                assert set(link["parameters"]) <= declared, link
                linked += 1
    assert linked >= 15
    create = operations["create_article"]["responses"]["201"]["links"]
    assert {"get_article", "update_article", "delete_article"} <= set(create)


def _integer_column_max() -> int:
    """The largest value every integer column holds: what an id or a count sent may not pass."""
    largest = {SmallInteger: 2**15 - 1, BigInteger: 2**63 - 1, Integer: 2**31 - 1}
    return min(
        next(limit for kind, limit in largest.items() if isinstance(column.type, kind))
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, Integer) and column.primary_key
    )


def _inputs(
    document: dict[str, Any], schema: dict[str, Any], where: str, holder: dict[str, Any]
) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Every schema inside a request's `schema`: where, the schema, and the property or parameter
    holding it (which carries the description)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    yield where, schema, holder
    for option in schema.get("anyOf", ()):
        yield from _inputs(document, option, where, holder)
    if "items" in schema:
        yield from _inputs(document, schema["items"], f"{where}[]", schema["items"])
    for name, value in schema.get("properties", {}).items():
        yield from _inputs(document, value, f"{where}.{name}", value)


def _request_values(
    document: dict[str, Any],
) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for name, operation in _operations(document).items():
        for parameter in operation.get("parameters", ()):
            yield from _inputs(
                document, parameter["schema"], f"{name} {parameter['name']}", parameter
            )
        for media in operation.get("requestBody", {}).get("content", {}).values():
            yield from _inputs(document, media["schema"], name, media["schema"])


async def test_every_number_and_time_a_request_takes_fits_the_database(
    document: dict[str, Any],
) -> None:
    largest = _integer_column_max()
    assert largest == 2**31 - 1
    digits, dates = [], []
    for where, schema, holder in _request_values(document):
        if schema.get("type") == "integer":
            assert schema.get("maximum", largest + 1) <= largest, where
        validator = jsonschema_rs.validator_for({"pattern": schema.get("pattern", "")})
        if "pattern" in schema and validator.is_valid("1") and not validator.is_valid("x"):
            # A digit-string id: the pattern admits exactly the ids a column holds.
            digits.append(where)
            assert validator.is_valid(str(largest)), where
            assert not validator.is_valid(str(largest + 1)), where
            assert not validator.is_valid("9" * 30), where
        if schema.get("format") == "date-time":
            dates.append(where)
            assert re.search(r"at most [\d,]+ days", holder.get("description", "")), where
    # The walk reaches the fields it guards.
    assert "mark_read.ids[]" in digits
    assert "create_api_key.apiKey.expiresAt" in dates


# Each value sent as an article's `title`, the document's verdict checked against the API's.
TITLES = [
    "",
    " ",
    "\t\n",
    "\x1c",
    "\x85",
    "\ufeff",
    "\u3000",
    "\u3000a\u3000",
    "a",
    "  padded  ",
    "a\x00b",
    "\x00",
    "ünïcödé 🙂",
    "a\x01\x7f",
    "a" * 200,
    "a" * 201,
    " " * 5 + "a" * 196,
]


async def test_the_schema_accepts_exactly_what_the_api_accepts(
    client: AsyncClient, document: dict[str, Any]
) -> None:
    token = await register(client, "jake")
    article_schema = document["components"]["schemas"]["NewArticle"]
    # The validator Schemathesis judges requests with: ECMA 262 patterns, as JSON Schema says.
    validator = jsonschema_rs.validator_for(
        {"$ref": "#/components/schemas/NewArticle", "components": document["components"]}
    )
    assert article_schema["properties"]["title"]["pattern"]
    for title in TITLES:
        article = {"title": title, "description": "d", "body": "b"}
        documented = validator.is_valid(article)

        response = await client.post(
            "/api/articles", headers=auth(token), json={"article": article}
        )

        assert response.status_code == (201 if documented else 422), (title, response.text)
        if not documented:
            assert set(response.json()["errors"]) == {"title"}, title


@pytest.mark.parametrize(
    "text",
    ["nul \x00 inside", "lone surrogate \ud800", "\udfff"],
    ids=["nul", "high-surrogate", "low-surrogate"],
)
async def test_text_no_database_can_store_is_refused_naming_the_field(
    client: AsyncClient, text: str
) -> None:
    token = await register(client, "jake")
    slug = (await create_article(client, token, title="Stored"))["slug"]
    sent = [
        ("post", "/api/articles", {"article": {"title": text, "description": "d", "body": "b"}}),
        ("put", f"/api/articles/{slug}", {"article": {"body": text}}),
        ("post", f"/api/articles/{slug}/comments", {"comment": {"body": text}}),
        ("put", "/api/user", {"user": {"bio": text}}),
        ("post", "/api/users", {"user": {"username": "x", "email": "x@x.io", "password": text}}),
    ]
    for method, path, body in sent:
        response = await client.request(
            method,
            path,
            headers=auth(token) | {"Content-Type": "application/json"},
            # Escaped, as a client sends them: `\u0000`, `\ud800`.
            content=json.dumps(body, ensure_ascii=True),
        )

        assert response.status_code == 422, (path, response.text)
        (field,) = response.json()["errors"]
        assert field in {"title", "body", "bio", "password"}, response.text


@pytest.mark.parametrize("signed_in", [True, False], ids=["signed-in", "anonymous"])
async def test_paths_queries_and_forms_holding_nul_are_refused(
    client: AsyncClient, signed_in: bool
) -> None:
    token = await register(client, "jake")
    headers = auth(token) if signed_in else {}
    for method, path in [
        ("get", "/api/articles/a%00b"),
        ("get", "/api/articles/a%00b/comments"),
        ("get", "/api/profiles/a%00b"),
        ("get", "/api/articles?tag=a%00b"),
        ("get", "/api/articles?author=%00"),
        *([("post", "/api/profiles/a%00b/follow")] if signed_in else []),
    ]:
        response = await client.request(method, path, headers=headers)

        assert response.status_code == 422, (path, response.text)
    token_form = {"grant_type": "password", "username": "jake\x00", "password": "x"}
    response = await client.post("/api/auth/token", data=token_form)
    assert response.status_code == 422
    assert response.json() == {"errors": {"username": ["contains a character that is not allowed"]}}


async def test_allow_lists_every_method_of_the_path(client: AsyncClient) -> None:
    cases = {
        "/api/articles/some-slug": "DELETE, GET, HEAD, PUT",
        "/api/articles": "GET, HEAD, POST",
        "/api/user": "GET, HEAD, PUT",
        "/api/profiles/jake/follow": "DELETE, POST",
        "/api/articles/feed": "GET, HEAD",
    }
    for path, allowed in cases.items():
        response = await client.options(path)

        assert response.status_code == 405, path
        assert response.headers["allow"] == allowed, path
        assert response.json() == {"errors": {"request": ["method not allowed"]}}


async def test_the_feed_is_never_an_article(client: AsyncClient) -> None:
    token = await register(client, "jake")

    created = await create_article(client, token, title="Feed")
    updated = await client.put(
        "/api/articles/feed", headers=auth(token), json={"article": {"body": "changed"}}
    )

    assert created["slug"].startswith("feed-")
    assert (await client.get(f"/api/articles/{created['slug']}")).status_code == 200
    assert updated.status_code == 405
    assert updated.headers["allow"] == "GET, HEAD"


@pytest.mark.one_pass
@pytest.mark.parametrize("largest", [1, 9, 10, 19, 20, 309, 1000, 4321])
def test_the_id_pattern_admits_exactly_one_to_the_largest(largest: int) -> None:
    pattern = re.compile(digits_up_to(largest))

    admitted = [n for n in range(10_000) if pattern.fullmatch(str(n))]

    assert admitted == list(range(1, largest + 1))
    assert not pattern.fullmatch(f"0{largest}")


async def test_the_deepest_page_is_documented_and_enforced(
    client: AsyncClient, document: dict[str, Any]
) -> None:
    for path in ("/api/articles", "/api/articles/feed"):
        [offset] = [
            p for p in document["paths"][path]["get"]["parameters"] if p["name"] == "offset"
        ]
        assert offset["schema"]["maximum"] == 10_000

    deepest = await client.get("/api/articles", params={"offset": 10_000})
    too_deep = await client.get("/api/articles", params={"offset": 10_001})

    assert deepest.status_code == 200
    assert too_deep.status_code == 422
    assert too_deep.json() == {"errors": {"offset": ["must be less than or equal to 10000"]}}
