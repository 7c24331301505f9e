"""Jobs delivered by Upstash QStash, for hosts that run no process of their own between requests
(serverless).

A job is a row of the `jobs` outbox (`conduit.jobs.outbox`), written in its unit of work's
transaction. Once that commits, it is published to QStash with the job's id as deduplication
id; QStash delivers it, signed, to `POST /jobs/qstash`, and retries it while the answer is not
a success. A row whose publication failed (QStash unreachable, the process killed right after
commit) stays queued, and the relay of any API process publishes it again a little later:
QStash's deduplication and the tasks' own idempotence make a second publication harmless.

A delivery whose job ran to success is recorded (`QStashDelivery`) under its
`Upstash-Message-Id` and under its signature's `jti`: the same delivery replayed, with its
headers rewritten or not, is answered 204 and not run again. While a delivery runs a job, it
holds a claim on the job (a row of the same table) and a duplicate is answered 409. The attempt
a delivery is comes from the job's row, which each delivery counts, not from the unsigned
`Upstash-Retried`.
"""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated

import httpx
import jwt
from fastapi import APIRouter, Header, Request, Response, status
from fastapi.responses import JSONResponse
from qstash import AsyncQStash, Receiver
from qstash.errors import QStashError, SignatureError
from sqlalchemy import delete, select, update
from sqlalchemy.exc import SQLAlchemyError

from conduit import clients
from conduit.config import Settings
from conduit.database import Database, insert, transaction, utcnow
from conduit.errors import Conflict, Unauthorized, Unprocessable
from conduit.jobs.core import Job, JobContext, run
from conduit.jobs.outbox import LEASE_MARGIN_SECONDS, JobRecord, QStashDelivery, Status

logger = logging.getLogger(__name__)

# A row still queued this long after its commit was not published by its request.
RELAY_AFTER_SECONDS = 30
RELAY_EVERY_SECONDS = 60.0
RELAY_BATCH = 100
# The longest message id or `jti` remembered (`QStashDelivery.message_id` holds 128 characters
# with a prefix); QStash's are about 50.
_MAX_ID_LENGTH = 100
# Scheduled deliveries carry a fixed id per task.
_SCHEDULE_NAMESPACE = uuid.UUID("6f2d3c9e-5d1f-4e8b-9a57-3c1a2b4d5e6f")


class Publisher:
    def __init__(self, client: AsyncQStash, settings: Settings, database: Database) -> None:
        self._client = client
        self._settings = settings
        self._database = database
        self._callback_url = settings.jobs.qstash_callback_url or ""

    async def publish(self, records: Sequence[JobRecord]) -> None:
        """Hand committed jobs to QStash, and mark those it took."""
        published = []
        for record in records:
            delay = max(0, int((record.run_after - utcnow()).total_seconds()))
            try:
                await self._client.message.publish(
                    url=self._callback_url,
                    body=record.job().encode(),
                    content_type="application/json",
                    deduplication_id=str(record.id),
                    retries=self._settings.jobs.max_attempts - 1,
                    delay=delay or None,
                )
            except (QStashError, httpx.HTTPError) as error:
                logger.warning(
                    "job_publish_failed: %s (queued for the relay): %s",
                    record.id,
                    error,
                    extra={"job_id": str(record.id), "error": str(error)},
                )
                continue
            published.append(record.id)
        if published:
            async with transaction(self._database.sessions) as session:
                await session.execute(
                    update(JobRecord)
                    .where(JobRecord.id.in_(published), JobRecord.status == Status.QUEUED)
                    .values(status=Status.PUBLISHED)
                )

    async def relay_forever(self) -> None:
        while True:
            try:
                await self.relay()
            except SQLAlchemyError as error:
                logger.warning("jobs_relay_failed: %s", error, extra={"error": str(error)})
            await asyncio.sleep(RELAY_EVERY_SECONDS)

    async def relay(self) -> None:
        """Publish the rows their own request did not."""
        cutoff = utcnow() - timedelta(seconds=RELAY_AFTER_SECONDS)
        async with self._database.sessions() as session:
            records = list(
                await session.scalars(
                    select(JobRecord)
                    .where(JobRecord.status == Status.QUEUED, JobRecord.created_at <= cutoff)
                    .order_by(JobRecord.created_at)
                    .limit(RELAY_BATCH)
                )
            )
        await self.publish(records)

    async def schedule(self, schedules: Mapping[str, str]) -> None:
        """Create or update QStash's schedule of each periodic task (its id is the task's)."""
        for name, cron in schedules.items():
            job = Job(id=uuid.uuid5(_SCHEDULE_NAMESPACE, name), task=name, arguments={})
            try:
                await self._client.schedule.create(
                    destination=self._callback_url,
                    cron=cron,
                    body=job.encode(),
                    content_type="application/json",
                    schedule_id=f"conduit-{name}",
                    retries=self._settings.jobs.max_attempts - 1,
                )
            except (QStashError, httpx.HTTPError) as error:
                logger.warning(
                    "job_schedule_failed: %s: %s",
                    name,
                    error,
                    extra={"task": name, "error": str(error)},
                )


@asynccontextmanager
async def client(settings: Settings) -> AsyncIterator[AsyncQStash]:
    token = settings.qstash.token
    qstash = AsyncQStash(token.get_secret_value() if token else "", base_url=settings.qstash.url)
    try:
        yield qstash
    finally:
        # The SDK has no close of its own.
        await qstash.http._client.aclose()


