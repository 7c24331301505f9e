"""The QStash backend in the app: what `POST /jobs/qstash` accepts (signatures made as QStash
makes them, by `tests.qstash_server.sign`), what it runs, and what a failure answers."""

import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from conduit.auth.models import User
from conduit.auth.tasks import send_welcome
from conduit.config import JobsBackend, QStashSettings, Settings
from conduit.database import transaction, utcnow
from conduit.jobs import Job
from conduit.jobs.outbox import JobRecord, Status
from conduit.main import create_app
from tests import qstash_server
from tests.factories import register
from tests.smtp import Mailbox

pytestmark = pytest.mark.anyio

CALLBACK = "http://test/jobs/qstash"
CURRENT_KEY = "sig_current_" + "a" * 32
NEXT_KEY = "sig_next_" + "b" * 32


@pytest.fixture
def qstash() -> Iterator[qstash_server.QStash]:
    with qstash_server.serving(secrets.token_urlsafe(16), CURRENT_KEY, NEXT_KEY) as served:
        yield served


@pytest.fixture
async def qstash_app(
    settings: Settings, engine: AsyncEngine, qstash: qstash_server.QStash
) -> AsyncIterator[FastAPI]:
    del engine
    configured = settings.model_copy(
        update={
            "qstash": QStashSettings(
                token=SecretStr(qstash.token),
                current_signing_key=SecretStr(CURRENT_KEY),
                next_signing_key=SecretStr(NEXT_KEY),
                url=qstash.url,
            ),
            "jobs": settings.jobs.model_copy(update={"qstash_callback_url": CALLBACK}),
        }
    )
    assert configured.jobs_backend is JobsBackend.QSTASH
    app = create_app(configured)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def qstash_client(
    qstash_app: FastAPI, committing_client: AsyncClient
) -> AsyncIterator[AsyncClient]:
    """A client of that app whose writes commit (the tables are emptied afterwards, as
    `committing_client`'s are)."""
    del committing_client
    async with AsyncClient(transport=ASGITransport(app=qstash_app), base_url="http://test") as c:
        yield c


async def _welcome_job(client: AsyncClient, engine: AsyncEngine, username: str) -> bytes:
    await register(client, username)
    async with async_sessionmaker(engine)() as session:
        user_id = await session.scalar(select(User.id).where(User.username == username))
    return Job(uuid.uuid4(), send_welcome.name, {"user_id": user_id}).encode()


async def _deliver(
    client: AsyncClient, body: bytes, signature: str | None, *, retried: int = 0
) -> int:
    headers = {"Content-Type": "application/json", "Upstash-Retried": str(retried)}
    if signature is not None:
        headers["Upstash-Signature"] = signature
    response = await client.post("/jobs/qstash", content=body, headers=headers)
    if response.status_code >= 400:
        assert response.json()["errors"], response.text
    return response.status_code


@pytest.mark.parametrize("key", [CURRENT_KEY, NEXT_KEY])
async def test_a_delivery_signed_with_the_current_or_next_key_runs_its_job(
    qstash_client: AsyncClient, engine: AsyncEngine, mailbox: Mailbox, key: str
) -> None:
    body = await _welcome_job(qstash_client, engine, "signed")
    mailbox.clear()

    assert await _deliver(qstash_client, body, qstash_server.sign(key, CALLBACK, body)) == 204

    [message] = mailbox.messages
    assert message["To"] == "signed@example.com"


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda _: None, id="unsigned"),
        pytest.param(lambda _: "not-a-jwt", id="garbage"),
        pytest.param(
            lambda body: qstash_server.sign(CURRENT_KEY, CALLBACK, body + b" "), id="tampered"
        ),
        pytest.param(
            lambda body: qstash_server.sign(
                CURRENT_KEY, CALLBACK, body, now=int(time.time()) - 600
            ),
            id="expired",
        ),
        pytest.param(
            lambda body: qstash_server.sign("sig_other_" + "c" * 32, CALLBACK, body),
            id="wrong-key",
        ),
        pytest.param(
            lambda body: qstash_server.sign(CURRENT_KEY, "http://elsewhere/jobs/qstash", body),
            id="wrong-url",
        ),
    ],
)
async def test_anything_but_qstash_s_signature_of_this_body_is_refused(
    qstash_client: AsyncClient, engine: AsyncEngine, mailbox: Mailbox, forge: object
) -> None:
    body = await _welcome_job(qstash_client, engine, "forged")
    mailbox.clear()
    assert callable(forge)

    assert await _deliver(qstash_client, body, forge(body)) == 401
    assert mailbox.messages == []


async def test_a_signed_body_that_is_not_a_job_is_refused(qstash_client: AsyncClient) -> None:
    body = b'{"not": "a job"}'
    assert (
        await _deliver(qstash_client, body, qstash_server.sign(CURRENT_KEY, CALLBACK, body)) == 422
    )


async def test_a_failing_job_answers_503_and_is_held_after_its_last_attempt(
    qstash_client: AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    job = Job(uuid.uuid4(), send_welcome.name, {"user_id": "not an id"})
    async with transaction(async_sessionmaker(engine)) as session:
        session.add(
            JobRecord(
                id=job.id,
                task=job.task,
                arguments=dict(job.arguments),
                status=Status.PUBLISHED,
                attempts=0,
                run_after=utcnow(),
            )
        )
    body = job.encode()
    signature = qstash_server.sign(CURRENT_KEY, CALLBACK, body)
    last = settings.jobs.max_attempts - 1

    assert await _deliver(qstash_client, body, signature, retried=0) == 503
    assert await _status(engine, job.id) == Status.PUBLISHED
    assert await _deliver(qstash_client, body, signature, retried=last) == 503
    assert await _status(engine, job.id) == Status.FAILED


async def _status(engine: AsyncEngine, job_id: uuid.UUID) -> Status | None:
    async with async_sessionmaker(engine)() as session:
        return await session.scalar(select(JobRecord.status).where(JobRecord.id == job_id))
