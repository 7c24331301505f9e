from typing import Any, cast

import aiosqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from conduit.database import AsyncpgReader, Reader, SQLiteReader


async def driver_reader(connection: AsyncConnection) -> Reader:
    """The production reader classes on the driver connection under `connection`, inside the
    test's transaction, so the tests exercise the same read path as production."""
    driver = (await connection.get_raw_connection()).driver_connection
    if connection.dialect.name == "sqlite":
        return SQLiteReader(cast("aiosqlite.Connection", driver), connection.dialect)
    return AsyncpgReader(cast("Any", driver), connection.dialect)
