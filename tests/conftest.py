"""Fixtures: one database per test run, migrated once; each test inside a transaction that is
rolled back at the end.

The database is PostgreSQL when TEST_DATABASE_URL is set (a fresh database is created on that
server and dropped afterwards) and SQLite in a temporary directory otherwise. Shared state (rate
limits, the cache) lives in the Redis at TEST_REDIS_URL when it is set, under a key prefix of
this run's own, and in process memory otherwise; each test starts with limits and a cache of its
own.
"""

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from argon2 import PasswordHasher as Argon2Hasher
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr
from sqlalchemy import delete, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker

from conduit import cache, migrations
from conduit.articles.models import ArticleTotal
from conduit.auth import passwords
from conduit.config import (
    AuthSettings,
    DatabaseSettings,
    JobsSettings,
    RedisSettings,
    Settings,
    SmtpSettings,
)
from conduit.database import Base, Database, create_engine, transaction
from conduit.main import create_app
from conduit.ratelimit.limiter import RateLimiter
from conduit.ratelimit.policies import Policies
from tests import upstash_rest
from tests.app_clients import clients_of
from tests.databases import create_postgres_database, drop_postgres_database
from tests.readers import driver_reader
from tests.redis_keys import STORE_TIMEOUT_SECONDS, delete_keys
from tests.smtp import Mailbox, receiving
from tests.statements import RecordingReader, StatementRecorder

TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256"
# The key that signed before TEST_SECRET: still accepted, as after a rotation.
PREVIOUS_TEST_SECRET = "previous-test-secret-key-also-long-enough"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashes() -> Iterator[None]:
    """Signing users up and in is setting the scene of most tests, not what is under test:
    argon2id at OWASP's parameters (35 ms of CPU a hash) was a tenth of the in-process tests'
    CPU. The same algorithm at its lowest cost; `tests/auth/test_passwords.py` checks the real
    parameters, and the end-to-end tests' servers use them."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "_hasher", Argon2Hasher(time_cost=1, memory_cost=8, parallelism=1))
        yield


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    server_url = os.environ.get("TEST_DATABASE_URL")
    if server_url is None:
        path: Path = tmp_path_factory.mktemp("db") / "conduit.db"
        yield f"sqlite+aiosqlite:///{path}"
        return
    url = await create_postgres_database(server_url)
    try:
        yield url
    finally:
        await drop_postgres_database(server_url, url)


@pytest.fixture(scope="session")
async def redis_settings() -> AsyncIterator[RedisSettings]:
    url = os.environ.get("TEST_REDIS_URL")
    settings = RedisSettings(
        url=url,
        key_prefix=f"conduit-test-{uuid.uuid4().hex[:12]}",
        timeout_seconds=STORE_TIMEOUT_SECONDS,
    )
    yield settings
    if url is not None:
        await delete_keys(url, f"{settings.key_prefix}:*")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """TEST_REDIS_URL; a test that needs it is skipped without it."""
    url = os.environ.get("TEST_REDIS_URL")
    if url is None:
        pytest.skip("TEST_REDIS_URL is not set (CI sets it)")
    return url


@pytest.fixture(scope="session")
def upstash_endpoint(redis_url: str) -> Iterator[upstash_rest.Endpoint]:
    """Upstash's REST protocol in front of that Redis (`tests.upstash_rest`)."""
    token = secrets.token_urlsafe(16)
    with upstash_rest.serving(redis_url, token) as url:
        yield upstash_rest.Endpoint(url, token)


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A port that accepts connections and never answers: a server hung, or a network dropping
    packets."""
    connections: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in connections:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    """The SMTP server the app sends to."""
    with receiving() as mailbox:
        yield mailbox


@pytest.fixture(scope="session")
def settings(database_url: str, redis_settings: RedisSettings, mailbox: Mailbox) -> Settings:
    return Settings(
        # Production's statement and pool timeouts are met on a loaded machine by the tests
        # that crowd the database (tests/test_concurrency.py), whose subject is what commits;
        # tests/test_faults.py sets its own to test them.
        database=DatabaseSettings(
            url=database_url, statement_timeout_seconds=60, pool_timeout_seconds=60
        ),
        auth=AuthSettings(
            secret_key=SecretStr(TEST_SECRET),
            previous_secret_keys=[SecretStr(PREVIOUS_TEST_SECRET)],
        ),
        redis=redis_settings,
        # Jobs run when a test says (`tests.background.run_jobs`), never in another's
        # background; a failing one is retried at once. The queue is read when a test says
        # (`conduit.jobs.backlog.check`): the app's own check would not come within a run.
        jobs=JobsSettings(
            run_in_api=False,
            max_attempts=3,
            retry_base_seconds=0.01,
            retry_max_seconds=0.02,
            wait_check_seconds=86_400,
        ),
        smtp=SmtpSettings(host=mailbox.host, port=mailbox.port, starttls=False),
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.database)
    await migrations.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def app(settings: Settings, engine: AsyncEngine) -> AsyncIterator[FastAPI]:
    del engine  # requested so that the schema exists before the app starts
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def app_with_cors(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app as a browser front end on another origin uses it."""
    http = settings.http.model_copy(update={"cors_origins": ["https://app.example"]})
    app = create_app(settings.model_copy(update={"http": http}))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(autouse=True)
