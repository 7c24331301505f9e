"""What operators and tools ask of the app besides the API: request ids, HEAD, health checks,
metrics, the offline documentation, and configuration errors that name what is wrong."""

import json
import logging
import sys
from collections.abc import AsyncIterator, Callable

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from prometheus_client import REGISTRY
from pydantic import SecretStr, ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from conduit import operations
from conduit.config import (
    DatabaseSettings,
    Environment,
    HttpSettings,
    LogFormat,
    MetricsSettings,
    RateLimitSettings,
    Settings,
    explain,
)
from conduit.logs import SHOWN_CHARACTERS, Formatter, printable
from conduit.main import create_app
from tests.factories import register

pytestmark = pytest.mark.anyio


@pytest.fixture
async def docs_app(settings: Settings) -> AsyncIterator[FastAPI]:
    http = settings.http.model_copy(update={"docs_enabled": True})
    app = create_app(settings.model_copy(update={"http": http}))
    async with app.router.lifespan_context(app):
        yield app


async def test_a_well_formed_request_id_is_kept_and_any_other_replaced(
    client: AsyncClient,
) -> None:
    kept = await client.get("/api/tags", headers={"X-Request-ID": "7f3c-trace.id_1:2"})
    too_long = await client.get("/api/tags", headers={"X-Request-ID": "a" * 129})
    injected = await client.get("/api/tags", headers={"X-Request-ID": 'x"\n{"level":"error"}'})
    missing = await client.get("/api/tags")

    assert kept.headers["x-request-id"] == "7f3c-trace.id_1:2"
    generated = {response.headers["x-request-id"] for response in (too_long, injected, missing)}
    assert len(generated) == 3
    assert all(len(value) == 32 and int(value, 16) >= 0 for value in generated)


async def test_head_answers_wherever_get_does_without_a_body(client: AsyncClient) -> None:
    await register(client, "header")
    get = await client.get("/api/profiles/header")
    head = await client.head("/api/profiles/header")
    missing = await client.head("/api/profiles/nobody-at-all")

    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["etag"] == get.headers["etag"]
    assert missing.status_code == 404
    assert missing.content == b""


def _cache_lookups(result: str) -> float:
    return REGISTRY.get_sample_value("conduit_cache_lookups_total", {"result": result}) or 0.0


async def test_cache_lookups_are_counted_as_hits_and_misses(client: AsyncClient) -> None:
    """Two reads of one document: the second at least is a hit (the first may be too)."""
    hits, misses = _cache_lookups("hit"), _cache_lookups("miss")

    for _ in range(2):
        assert (await client.get("/api/tags")).status_code == 200

    assert _cache_lookups("hit") >= hits + 1
    assert _cache_lookups("hit") + _cache_lookups("miss") == hits + misses + 2


async def test_health_checks_answer_without_a_rate_limit(client: AsyncClient) -> None:
    live = await client.get("/health/live")
    ready = await client.get("/health/ready")

    assert live.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["schema"] == "ok"
    assert "ratelimit" not in ready.headers


async def _ready_at(client: AsyncClient, connection: AsyncConnection, revision: str) -> Response:
    """Readiness with the database at `revision` (in the test's transaction, which the health
    check reads through)."""
    await connection.execute(
        text("UPDATE alembic_version SET version_num = :revision"), {"revision": revision}
    )
    return await client.get("/health/ready")


async def test_readiness_accepts_a_newer_schema(
    client: AsyncClient, connection: AsyncConnection
) -> None:
    """A later release migrated the database (a rolling deploy): this process still serves."""
    ready = await _ready_at(client, connection, "0a1b2c3d4e5f")

    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["schema"] == "newer"


async def test_readiness_refuses_an_older_schema(
    client: AsyncClient, connection: AsyncConnection
) -> None:
    """`conduit migrate` has not run: traffic is kept away until it has, without a restart."""
    ready = await _ready_at(client, connection, "6b2e0c4f9a17")

    assert ready.status_code == 503
    assert ready.json() == {
        "errors": {"schema": ["is older than this release: run conduit migrate"]}
    }
    assert ready.headers["retry-after"] == "5"


async def test_readiness_refuses_a_database_never_migrated(
    client: AsyncClient, connection: AsyncConnection
) -> None:
    await connection.execute(text("DROP TABLE alembic_version"))

    ready = await client.get("/health/ready")

    assert ready.status_code == 503
    assert ready.json() == {
        "errors": {"schema": ["is older than this release: run conduit migrate"]}
    }


