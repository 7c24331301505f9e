import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from conduit.database import create_sessions

pytestmark = pytest.mark.anyio


async def _in_transaction_after_a_select(session: AsyncSession) -> bool:
    """Whether the driver's connection is inside a database transaction after one SELECT."""
    await session.execute(text("SELECT 1"))
    raw = await (await session.connection()).get_raw_connection()
    assert raw.driver_connection is not None
    in_transaction: bool = raw.driver_connection.is_in_transaction()
    return in_transaction


async def test_reads_skip_the_transaction_on_postgresql(engine: AsyncEngine) -> None:
    sessions = create_sessions(engine)
    if engine.dialect.name == "sqlite":
        assert sessions.reads is sessions.writes
        return

    async with sessions.reads() as reads:
        assert not await _in_transaction_after_a_select(reads)
    async with sessions.writes() as writes:
        assert await _in_transaction_after_a_select(writes)
