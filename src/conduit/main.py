"""The application factory: settings in, a wired FastAPI app out."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from conduit import migrations
from conduit.articles.router import router as articles_router
from conduit.auth.passwords import PasswordHasher
from conduit.auth.router import router as auth_router
from conduit.comments.router import router as comments_router
from conduit.config import Settings
from conduit.database import create_engine, create_sessionmaker
from conduit.errors import register_error_handlers
from conduit.middleware import BodySizeLimitMiddleware
from conduit.profiles.router import router as profiles_router
from conduit.tags.router import router as tags_router

DESCRIPTION = """
The [RealWorld](https://realworld-docs.netlify.app/) "Conduit" API: users, profiles, articles,
comments, tags, favorites and follows.

Authenticate with the token from `POST /api/users/login` (or registration), sent as
`Authorization: Token <jwt>`; `Bearer <jwt>` is accepted too.

Errors always have the shape `{"errors": {"<field>": ["<message>"]}}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database)
        if settings.database.is_sqlite:
            await migrations.upgrade(engine)
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.password_hasher = PasswordHasher(settings.auth.hash_concurrency)
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="Conduit",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.http.max_body_bytes)
    if settings.http.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.http.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    register_error_handlers(app)

    api = APIRouter(prefix="/api")
    for router in (auth_router, profiles_router, articles_router, comments_router, tags_router):
        api.include_router(router)
    app.include_router(api)
    return app
