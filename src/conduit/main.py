"""The application factory: settings in, a wired FastAPI app out."""

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from starlette.middleware import Middleware
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from conduit import clients, docs, kv, logs, metrics, openapi, operations, tracing
from conduit.api_keys.router import router as api_keys_router
from conduit.articles.router import router as articles_router
from conduit.auth.router import router as auth_router
from conduit.comments.router import router as comments_router
from conduit.config import Environment, JobsBackend, Settings
from conduit.edge import Edge, last_resort
from conduit.errors import register_error_handlers
from conduit.fast_reads import FastReads
from conduit.jobs import backlog
from conduit.notifications.router import router as notifications_router
from conduit.profiles.router import router as profiles_router
from conduit.tags.router import router as tags_router

DESCRIPTION = """
The [RealWorld](https://realworld-docs.netlify.app/) "Conduit" API: users, profiles, articles,
comments, tags, favorites and follows.

Three ways to authenticate:

- **RealWorld token**: `POST /api/users/login` (or registration) returns a long-lived `token`;
  send it as `Authorization: Token <token>`.
- **OAuth2 password flow**: `POST /api/auth/token` (form fields `username`, `password`) returns a
  short-lived `access_token` and a `refresh_token`; send `Authorization: Bearer <access_token>`
  and renew with `POST /api/auth/refresh`. The **Authorize** button below uses this flow.
- **API key**: `POST /api/user/api-keys` creates a key scoped `read` and/or `write`; send it as
  `X-API-Key: <key>`.

Errors always have the shape `{"errors": {"<field>": ["<message>"]}}`.

Requests are rate limited per client address, user or API key; every response says where the
caller stands in `RateLimit-Policy` and `RateLimit` headers, and a refusal is a 429 with
`Retry-After`.
"""

logger = logging.getLogger(__name__)

# Allocations between two collections of the youngest generation (CPython's default is 700). A
# request allocates a few thousand objects, nearly all freed by reference counting; at 700 the
# collector ran several times per request and took a third of a cached read's CPU
# (docs/benchmarks.md, issue 9).
GC_YOUNG_THRESHOLD = 10_000


def _tune_garbage_collector() -> None:
    """Once the process's long-lived objects exist (modules, routes, clients), leave them out of
    every later collection (`gc.freeze`), and collect the young generation less often. No
    collection first: at this point it found nothing to free, and took 56 ms of every start."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)


class Conduit(FastAPI):
    """FastAPI behind Conduit's edge (`conduit.edge.Edge`): every HTTP request meets the edge
    before the framework's own middleware, and a cached anonymous read is answered there, by
    the fast path built from the API's routes (`conduit.fast_reads`)."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.api_routes: list[APIRoute] = []

    def include(self, router: APIRouter) -> None:
        """The router's routes as the app's own, matched after those already here; not
        `include_router`, whose routes FastAPI 0.165 builds again on the first request and
        matches through a wrapper on every one (`conduit.api`)."""
        self.router.routes.extend(router.routes)

    def include_api(self, router: APIRouter) -> None:
        """`include` for a domain's router (`conduit.api.router`): its routes are the API's,
        which the fast path and the OpenAPI document's completion take."""
        self.include(router)
        self.api_routes.extend(route for route in router.routes if isinstance(route, APIRoute))

    def build_middleware_stack(self) -> ASGIApp:
        edge = Edge(
            super().build_middleware_stack(),
            settings=self.settings,
            fast_reads=FastReads(self.api_routes),
        )
        trusted = self.settings.http.trusted_proxies
        if not trusted:
            return edge
        # Before the edge, which rate limits and logs the client the proxies name.
        proxied = Middleware(ProxyHeadersMiddleware, trusted_hosts=trusted)
        return proxied.cls(edge, *proxied.args, **proxied.kwargs)


def create_app(settings: Settings | None = None) -> Conduit:
    settings = settings or Settings()
    logs.configure_access(settings)
    tracer_provider = tracing.provider() if tracing.enabled() else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Every client of the process is created here and closed on shutdown, and the job
        queue watched (`conduit.jobs.backlog`)."""
        async with (
            clients.connect(settings, run_embedded_jobs=settings.jobs.run_in_api) as connected,
            backlog.watching(settings, connected.database),
        ):
            if settings.metrics.enabled:
                metrics.observe_pool(connected.database.engine)
            if tracer_provider is not None:
                tracing.instrument_engine(connected.database.engine, tracer_provider)
            store = connected.store
            production = settings.env is Environment.PRODUCTION
            if isinstance(store, kv.Memory) and production:
                logger.warning(
                    "no_shared_store",
                    extra={"detail": "rate limits and the cache are this process's; set REDIS_URL"},
                )
            if settings.smtp.host is None and production:
                logger.warning(
                    "no_smtp_server",
                    extra={"detail": "emails are logged, not sent; set CONDUIT_SMTP_HOST"},
                )
            app.state.clients = connected
            _tune_garbage_collector()
            yield
        metrics.process_exited()
        if tracer_provider is not None:
            tracer_provider.shutdown()

    app = Conduit(
        settings,
        title="Conduit",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's own spans (a request's dependencies, its endpoint) under Conduit's provider
        # when tracing is on; its metrics and logs never: Conduit's are Prometheus' and its
        # own lines. Left to its defaults, FastAPI looked for a configured provider on every
        # request, 3% of a cached read.
        telemetry={"tracing": tracer_provider is not None, "metrics": False, "logs": False},
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        # Served by `conduit.docs`, with their assets.
        docs_url=None,
        redoc_url=None,
    )
    if settings.http.cors_origins:
        # Tokens travel in headers, never cookies, so credentials stay off.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.http.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "PUT", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-None-Match",
                "X-API-Key",
                "X-Request-ID",
            ],
            expose_headers=["ETag", "RateLimit", "RateLimit-Policy", "Retry-After", "X-Request-ID"],
        )
    register_error_handlers(app)
    app.add_exception_handler(Exception, last_resort)
    _include_routes(app, settings)
    if tracer_provider is not None:
        tracing.instrument_app(app, tracer_provider)
    return app


def _include_routes(app: Conduit, settings: Settings) -> None:
    # Matched in this order: the most requested routes first.
    routers = (
        articles_router,
        comments_router,
        tags_router,
        profiles_router,
        auth_router,
        api_keys_router,
        notifications_router,
    )
    for router in routers:
        app.include_api(router)
    openapi.complete(app, app.api_routes)
    app.include(operations.router)
    if settings.metrics_on_serving_port:
        app.include(operations.metrics_router)
    if settings.docs_enabled:
        docs.serve(app, openapi_url="/openapi.json", client_id="conduit-docs")
    if settings.jobs_backend is JobsBackend.QSTASH:
        from conduit.jobs import qstash  # noqa: PLC0415 (the SDK only where QStash is used)

        app.include(qstash.router)