def receiver(settings: Settings) -> Receiver:
    current, next_ = settings.qstash.current_signing_key, settings.qstash.next_signing_key
    return Receiver(
        current_signing_key=current.get_secret_value() if current else "",
        next_signing_key=next_.get_secret_value() if next_ else "",
    )


router = APIRouter()


@router.post("/jobs/qstash", include_in_schema=False, status_code=status.HTTP_204_NO_CONTENT)
async def deliver(
    request: Request,
    upstash_signature: Annotated[str, Header()] = "",
    upstash_message_id: Annotated[str, Header()] = "",
) -> Response:
    """Run a job QStash delivers. Only QStash's signature (current or next key) over this very
    body and URL is accepted, and a delivery already run (by message id or by signature) is
    answered 204 without running again. A failure answers 503, and QStash retries."""
    jobs = clients.of(request).jobs
    context = jobs.context
    body = await request.body()
    try:
        receiver(context.settings).verify(
            signature=upstash_signature,
            body=body.decode(),
            url=context.settings.jobs.qstash_callback_url,
        )
    except (SignatureError, UnicodeDecodeError) as error:
        raise Unauthorized("signature", "is not QStash's") from error
    if not 0 < len(upstash_message_id) <= _MAX_ID_LENGTH:
        raise Unprocessable("message_id", "is missing or too long")
    try:
        job = Job.decode(body)
    except ValueError as error:
        raise Unprocessable("job", "is not a job") from error
    # Verified just above, by the SDK, against the current or the next key.
    jti = jwt.decode(upstash_signature, options={"verify_signature": False}).get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= _MAX_ID_LENGTH:
        raise Unauthorized("signature", "is not QStash's")
    keys = [f"message:{upstash_message_id}", f"jti:{jti}"]
    attempt = await _start(context, job, keys)
    if attempt is None:
        logger.info(
            "qstash_replay: %s %s already ran",
            upstash_message_id,
            job.id,
            extra={"message_id": upstash_message_id, "job_id": str(job.id)},
        )
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    try:
        await run(context, jobs.tasks, job, attempt=attempt)
    except Exception:  # noqa: BLE001 (logged by `run`; QStash retries on this answer)
        await _failed(context.database, job, last=attempt >= context.settings.jobs.max_attempts)
        return JSONResponse(
            {"errors": {"job": ["failed; QStash will retry it"]}},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    await _ran(context.database, job, keys)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _running(job: Job) -> str:
    """The key a delivery holds while it runs the job, so that a duplicate does not run it too."""
    return f"running:{job.id}"


async def _start(context: JobContext, job: Job, keys: list[str]) -> int | None:
    """Claim the job and count this delivery on its row: which attempt it is (1 for a scheduled
    job, which has none). None if a delivery under one of `keys` already ran; `Conflict` while
    another delivery runs it, unless that one's lease (the job's timeout and a margin) is over,
    as when its process died."""
    now = utcnow()
    lease = timedelta(seconds=context.settings.jobs.timeout_seconds + LEASE_MARGIN_SECONDS)
    async with transaction(context.database.sessions) as session:
        # First, so that on PostgreSQL a concurrent duplicate waits here until this one's claim
        # commits, and then reads what the first delivery recorded.
        claimed = await session.scalar(
            insert(session, QStashDelivery)
            .values(message_id=_running(job), delivered_at=now)
            .on_conflict_do_update(
                index_elements=[QStashDelivery.message_id],
                set_={"delivered_at": now},
                where=QStashDelivery.delivered_at < now - lease,
            )
            .returning(QStashDelivery.message_id)
        )
        if claimed is None:
            raise Conflict("job", "is running; QStash will retry it")
        ran = await session.scalar(
            select(QStashDelivery.message_id).where(QStashDelivery.message_id.in_(keys)).limit(1)
        )
        if ran is not None:
            await session.execute(
                delete(QStashDelivery).where(QStashDelivery.message_id == _running(job))
            )
            return None
        attempts = await session.scalar(
            update(JobRecord)
            .where(JobRecord.id == job.id)
            .values(attempts=JobRecord.attempts + 1)
            .returning(JobRecord.attempts)
        )
    return 1 if attempts is None else attempts


async def _ran(database: Database, job: Job, keys: list[str]) -> None:
    """Delete the job's row and its claim, and remember the delivery."""
    async with transaction(database.sessions) as session:
        await session.execute(delete(JobRecord).where(JobRecord.id == job.id))
        await session.execute(
            delete(QStashDelivery).where(QStashDelivery.message_id == _running(job))
        )
        await session.execute(
            insert(session, QStashDelivery)
            .values([{"message_id": key, "delivered_at": utcnow()} for key in keys])
            .on_conflict_do_nothing()
        )


async def _failed(database: Database, job: Job, *, last: bool) -> None:
    """Release the job's claim for QStash's retry, and after the last attempt hold its row."""
    async with transaction(database.sessions) as session:
        await session.execute(
            delete(QStashDelivery).where(QStashDelivery.message_id == _running(job))
        )
        if last:
            await session.execute(
                update(JobRecord).where(JobRecord.id == job.id).values(status=Status.FAILED)
            )
