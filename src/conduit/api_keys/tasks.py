from datetime import timedelta

from sqlalchemy import delete, or_

from conduit.api_keys.models import ApiKey
from conduit.database import utcnow
from conduit.jobs import Arguments, Job, JobContext, task

# How long a revoked key stays in its owner's list, saying when it stopped working.
REVOKED_KEPT = timedelta(days=30)


@task("api_keys.purge", Arguments)
async def purge(context: JobContext, _: Job, __: Arguments) -> None:
    """Delete the keys past their expiry, and those revoked more than `REVOKED_KEPT` ago: they
    authenticate nobody any more."""
    now = utcnow()
    async with context.unit_of_work() as session:
        await session.execute(
            delete(ApiKey).where(
                or_(ApiKey.expires_at <= now, ApiKey.revoked_at <= now - REVOKED_KEPT)
            )
        )