async def test_metrics_can_be_turned_off_and_require_their_token(settings: Settings) -> None:
    off = create_app(settings.model_copy(update={"metrics": MetricsSettings(enabled=False)}))
    guarded = create_app(
        settings.model_copy(
            update={"metrics": MetricsSettings(token=SecretStr("the-scrape-token"))}
        )
    )
    async with (
        off.router.lifespan_context(off),
        guarded.router.lifespan_context(guarded),
        AsyncClient(transport=ASGITransport(app=off), base_url="http://t") as to_off,
        AsyncClient(transport=ASGITransport(app=guarded), base_url="http://t") as to_guarded,
    ):
        absent = await to_off.get("/metrics")
        anonymous = await to_guarded.get("/metrics")
        wrong = await to_guarded.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = await to_guarded.get(
            "/metrics", headers={"Authorization": "Bearer the-scrape-token"}
        )

    assert absent.status_code == 404
    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert right.status_code == 200
    assert right.headers["content-type"].startswith("text/plain")
    assert "conduit_http_request_duration_seconds_bucket" in right.text


async def test_the_metrics_port_scrapes_as_the_serving_port_does_with_the_database_alone(
    settings: Settings, engine: AsyncEngine
) -> None:
    """`CONDUIT_METRICS_PORT`'s app (`operations.metrics_app`): the same route behind the same
    token, the job queue read from the database it connects."""
    del engine  # requested so that the schema exists before the app starts
    token = SecretStr("the-scrape-token")
    app = operations.metrics_app(
        settings.model_copy(update={"metrics": MetricsSettings(token=token)})
    )
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client,
    ):
        anonymous = await client.get("/metrics")
        right = await client.get("/metrics", headers={"Authorization": "Bearer the-scrape-token"})

    assert anonymous.status_code == 401
    assert right.status_code == 200
    assert 'conduit_jobs{status="queued"} 0.0' in right.text


async def test_production_serves_metrics_beside_the_api_only_behind_their_token(
    settings: Settings,
) -> None:
    """The serving port is public in production: without a token, no `/metrics` on it (the
    metrics port serves them); with one, a scrape must show it. Development keeps them open."""
    production = settings.model_copy(update={"env": Environment.PRODUCTION})
    guarded = production.model_copy(
        update={"metrics": MetricsSettings(token=SecretStr("the-scrape-token"))}
    )
    closed, open_, development = (
        create_app(production),
        create_app(guarded),
        create_app(settings),
    )
    bearer = {"Authorization": "Bearer the-scrape-token"}
    async with (
        closed.router.lifespan_context(closed),
        open_.router.lifespan_context(open_),
        development.router.lifespan_context(development),
        AsyncClient(transport=ASGITransport(app=closed), base_url="http://t") as to_closed,
        AsyncClient(transport=ASGITransport(app=open_), base_url="http://t") as to_guarded,
        AsyncClient(transport=ASGITransport(app=development), base_url="http://t") as to_dev,
    ):
        hidden = await to_closed.get("/metrics", headers=bearer)
        anonymous = await to_guarded.get("/metrics")
        right = await to_guarded.get("/metrics", headers=bearer)
        scraped = await to_dev.get("/metrics")

    assert hidden.status_code == 404
    assert anonymous.status_code == 401
    assert right.status_code == scraped.status_code == 200
    assert "conduit_http_request_duration_seconds_bucket" in scraped.text


async def test_the_documentation_loads_nothing_from_another_host(docs_app: FastAPI) -> None:
    async with AsyncClient(transport=ASGITransport(app=docs_app), base_url="http://t") as client:
        swagger = await client.get("/docs")
        redoc = await client.get("/redoc")
        assets = [
            await client.get(f"/docs/assets/{name}")
            for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js")
        ]

    for page in (swagger, redoc):
        assert page.status_code == 200
        assert "https://" not in page.text
        assert "/docs/assets/" in page.text
    assert "conduit-docs" in swagger.text
    assert [asset.status_code for asset in assets] == [200, 200, 200]
    assert len(assets[0].content) > 100_000


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (
            lambda: DatabaseSettings(url="oracle://scott:tiger@db/x"),
            [
                "DATABASE_URL: oracle:// is not supported; use postgresql://... (PostgreSQL, "
                "through asyncpg) or sqlite:///... (SQLite, through aiosqlite)"
            ],
        ),
        (
            lambda: HttpSettings(max_body_bytes=1),
            ["CONDUIT_HTTP_MAX_BODY_BYTES: Input should be greater than or equal to 1024"],
        ),
        (
            lambda: RateLimitSettings.model_validate({"sign_in": {"quota": 0}}),
            ["CONDUIT_RATE_LIMIT_SIGN_IN__QUOTA: Input should be greater than or equal to 1"],
        ),
    ],
)
def test_a_refused_setting_is_named_by_its_variable(
    build: Callable[[], object], expected: list[str]
) -> None:
    with pytest.raises(ValidationError) as refused:
        build()
    assert explain(refused.value) == expected


