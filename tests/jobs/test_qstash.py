"""The QStash backend in the app: what `POST /jobs/qstash` accepts (signatures made as QStash
makes them, by `tests.qstash_server.sign`), what it runs, and what a failure answers."""

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from conduit.auth.models import User
from conduit.auth.tasks import send_welcome
from conduit.config import JobsBackend, QStashSettings, Settings
from conduit.database import transaction, utcnow
from conduit.jobs import Job, JobContext, Task, outbox
from conduit.jobs import qstash as qstash_jobs
from conduit.jobs.core import run
from conduit.jobs.outbox import LEASE_MARGIN_SECONDS, JobRecord, QStashDelivery, Status
from conduit.main import create_app
from tests import qstash_server
from tests.app_clients import clients_of
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
    client: AsyncClient,
    body: bytes,
    signature: str | None,
    *,
    message_id: str | None = None,
    retried: int = 0,
) -> int:
    headers = {
        "Content-Type": "application/json",
        "Upstash-Message-Id": message_id or f"msg_{secrets.token_urlsafe(24)}",
        "Upstash-Retried": str(retried),
    }
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
    message_id = "msg_failing"

    # `Upstash-Retried` is not signed: what counts is the row's own count of deliveries.
    for _ in range(settings.jobs.max_attempts - 1):
        signature = qstash_server.sign(CURRENT_KEY, CALLBACK, body)
        assert (
            await _deliver(qstash_client, body, signature, message_id=message_id, retried=99) == 503
        )
        assert await _status(engine, job.id) == Status.PUBLISHED
    signature = qstash_server.sign(CURRENT_KEY, CALLBACK, body)
    assert await _deliver(qstash_client, body, signature, message_id=message_id) == 503
    assert await _status(engine, job.id) == Status.FAILED


async def _status(engine: AsyncEngine, job_id: uuid.UUID) -> Status | None:
    async with async_sessionmaker(engine)() as session:
        return await session.scalar(select(JobRecord.status).where(JobRecord.id == job_id))


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    """The ids of the jobs the endpoint runs, in order."""
    ran: list[uuid.UUID] = []
    real_run = run

    async def counting(
        context: JobContext, tasks: Mapping[str, Task[Any]], job: Job, *, attempt: int
    ) -> None:
        ran.append(job.id)
        await real_run(context, tasks, job, attempt=attempt)

    monkeypatch.setattr(qstash_jobs, "run", counting)
    return ran


async def test_a_replayed_delivery_answers_204_without_running_again(
    qstash_client: AsyncClient, engine: AsyncEngine, mailbox: Mailbox, runs: list[uuid.UUID]
) -> None:
    body = await _welcome_job(qstash_client, engine, "replayed")
    mailbox.clear()
    signature = qstash_server.sign(CURRENT_KEY, CALLBACK, body)

    statuses = [
        await _deliver(qstash_client, body, signature, message_id="msg_captured"),
        # The very same request, captured and sent again.
        await _deliver(qstash_client, body, signature, message_id="msg_captured"),
        # The same signature under another message id (the header is not signed).
        await _deliver(qstash_client, body, signature, message_id="msg_rewritten"),
        # The same message signed anew, as QStash would redeliver it.
        await _deliver(
            qstash_client,
            body,
            qstash_server.sign(CURRENT_KEY, CALLBACK, body),
            message_id="msg_captured",
        ),
    ]

    assert statuses == [204, 204, 204, 204]
    assert runs == [Job.decode(body).id]
    assert len(mailbox.messages) == 1


async def test_concurrent_duplicate_deliveries_run_the_job_once(
    qstash_client: AsyncClient, engine: AsyncEngine, mailbox: Mailbox
) -> None:
    body = await _welcome_job(qstash_client, engine, "duplicated")
    mailbox.clear()
    signature = qstash_server.sign(CURRENT_KEY, CALLBACK, body)

    statuses = await asyncio.gather(
        *(_deliver(qstash_client, body, signature, message_id="msg_duplicate") for _ in range(8))
    )

    # One ran it; the others found it running (409, which QStash would retry) or done (204).
    assert statuses.count(204) >= 1
    assert set(statuses) <= {204, 409}
    assert len(mailbox.messages) == 1
    async with async_sessionmaker(engine)() as session:
        recorded = await session.scalars(
            select(QStashDelivery.message_id).order_by(QStashDelivery.message_id)
        )
        assert [key.split(":")[0] for key in recorded] == ["jti", "message"]
    # A later duplicate is answered as done.
    assert await _deliver(qstash_client, body, signature, message_id="msg_duplicate") == 204


async def test_a_claim_whose_delivery_died_is_taken_over_after_its_lease(
    qstash_client: AsyncClient, engine: AsyncEngine, mailbox: Mailbox, settings: Settings
) -> None:
    body = await _welcome_job(qstash_client, engine, "orphaned")
    mailbox.clear()
    job_id = Job.decode(body).id
    lease = timedelta(seconds=settings.jobs.timeout_seconds + LEASE_MARGIN_SECONDS)
    async with transaction(async_sessionmaker(engine)) as session:
        session.add(QStashDelivery(message_id=f"running:{job_id}", delivered_at=utcnow()))

    running = await _deliver(
        qstash_client, body, qstash_server.sign(CURRENT_KEY, CALLBACK, body), message_id="msg_a"
    )
    async with transaction(async_sessionmaker(engine)) as session:
        await session.execute(
            update(QStashDelivery).values(delivered_at=utcnow() - lease - timedelta(seconds=1))
        )
    retried = await _deliver(
        qstash_client, body, qstash_server.sign(CURRENT_KEY, CALLBACK, body), message_id="msg_a"
    )

    assert (running, retried) == (409, 204)
    assert len(mailbox.messages) == 1


async def test_a_delivery_is_remembered_for_a_week(
    qstash_app: FastAPI, committing_client: AsyncClient, engine: AsyncEngine
) -> None:
    del committing_client
    now = utcnow()
    async with transaction(async_sessionmaker(engine)) as session:
        session.add_all(
            [
                QStashDelivery(message_id="message:old", delivered_at=now - timedelta(days=8)),
                QStashDelivery(message_id="message:recent", delivered_at=now - timedelta(days=6)),
            ]
        )

    context = clients_of(qstash_app).jobs.context
    purge = outbox.purge_qstash_deliveries
    await run(context, {purge.name: purge}, Job(uuid.uuid4(), purge.name, {}), attempt=1)

    async with async_sessionmaker(engine)() as session:
        kept = list(await session.scalars(select(QStashDelivery.message_id)))
    assert kept == ["message:recent"]


async def test_a_delivery_without_a_message_id_is_refused(
    qstash_client: AsyncClient, engine: AsyncEngine, mailbox: Mailbox
) -> None:
    body = await _welcome_job(qstash_client, engine, "anonymous")
    mailbox.clear()
    response = await qstash_client.post(
        "/jobs/qstash",
        content=body,
        headers={
            "Content-Type": "application/json",
            "Upstash-Signature": qstash_server.sign(CURRENT_KEY, CALLBACK, body),
        },
    )

    assert response.status_code == 422
    assert mailbox.messages == []