def fresh_shared_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Rate limits that start from zero and a cache of the test's own, in the app's store under
    keys of their own: no test is limited by another's requests or served entries built from
    another's rolled-back writes. A test that does not start the app is left alone."""
    if "app" not in request.fixturenames:
        yield
        return
    app: FastAPI = request.getfixturevalue("app")
    settings: Settings = request.getfixturevalue("settings")
    prefix = f"{settings.redis.key_prefix}:{uuid.uuid4().hex[:12]}"
    connected = clients_of(app)
    app.state.clients = replace(
        connected,
        rate_limiter=RateLimiter(
            Policies.from_settings(settings.rate_limit), connected.store, prefix=prefix
        ),
        cache=cache.create(
            settings.cache,
            connected.store,
            prefix=prefix,
            dialect=connected.database.engine.dialect,
        ),
    )
    yield
    app.state.clients = connected


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[StatementRecorder]:
    with StatementRecorder.listening(engine) as recorder:
        yield recorder


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as connection:
        transaction = await connection.begin()
        yield connection
        await transaction.rollback()


@pytest.fixture
async def client(
    app: FastAPI, connection: AsyncConnection, statements: StatementRecorder
) -> AsyncIterator[AsyncClient]:
    """A client whose writes each commit to a savepoint of the test's transaction, and whose
    reads run on the same connection's driver (so they see those writes), recorded in
    `statements` with everything else."""
    connected = clients_of(app)
    joined = async_sessionmaker(
        connection,
        expire_on_commit=False,
        autoflush=False,
        join_transaction_mode="create_savepoint",
    )
    reader = RecordingReader(await driver_reader(connection), statements)
    database = Database(engine=connected.database.engine, sessions=joined, reader=reader)
    app.state.clients = replace(connected, database=database)
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
            yield client
    finally:
        app.state.clients = replace(clients_of(app), database=connected.database)


@pytest.fixture
async def committing_client(app: FastAPI, engine: AsyncEngine) -> AsyncIterator[AsyncClient]:
    """A client whose requests really commit, for tests of concurrent requests and of the jobs
    they enqueue; every table is emptied afterwards (and the article total set back to zero)."""
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
        yield client
    async with transaction(async_sessionmaker(engine)) as session:
        for table in reversed(Base.metadata.sorted_tables):
            if table is not ArticleTotal.__table__:
                await session.execute(delete(table))
        await session.execute(update(ArticleTotal).values(count=0))
        if engine.dialect.name == "postgresql":
            await session.execute(text("TRUNCATE pgqueuer, pgqueuer_log"))


@pytest.fixture
async def empty_engine(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AsyncEngine]:
    """An engine on a database of its own, with no schema yet, on the same backend."""
    if database_url.startswith("sqlite"):
        path = tmp_path_factory.mktemp("migrations") / "empty.db"
        engine = create_engine(DatabaseSettings(url=f"sqlite+aiosqlite:///{path}"))
        yield engine
        await engine.dispose()
        return
    server_url = os.environ["TEST_DATABASE_URL"]
    url = await create_postgres_database(server_url)
    engine = create_engine(DatabaseSettings(url=url))
    try:
        yield engine
    finally:
        await engine.dispose()
        await drop_postgres_database(server_url, url)
