"""No secret reaches a log line or a response, and no token a log line or an error, however a
request fails: the signing keys, the database's and Redis's passwords, the metrics token, QStash's
token and signing keys, the SMTP password and users' passwords; session tokens, OAuth2 access and
refresh tokens, API keys and password-reset tokens.

Every log record is rendered as the app renders it, in JSON and on the console, at DEBUG with the
libraries' records, and the access lines are read from stdout, where the app writes them. What a
refused configuration prints is tested where it is made: `tests/test_operations.py`
(`config.explain`) and `tests/e2e/test_operations.py` (`conduit serve`'s stderr); a real server's
log in `tests/e2e/test_operations.py` and the conformance run.
"""

import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword
from aiosmtpd.smtp import Session as SMTPSession
from fastapi import FastAPI, Request
from httpx import ASGITransport, AsyncClient, Response
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from conduit import clients, logs
from conduit.auth.models import User
from conduit.auth.tasks import send_welcome
from conduit.config import (
    AuthSettings,
    DatabaseSettings,
    JobsBackend,
    LogFormat,
    LogSettings,
    MetricsSettings,
    QStashSettings,
    Rate,
    RateLimitSettings,
    RedisSettings,
    Settings,
    SmtpSettings,
)
from conduit.jobs import Job
from conduit.logs import Formatter
from conduit.main import create_app
from tests import qstash_server
from tests.background import run_jobs
from tests.factories import auth, bearer, create_api_key, create_article
from tests.smtp import Mailbox
from tests.threaded import free_port

pytestmark = pytest.mark.anyio

SIGNING_KEY = "leak-check-signing-key-4f0c9a7e1b2d3c4e5f60"
PREVIOUS_SIGNING_KEY = "leak-check-previous-signing-key-8d7e6f5a4b3c"
DATABASE_PASSWORD = "leak-check-database-password-1a2b3c"
REDIS_PASSWORD = "leak-check-redis-password-4d5e6f"
METRICS_TOKEN = "leak-check-metrics-token-7a8b9c"
QSTASH_TOKEN = "leak-check-qstash-token-0d1e2f"
QSTASH_CURRENT_KEY = "sig_leak_check_current_3a4b5c6d7e8f"
QSTASH_NEXT_KEY = "sig_leak_check_next_9a0b1c2d3e4f"
SMTP_USERNAME = "conduit"
SMTP_PASSWORD = "leak-check-smtp-password-5a6b7c"
PASSWORD = "leak-check-user-password-8d9e0f"
WRONG_PASSWORD = "leak-check-wrong-password-1c2d3e"
SHORT_PASSWORD = "lc-4f5a"
NEW_PASSWORD = "leak-check-new-password-6b7c8d"

SECRETS = (
    SIGNING_KEY,
    PREVIOUS_SIGNING_KEY,
    DATABASE_PASSWORD,
    REDIS_PASSWORD,
    METRICS_TOKEN,
    QSTASH_TOKEN,
    QSTASH_CURRENT_KEY,
    QSTASH_NEXT_KEY,
    SMTP_PASSWORD,
    PASSWORD,
    WRONG_PASSWORD,
    SHORT_PASSWORD,
    NEW_PASSWORD,
)

QSTASH_CALLBACK = "http://test/jobs/qstash"


class RenderedRecords(logging.Handler):
    """Every record that reaches the root logger, as each of the app's formats renders it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.formatters = (Formatter(LogFormat.JSON), Formatter(LogFormat.CONSOLE))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # The test's SMTP server stands for a remote one: its record of what it received (the
        # emails, tokens in them) is not Conduit's.
        if record.name.startswith("mail.log"):
            return
        self.lines.extend(formatter.format(record) for formatter in self.formatters)


@dataclass
class Watch:
    """What the app wrote (log records, stdout, stderr) and every response it gave."""

    records: RenderedRecords
    capsys: pytest.CaptureFixture[str]
    responses: list[Response] = field(default_factory=list)

    async def _keep(self, response: Response) -> None:
        await response.aread()
        self.responses.append(response)

    def client(self, app: FastAPI) -> AsyncClient:
        return AsyncClient(
            transport=ASGITransport(app=app),
            base_url="http://test",
            event_hooks={"response": [self._keep]},
        )

    def assert_nothing_leaked(self, tokens: Iterable[str]) -> str:
        """No secret in anything written or answered, no token in anything written or in an
        error; what was written, for the test to check that it saw the app's lines."""
        captured = self.capsys.readouterr()
        written = "\n".join([*self.records.lines, captured.out, captured.err])
        tokens = list(tokens)
        assert all(tokens), "a token the test meant to look for is empty"
        leaked = [value for value in (*SECRETS, *tokens) if value in written]
        assert leaked == [], f"written: {leaked}"
        for response in self.responses:
            answered = "\n".join(
                [response.text, *(f"{name}: {value}" for name, value in response.headers.items())]
            )
            kept = (*SECRETS, *tokens) if response.is_error else SECRETS
            leaked = [value for value in kept if value in answered]
            assert leaked == [], f"{response.request.method} {response.request.url}: {leaked}"
        return written