def test_a_refused_secret_is_never_repeated() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings.model_validate({"auth": {"secret_key": "short-secret-value"}})

    assert "short-secret-value" not in "\n".join(explain(refused.value))


def test_json_lines_carry_the_fields_and_the_traceback_in_one_line() -> None:
    try:
        raise ValueError("broken")  # noqa: TRY301 (the error the line reports)
    except ValueError:
        failure = sys.exc_info()
    record = logging.LogRecord(
        "conduit.test", logging.ERROR, __file__, 1, "failed: %s", ("x",), failure
    )
    record.route = "/api/tags"
    line = Formatter(LogFormat.JSON).format(record)

    assert "\n" not in line
    assert '"event":"failed: x"' in line
    assert '"route":"/api/tags"' in line
    assert '"level":"error"' in line
    assert "ValueError: broken" in line


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("/api/articles/héllo-wörld", "/api/articles/héllo-wörld"),
        ('/x\n{"level":"error"}', '/x\\n{"level":"error"}'),
        ("/x\r\x1b[2J\x00\u202eevil", "/x\\r\\x1b[2J\\x00\\u202eevil"),
        ("/already\\n-escaped", "/already\\\\n-escaped"),
        ("/" + "a" * 300, "/" + "a" * 199 + "...[101 more]"),
        ("/" + "\x00" * 300, "/" + "\\x00" * 49 + "...[251 more]"),
    ],
)
def test_a_client_s_text_is_logged_escaped_and_bounded(text: str, shown: str) -> None:
    assert printable(text) == shown


@pytest.mark.parametrize("log_format", [LogFormat.CONSOLE, LogFormat.JSON])
async def test_an_unmatched_request_s_access_line_shows_its_path(
    settings: Settings, capsys: pytest.CaptureFixture[str], log_format: LogFormat
) -> None:
    """The path asked for, not a template, escaped and bounded (`printable`): each request is
    one line whatever its path holds. A matched route's line keeps its template only."""
    log = settings.log.model_copy(update={"format": log_format, "access": True})
    app = create_app(settings.model_copy(update={"log": log}))
    forged = '/api/nowhere%0A{"event":"GET /api/forged 200"}%1B[2J'
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client,
    ):
        capsys.readouterr()
        await client.get(forged)
        await client.get("/api/" + "long" * 1000)
        await client.get("/api/tags")
        lines = capsys.readouterr().out.splitlines()

    assert len(lines) == 3
    escaped = '/api/nowhere\\n{"event":"GET /api/forged 200"}\\x1b[2J'
    cut = "/api/" + ("long" * 1000)[: SHOWN_CHARACTERS - len("/api/")] + "...[3805 more]"
    if log_format is LogFormat.JSON:
        unmatched, long, matched = (json.loads(line) for line in lines)
        assert (unmatched["event"], unmatched["route"]) == (f"GET {escaped} 404", None)
        assert unmatched["path"] == escaped
        assert (long["event"], long["path"]) == (f"GET {cut} 404", cut)
        assert (matched["event"], matched["route"]) == ("GET /api/tags 200", "/api/tags")
        assert "path" not in matched
    else:
        assert f"GET {escaped} 404" in lines[0]
        assert "path=" in lines[0]
        assert f"GET {cut} 404" in lines[1]
        assert "long" * 49 not in lines[1]
        assert "GET /api/tags 200" in lines[2]
        assert "path=" not in lines[2]


async def test_a_method_the_metrics_do_not_name_is_other(settings: Settings) -> None:
    """A client chooses the method: the metric's label does not take it as it came."""
    app = create_app(
        settings.model_copy(update={"metrics": MetricsSettings(token=SecretStr("the-token"))})
    )
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client,
    ):
        refused = await client.request("BREW-COFFEE-7", "/api/tags")
        scraped = await client.get("/metrics", headers={"Authorization": "Bearer the-token"})

    assert refused.status_code == 405
    assert 'method="OTHER",route="/api/tags",status="405"' in scraped.text
    assert "BREW-COFFEE-7" not in scraped.text
