"""Jobs on the backend of the database under test: PgQueuer on PostgreSQL, the embedded worker
on SQLite. Both are driven by `run_jobs`, as their workers drive them."""

import asyncio
import dataclasses
import hashlib
import logging
import uuid
from collections import Counter
from datetime import timedelta

import anyio
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from conduit.api_keys.models import ApiKey
from conduit.api_keys.tasks import REVOKED_KEPT
from conduit.api_keys.tasks import purge as purge_keys
from conduit.auth.models import AuthSession, PasswordResetToken, RefreshToken, User
from conduit.auth.password_reset import send_token
from conduit.auth.tasks import purge, send_welcome
from conduit.config import LogFormat, Settings, SmtpSettings
from conduit.database import NotGiven, transaction, utcnow
from conduit.jobs import Arguments, Job, JobContext, enqueue, task
from conduit.jobs.admin import discard, listing, retry
from conduit.jobs.core import InvalidJob, UnknownTask, run
from conduit.jobs.outbox import Status
from conduit.logs import Formatter
from conduit.mail import Mailer, SentEmail
from tests.app_clients import clients_of
from tests.background import run_jobs
from tests.factories import auth, create_api_key, oauth_tokens, register
from tests.smtp import Mailbox

pytestmark = pytest.mark.anyio


class Note(Arguments):
    text: str


# What the test tasks below did, by the text they were given.
ran: Counter[str] = Counter()


@task("tests.note", Note)
async def note(_: JobContext, __: Job, arguments: Note) -> None:
    ran[arguments.text] += 1


@task("tests.poison", Note)
async def poison(_: JobContext, __: Job, arguments: Note) -> None:
    ran[arguments.text] += 1
    raise RuntimeError("this job always fails")


@task("tests.slow_poison", Note)
async def slow_poison(_: JobContext, __: Job, arguments: Note) -> None:
    """Fails after its worker has decided how long to wait for more work."""
    ran[arguments.text] += 1
    await asyncio.sleep(0.2)
    raise RuntimeError("this job always fails, slowly")


TEST_TASKS = {note.name: note, poison.name: poison, slow_poison.name: slow_poison}


@pytest.fixture(autouse=True)
def forget() -> None:
    ran.clear()


async def _enqueue(app: FastAPI, *jobs: tuple[str, str]) -> None:
    """Enqueue tasks (by name, with their text) in one committed unit of work."""
    background = clients_of(app).jobs
    async with background.context.unit_of_work() as session:
        for name, text in jobs:
            await enqueue(session, TEST_TASKS[name], Note(text=text))


async def test_a_retry_runs_when_it_is_due_not_when_the_worker_next_looks(
    app: FastAPI, settings: Settings, committing_client: AsyncClient
) -> None:
    """With a heartbeat of 30 s, PgQueuer's worker once waited that long before each retry of a
    run that failed after it had last looked for work."""
    del committing_client  # empties the tables afterwards
    jobs = settings.jobs.model_copy(
        update={
            "heartbeat_timeout_seconds": 30,
            "retry_base_seconds": 0.1,
            "retry_max_seconds": 0.2,
        }
    )
    await _enqueue(app, ("tests.slow_poison", "slow"))

    with anyio.fail_after(20):
        await run_jobs(app, TEST_TASKS, settings=settings.model_copy(update={"jobs": jobs}))

    assert ran["slow"] == settings.jobs.max_attempts


async def test_a_committed_unit_of_work_runs_its_jobs_once(
    app: FastAPI, committing_client: AsyncClient
) -> None:
    del committing_client  # empties the tables afterwards
    await _enqueue(app, ("tests.note", "one"), ("tests.note", "two"))

    await run_jobs(app, TEST_TASKS)
    await run_jobs(app, TEST_TASKS)

    assert ran == {"one": 1, "two": 1}


async def test_a_rolled_back_unit_of_work_enqueues_nothing(
    app: FastAPI, committing_client: AsyncClient
) -> None:
    del committing_client
    background = clients_of(app).jobs

    class Refused(Exception):
        pass

    async def enqueue_then_fail() -> None:
        async with background.context.unit_of_work() as session:
            await enqueue(session, note, Note(text="never"))
            raise Refused

    with pytest.raises(Refused):
        await enqueue_then_fail()
    await run_jobs(app, TEST_TASKS)

    assert ran == {}


