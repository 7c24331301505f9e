from sqlalchemy import delete

from conduit.api_keys.models import ApiKey
from conduit.database import utcnow
from conduit.jobs import Arguments, Job, JobContext, task


@task("api_keys.purge", Arguments)
async def purge(context: JobContext, _: Job, __: Arguments) -> None:
    """Delete the keys past their expiry: they authenticate nobody any more."""
    async with context.unit_of_work() as session:
        await session.execute(delete(ApiKey).where(ApiKey.expires_at <= utcnow()))
