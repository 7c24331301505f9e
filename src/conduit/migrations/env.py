import asyncio

from alembic import context
from sqlalchemy import Connection

from conduit.config import DatabaseSettings
from conduit.database import create_engine
from conduit.migrations import include_object
from conduit.models import Base

config = context.config


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_with_own_engine() -> None:
    engine = create_engine(DatabaseSettings(), direct=True)
    async with engine.begin() as connection:
        await connection.run_sync(run_migrations)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=DatabaseSettings().sqlalchemy_url,
        target_metadata=Base.metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
elif (connection := config.attributes.get("connection")) is not None:
    run_migrations(connection)
else:
    asyncio.run(run_migrations_with_own_engine())