@pytest.fixture
def watch(capsys: pytest.CaptureFixture[str]) -> Iterator[Watch]:
    root = logging.getLogger()
    records, level = RenderedRecords(), root.level
    root.addHandler(records)
    root.setLevel(logging.DEBUG)
    try:
        yield Watch(records, capsys)
    finally:
        root.removeHandler(records)
        root.setLevel(level)


@dataclass
class SmtpLogins:
    """An SMTP server's authenticator that takes Conduit's configured credentials only."""

    accepted: int = 0

    def __call__(
        self, _: SMTP, __: SMTPSession, ___: Envelope, ____: str, credentials: object
    ) -> AuthResult:
        valid = credentials == LoginPassword(SMTP_USERNAME.encode(), SMTP_PASSWORD.encode())
        self.accepted += valid
        return AuthResult(success=valid)


@dataclass(frozen=True)
class MailServer:
    mailbox: Mailbox
    logins: SmtpLogins


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    """An SMTP server that asks for a password, over plain TCP on loopback."""
    server = MailServer(Mailbox(port=free_port()), SmtpLogins())
    controller = Controller(
        server.mailbox,
        hostname=server.mailbox.host,
        port=server.mailbox.port,
        authenticator=server.logins,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


@contextlib.asynccontextmanager
async def _running(configured: Settings, *, restore: Settings) -> AsyncIterator[FastAPI]:
    """The app of `configured`, started; afterwards the access log is configured as `restore`
    (the session's app) has it."""
    app = create_app(configured)
    try:
        async with app.router.lifespan_context(app):
            yield app
    finally:
        logs.configure_access(restore)


def _with_secrets(settings: Settings) -> Settings:
    """`settings` with every secret Conduit is given set, and everything logged."""
    return settings.model_copy(
        update={
            "auth": AuthSettings(
                secret_key=SecretStr(SIGNING_KEY),
                previous_secret_keys=[SecretStr(PREVIOUS_SIGNING_KEY)],
            ),
            "metrics": MetricsSettings(token=SecretStr(METRICS_TOKEN)),
            "redis": settings.redis.model_copy(
                update={"key_prefix": f"{settings.redis.key_prefix}:{uuid.uuid4().hex[:12]}"}
            ),
            "log": LogSettings(format=LogFormat.JSON, level="DEBUG"),
        }
    )


async def _fail_holding_the_key(request: Request) -> None:
    """Fails with the signing key in a local variable, which a traceback that shows each frame's
    locals would print."""
    key = clients.of(request).settings.auth.secret_key.get_secret_value()
    raise RuntimeError(f"failed holding a key of {len(key)} bytes")


@pytest.fixture
async def conduit(
    settings: Settings,
    engine: AsyncEngine,
    committing_client: AsyncClient,
    mail_server: MailServer,
    watch: Watch,
) -> AsyncIterator[FastAPI]:
    """The app with every secret set, sending email through a server that asks for the SMTP
    password, with an endpoint that fails while it holds the signing key; its writes commit
    (the tables are emptied afterwards, as `committing_client`'s are)."""
    del engine, committing_client, watch
    configured = _with_secrets(settings).model_copy(
        update={
            "smtp": SmtpSettings(
                host=mail_server.mailbox.host,
                port=mail_server.mailbox.port,
                username=SMTP_USERNAME,
                password=SecretStr(SMTP_PASSWORD),
                starttls=False,
            ),
            "rate_limit": RateLimitSettings(
                sign_in=Rate(quota=1000, window_seconds=60),
                failed_sign_ins=Rate(quota=3, window_seconds=900),
            ),
        }
    )
    async with _running(configured, restore=settings) as app:
        app.add_api_route("/api/fail", _fail_holding_the_key)
        yield app


def _expect(response: Response, status: int) -> Response:
    assert response.status_code == status, response.text
    return response


def _new_user(username: str, password: str, email: str | None = None) -> dict[str, object]:
    email = email or f"{username}@example.com"
    return {"user": {"username": username, "email": email, "password": password}}


def _login(username: str, password: str) -> dict[str, object]:
    return {"user": {"email": f"{username}@example.com", "password": password}}


async def test_sign_in_and_every_way_it_fails(conduit: FastAPI, watch: Watch) -> None:
    async with watch.client(conduit) as client:
        created = _expect(await client.post("/api/users", json=_new_user("keeper", PASSWORD)), 201)
        token = created.json()["user"]["token"]
        _expect(await client.post("/api/users", json=_new_user("keeper", PASSWORD)), 409)
        _expect(await client.post("/api/users", json=_new_user("x", PASSWORD, SIGNING_KEY)), 422)
        _expect(await client.post("/api/users", json=_new_user("short", SHORT_PASSWORD)), 422)
        _expect(await client.post("/api/users/login", json=_login("keeper", WRONG_PASSWORD)), 401)
        _expect(await client.post("/api/users/login", json=_login("keeper", PASSWORD)), 200)

        other = _expect(await client.post("/api/users", json=_new_user("other", PASSWORD)), 201)
        other_token = other.json()["user"]["token"]
        for _ in range(3):
            wrong = _login("other", WRONG_PASSWORD)
            _expect(await client.post("/api/users/login", json=wrong), 401)
        _expect(await client.post("/api/users/login", json=_login("other", PASSWORD)), 429)

        form = {"username": "keeper", "password": PASSWORD}
        issued = _expect(await client.post("/api/auth/token", data=form), 200).json()
        form = {"username": "keeper", "password": WRONG_PASSWORD}
        _expect(await client.post("/api/auth/token", data=form), 400)
        refresh = {"refresh_token": issued["refresh_token"]}
        renewed = _expect(await client.post("/api/auth/refresh", json=refresh), 200).json()
        _expect(await client.post("/api/auth/logout", headers=bearer(renewed["access_token"])), 204)
        _expect(await client.post("/api/auth/refresh", json=refresh), 401)
        _expect(await client.post("/api/auth/refresh", json={"refresh_token": SIGNING_KEY}), 401)

        _expect(await client.get("/api/user", headers=auth(SIGNING_KEY)), 401)
        _expect(await client.get("/api/user", headers=bearer(renewed["access_token"] + "x")), 401)
        article = {"article": {"title": "Kept", "description": "d", "body": "b"}}
        slug = (await create_article(client, token))["slug"]
        _expect(
            await client.put(f"/api/articles/{slug}", json=article, headers=auth(other_token)), 403
        )
        _expect(await client.get("/api/articles/no-such-article", headers=auth(token)), 404)
        changed = {"user": {"password": NEW_PASSWORD}}
        _expect(await client.put("/api/user", json=changed, headers=auth(token)), 200)

    written = watch.assert_nothing_leaked(
        [
            token,
            other_token,
            issued["access_token"],
            issued["refresh_token"],
            renewed["access_token"],
            renewed["refresh_token"],
        ]
    )
    assert "POST /api/users/login 429" in written


async def test_api_keys(conduit: FastAPI, watch: Watch) -> None:
    async with watch.client(conduit) as client:
        created = _expect(await client.post("/api/users", json=_new_user("machine", PASSWORD)), 201)
        token = created.json()["user"]["token"]
        key = (await create_api_key(client, token, scopes=["read"]))["key"]
        _expect(await client.get("/api/user", headers={"X-API-Key": key}), 200)
        article = {"article": {"title": "Kept", "description": "d", "body": "b"}}
        _expect(await client.post("/api/articles", json=article, headers={"X-API-Key": key}), 403)
        _expect(await client.get("/api/user", headers={"X-API-Key": f"cdt_{SIGNING_KEY}"}), 401)

    watch.assert_nothing_leaked([token, key])


def _reset_token(mailbox: Mailbox) -> str:
    [message] = [m for m in mailbox.messages if m["Subject"] == "Reset your Conduit password"]
    match = re.search(r"^([A-Za-z0-9_-]{43})\s*$", message.get_content(), re.MULTILINE)
    assert match is not None, message.get_content()
    return match.group(1)


async def test_a_password_reset_by_email(
    conduit: FastAPI, mail_server: MailServer, watch: Watch
) -> None:
    async with watch.client(conduit) as client:
        created = _expect(
            await client.post("/api/users", json=_new_user("forgetful", PASSWORD)), 201
        )
        reset = {"user": {"email": "forgetful@example.com"}}
        _expect(await client.post("/api/users/password-reset", json=reset), 202)
        await run_jobs(conduit)
        reset_token = _reset_token(mail_server.mailbox)
        confirm = "/api/users/password-reset/confirm"
        _expect(
            await client.post(confirm, json={"token": SIGNING_KEY, "password": NEW_PASSWORD}), 422
        )
        _expect(
            await client.post(confirm, json={"token": reset_token, "password": SHORT_PASSWORD}), 422
        )
        _expect(
            await client.post(confirm, json={"token": reset_token, "password": NEW_PASSWORD}), 204
        )
        _expect(await client.post(confirm, json={"token": reset_token, "password": PASSWORD}), 422)
        signed_in = _expect(
            await client.post("/api/users/login", json=_login("forgetful", NEW_PASSWORD)), 200
        )

    assert mail_server.logins.accepted >= 1
    written = watch.assert_nothing_leaked(
        [created.json()["user"]["token"], reset_token, signed_in.json()["user"]["token"]]
    )
    assert "job_done" in written


async def test_metrics_and_an_unexpected_error(conduit: FastAPI, watch: Watch) -> None:
    async with watch.client(conduit) as client:
        _expect(await client.get("/metrics"), 401)
        _expect(await client.get("/metrics", headers=bearer(SIGNING_KEY)), 401)
        _expect(await client.get("/metrics", headers=bearer(METRICS_TOKEN)), 200)
        failed = _expect(await client.get("/api/fail"), 500)

    assert failed.json() == {"errors": {"server": ["internal error"]}}
    written = watch.assert_nothing_leaked([])
    assert "RuntimeError: failed holding a key of" in written


@pytest.fixture
def qstash() -> Iterator[qstash_server.QStash]:
    with qstash_server.serving(QSTASH_TOKEN, QSTASH_CURRENT_KEY, QSTASH_NEXT_KEY) as served:
        yield served


@pytest.fixture
async def qstash_conduit(
    settings: Settings,
    engine: AsyncEngine,
    committing_client: AsyncClient,
    qstash: qstash_server.QStash,
    watch: Watch,
) -> AsyncIterator[FastAPI]:
    """The app with its jobs delivered by QStash."""
    del engine, committing_client, watch
    configured = _with_secrets(settings).model_copy(
        update={
            "qstash": QStashSettings(
                token=SecretStr(QSTASH_TOKEN),
                current_signing_key=SecretStr(QSTASH_CURRENT_KEY),
                next_signing_key=SecretStr(QSTASH_NEXT_KEY),
                url=qstash.url,
            ),
            "jobs": settings.jobs.model_copy(update={"qstash_callback_url": QSTASH_CALLBACK}),
        }
    )
    assert configured.jobs_backend is JobsBackend.QSTASH
    async with _running(configured, restore=settings) as app:
        yield app


async def test_qstash_publishing_and_deliveries(
    qstash_conduit: FastAPI, qstash: qstash_server.QStash, engine: AsyncEngine, watch: Watch
) -> None:
    async with watch.client(qstash_conduit) as client:
        created = _expect(await client.post("/api/users", json=_new_user("queued", PASSWORD)), 201)
        async with async_sessionmaker(engine)() as session:
            user_id = await session.scalar(select(User.id).where(User.username == "queued"))
        body = Job(uuid.uuid4(), send_welcome.name, {"user_id": user_id}).encode()

        async def deliver(signature: str | None, content: bytes = body) -> int:
            headers = {"Content-Type": "application/json", "Upstash-Message-Id": "msg_secrets"}
            if signature is not None:
                headers["Upstash-Signature"] = signature
            response = await client.post("/jobs/qstash", content=content, headers=headers)
            return response.status_code

        assert await deliver(None) == 401
        assert await deliver(QSTASH_CURRENT_KEY) == 401
        assert (
            await deliver(qstash_server.sign("sig_other_" + "c" * 32, QSTASH_CALLBACK, body)) == 401
        )
        not_a_job = b'{"not": "a job"}'
        assert (
            await deliver(
                qstash_server.sign(QSTASH_CURRENT_KEY, QSTASH_CALLBACK, not_a_job), not_a_job
            )
            == 422
        )
        assert await deliver(qstash_server.sign(QSTASH_NEXT_KEY, QSTASH_CALLBACK, body)) == 204

    assert qstash.published
    watch.assert_nothing_leaked([created.json()["user"]["token"]])


async def test_an_unreachable_database_and_redis(settings: Settings, watch: Watch) -> None:
    configured = _with_secrets(settings).model_copy(
        update={
            "database": DatabaseSettings(
                url=f"postgresql://conduit:{DATABASE_PASSWORD}@127.0.0.1:{free_port()}/conduit"
            ),
            "redis": RedisSettings(url=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0"),
        }
    )
    async with _running(configured, restore=settings) as app, watch.client(app) as client:
        ready = _expect(await client.get("/health/ready"), 503)
        _expect(await client.post("/api/users/login", json=_login("keeper", PASSWORD)), 503)
        _expect(await client.get("/api/articles"), 503)

    assert set(ready.json()["errors"]) == {"database", "redis"}
    written = watch.assert_nothing_leaked([])
    assert "database_unavailable" in written
    assert "shared_store_unavailable" in written
