"""What operators and platforms ask a running process: is it alive, can it serve, and its
metrics. None of these routes is rate limited, documented in the API's schema or logged at
INFO (`conduit.edge.Edge`)."""

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from fastapi import APIRouter, FastAPI, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import exc

from conduit import clients, database, kv, metrics
from conduit.config import Settings
from conduit.database import (
    UNAVAILABLE,
    Database,
    Schema,
    read_schema_revision,
    report_unavailable,
    schema_standing,
    unavailable,
)
from conduit.errors import Unauthorized, error_response, register_error_handlers
from conduit.jobs import backlog

# A check that takes longer has failed: a platform's probe waits a few seconds at most.
CHECK_TIMEOUT_SECONDS = 2.0

router = APIRouter(include_in_schema=False)
metrics_router = APIRouter(include_in_schema=False)


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process runs and its event loop answers."""
    return {"status": "ok"}


async def _schema(settings: Settings, database: Database) -> Schema | None:
    """How the database's schema stands to this release's, None when the database does not
    answer. On the read path's connections: on SQLite the only write connection may be busy
    writing."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            revision = await read_schema_revision(database.reader)
    except (exc.DBAPIError, *UNAVAILABLE) as error:
        if not unavailable(error):
            raise
        report_unavailable(settings.database, error)
        return None
    return await schema_standing(revision)


async def _store_answers(store: kv.Redis | kv.Upstash) -> str | None:
    try:
        await store.run([("PING",)])
    except kv.Unavailable as error:
        store.outage.failed(error)
        return None
    store.outage.recovered()
    return "ok"


@router.get("/health/ready")
async def ready(request: Request) -> Response:
    """The database answers with a schema of this release or a later one, and the shared store
    answers when one is configured: this process can serve. A 503 names what does not answer,
    or `schema` when the database is older than this release (`conduit migrate` has not run);
    the log says why a check failed, once per interval. Replicas are reported (ok, lagging or
    down) but never fail the check."""
    connected = clients.of(request)
    checks: dict[str, Awaitable[str | None]] = {
        "database": _schema(connected.settings, connected.database)
    }
    if not isinstance(connected.store, kv.Memory):
        checks["redis"] = _store_answers(connected.store)
    answers = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
    failed = {name: ["is unavailable"] for name, answer in answers.items() if answer is None}
    schema = answers.pop("database")
    if schema is Schema.OLDER:
        failed["schema"] = ["is older than this release: run conduit migrate"]
    if failed:
        return error_response(status.HTTP_503_SERVICE_UNAVAILABLE, failed, _RETRY_AFTER)
    report: dict[str, object] = {"database": "ok", "schema": schema, **answers}
    if connected.replicas is not None:
        # Reported, never failed on: without replicas, reads go to the primary.
        report["replicas"] = connected.replicas.states()
    return JSONResponse({"status": "ok", "checks": report})


_RETRY_AFTER = MappingProxyType({"Retry-After": "5"})


class _BearerRequired(Unauthorized):
    headers = MappingProxyType({"WWW-Authenticate": "Bearer"})


def _authorize(settings: Settings, request: Request) -> None:
    token = settings.metrics.token
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), expected):
        raise _BearerRequired("token", "is missing or invalid")


class _Scraped(Protocol):
    """What a scrape reads of its app's clients: the serving app's (`conduit.clients.Clients`),
    or the metrics port's (`_MetricsPort`)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def database(self) -> Database: ...


@dataclass(frozen=True, slots=True)
class _MetricsPort:
    """The metrics port's clients: the database alone, whose job queue a scrape reports."""

    settings: Settings
    database: Database


@metrics_router.get("/metrics")
async def scrape(request: Request) -> Response:
    """Every process's samples, and the job queue read from the database (omitted while it
    does not answer: the rest of the scrape still does)."""
    connected: _Scraped = request.app.state.clients
    _authorize(connected.settings, request)
    queue = await backlog.read(connected.settings, connected.database)
    scraped = (
        ()
        if queue is None
        else (
            metrics.jobs_by_status(queue.counts),
            metrics.oldest_queued_age(queue.oldest_wait_seconds),
        )
    )
    body = await asyncio.to_thread(metrics.render, *scraped)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def metrics_app(settings: Settings) -> FastAPI:
    """`GET /metrics` alone, for `CONDUIT_METRICS_PORT`: the route the serving port has, so that
    a scrape reports the same (the queue's depth read from the database included), with the
    database the only client it connects."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with database.connect(settings.database) as connected:
            app.state.clients = _MetricsPort(settings, connected)
            yield

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    register_error_handlers(app)
    app.include_router(metrics_router)
    return app