async def test_a_job_that_always_fails_is_held_after_its_attempts_and_others_still_run(
    app: FastAPI, settings: Settings, committing_client: AsyncClient
) -> None:
    del committing_client
    database = clients_of(app).database
    await _enqueue(app, ("tests.note", "before"), ("tests.poison", "poison"))
    await _enqueue(app, ("tests.note", "after"))

    await run_jobs(app, TEST_TASKS)

    assert ran == {"before": 1, "after": 1, "poison": settings.jobs.max_attempts}
    held = await listing(settings, database, status=Status.FAILED, limit=10)
    assert [(job.task, job.status, job.attempts) for job in held] == [
        ("tests.poison", Status.FAILED, settings.jobs.max_attempts)
    ]

    assert await retry(settings, database, [held[0].id]) == 1
    await run_jobs(app, TEST_TASKS)
    assert ran["poison"] == 2 * settings.jobs.max_attempts

    assert await discard(settings, database, [held[0].id]) == 1
    assert await listing(settings, database, status=None, limit=10) == []


async def test_each_failed_run_is_one_line_with_its_traceback(
    app: FastAPI,
    settings: Settings,
    committing_client: AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ours, naming the task, the job and the attempt, on either backend: PgQueuer's copy of
    the last one is left out, and its other lines (a retry requested) are kept."""
    del committing_client
    await _enqueue(app, ("tests.poison", "poison"))

    with caplog.at_level(logging.INFO):
        await run_jobs(app, TEST_TASKS)
        # Any other failure PgQueuer reports is still logged.
        logging.getLogger("pgqueuer").error("Flush failed", exc_info=ConnectionError())

    assert caplog.records.pop().getMessage() == "Flush failed"
    attempts = settings.jobs.max_attempts
    failed = [record for record in caplog.records if record.exc_info]
    assert len(failed) == attempts
    for attempt, record in enumerate(failed, start=1):
        assert (record.name, record.levelno) == ("conduit.jobs.core", logging.WARNING)
        assert record.getMessage().startswith("job_failed: tests.poison ")
        last = " (the last)" if attempt == attempts else ""
        assert record.getMessage().endswith(f", attempt {attempt}{last}")
        assert record.exc_info is not None
        assert str(record.exc_info[1]) == "this job always fails"
    retries = [record for record in caplog.records if record.name == "pgqueuer"]
    on_pgqueuer = clients_of(app).jobs.embedded is None
    assert len(retries) == (attempts - 1 if on_pgqueuer else 0)
    assert all(record.getMessage().startswith("Retry requested") for record in retries)


async def test_the_welcome_email_is_sent_once_however_often_its_job_runs(
    app: FastAPI, committing_client: AsyncClient, mailbox: Mailbox
) -> None:
    mailbox.clear()
    await register(committing_client, "newcomer")
    await run_jobs(app)

    [welcome] = mailbox.messages
    assert welcome["To"] == "newcomer@example.com"
    assert welcome["Subject"] == "Welcome to Conduit"
    assert "Hello newcomer" in welcome.get_content()

    job_id = uuid.UUID(welcome["Message-ID"].strip("<>").split("@")[0])
    context = clients_of(app).jobs.context
    async with context.database.sessions() as session:
        user_id = await session.scalar(select(User.id).where(User.username == "newcomer"))
    again = Job(id=job_id, task=send_welcome.name, arguments={"user_id": user_id})
    await run(context, {send_welcome.name: send_welcome}, again, attempt=2)

    assert len(mailbox.messages) == 1
    async with context.database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SentEmail)) == 1


@pytest.mark.parametrize("production", [False, True])
async def test_without_an_smtp_server_emails_go_to_the_log_addresses_only_in_development(
    app: FastAPI,
    committing_client: AsyncClient,
    caplog: pytest.LogCaptureFixture,
    production: bool,
) -> None:
    await register(committing_client, "logged")
    context = clients_of(app).jobs.context
    logging_only = dataclasses.replace(
        context, mailer=Mailer(SmtpSettings(), log_contents=not production)
    )
    async with context.database.sessions() as session:
        user_id = await session.scalar(select(User.id).where(User.username == "logged"))
    job = Job(id=uuid.uuid4(), task=send_welcome.name, arguments={"user_id": user_id})

    with caplog.at_level(logging.INFO, logger="conduit.mail"):
        await run(logging_only, {send_welcome.name: send_welcome}, job, attempt=1)

    [record] = [record for record in caplog.records if record.msg.startswith("email_logged")]
    logged = record.__dict__
    assert logged["subject"] == "Welcome to Conduit"
    assert ("Hello logged" in logged.get("body", "")) is not production
    assert ("Hello logged" in record.getMessage()) is not production
    assert ("logged@example.com" in record.getMessage()) is not production
    if production:
        assert "to" not in logged
        assert logged["recipient_digest"] == hashlib.sha256(b"logged@example.com").hexdigest()
    else:
        assert logged["to"] == "logged@example.com"


async def test_an_smtp_server_s_refusal_is_logged_without_the_address(
    app: FastAPI,
    committing_client: AsyncClient,
    mailbox: Mailbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused recipient fails the job, whose line (JSON, as in production) names it by its
    digest, as the server's reply and aiosmtplib's error would not."""
    mailbox.refuse("refused@example.com")
    try:
        await register(committing_client, "refused")
        with caplog.at_level(logging.WARNING):
            await run_jobs(app)
    finally:
        mailbox.refuse()

    lines = [Formatter(LogFormat.JSON).format(record) for record in caplog.records]
    failures = [line for line in lines if "job_failed: auth.welcome_email" in line]
    assert failures
    digest = hashlib.sha256(b"refused@example.com").hexdigest()
    for line in failures:
        assert "NotSent: SMTPRecipientsRefused" in line
        assert f"sha256:{digest}" in line
    assert not [line for line in lines if "refused@example.com" in line]


async def test_a_job_that_is_not_a_known_task_fails(
    app: FastAPI, committing_client: AsyncClient
) -> None:
    del committing_client
    context = clients_of(app).jobs.context
    with pytest.raises(UnknownTask):
        await run(context, {}, Job(uuid.uuid4(), "tests.unknown", {}), attempt=1)


async def test_a_refused_job_is_reported_without_its_values(
    app: FastAPI, committing_client: AsyncClient
) -> None:
    """Its failure is logged: no address it carries goes with it."""
    del committing_client
    context = clients_of(app).jobs.context
    renamed = Job(uuid.uuid4(), send_token.name, {"address": "kept@example.com"})
    with pytest.raises(InvalidJob) as refused:
        await run(context, {send_token.name: send_token}, renamed, attempt=1)
    with pytest.raises(ValidationError) as undecodable:
        Job.decode(b'{"id": "1", "task": "t", "arguments": "kept@example.com"}')

    assert "Field required" in str(refused.value)
    assert "kept@example.com" not in str(refused.value)
    assert "kept@example.com" not in str(undecodable.value)


async def test_a_unit_of_work_opened_without_the_queue_refuses_to_enqueue(app: FastAPI) -> None:
    database = clients_of(app).database
    async with transaction(database.sessions) as session:
        with pytest.raises(NotGiven):
            await enqueue(session, note, Note(text="nowhere"))


async def test_purge_deletes_what_authenticates_nobody_and_keeps_the_rest(
    app: FastAPI, committing_client: AsyncClient, engine: AsyncEngine
) -> None:
    token = await register(committing_client, "purged")
    await oauth_tokens(committing_client, "purged")
    await create_api_key(committing_client, token, scopes=["read"], name="kept")
    await create_api_key(committing_client, token, scopes=["read"], name="expired")
    await create_api_key(committing_client, token, scopes=["read"], name="revoked lately")
    await create_api_key(committing_client, token, scopes=["read"], name="revoked long ago")
    response = await committing_client.post("/api/auth/logout", headers=auth(token))
    assert response.status_code == 204
    sessions = async_sessionmaker(engine)
    now = utcnow()
    async with transaction(sessions) as session:
        await session.execute(update(ApiKey).where(ApiKey.name == "expired").values(expires_at=now))
        await session.execute(
            update(ApiKey)
            .where(ApiKey.name == "revoked lately")
            .values(revoked_at=now - REVOKED_KEPT + timedelta(minutes=1))
        )
        await session.execute(
            update(ApiKey)
            .where(ApiKey.name == "revoked long ago")
            .values(revoked_at=now - REVOKED_KEPT)
        )
        user_id = await session.scalar(select(User.id))
        session.add(
            PasswordResetToken(
                user_id=user_id,
                token_hash="0" * 64,
                job_id=uuid.uuid4(),
                expires_at=now - timedelta(seconds=1),
            )
        )

    context = clients_of(app).jobs.context
    await run(context, {purge.name: purge}, Job(uuid.uuid4(), purge.name, {}), attempt=1)
    await run(
        context, {purge_keys.name: purge_keys}, Job(uuid.uuid4(), purge_keys.name, {}), attempt=1
    )

    async with sessions() as session:
        # The RealWorld session ended (logout); the OAuth one lives on, with its refresh token.
        assert await session.scalar(select(func.count()).select_from(AuthSession)) == 1
        assert await session.scalar(select(func.count()).select_from(RefreshToken)) == 1
        kept = await session.scalars(select(ApiKey.name).order_by(ApiKey.id))
        assert list(kept) == ["kept", "revoked lately"]
        assert await session.scalar(select(func.count()).select_from(PasswordResetToken)) == 0
