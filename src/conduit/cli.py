"""The `conduit` command: `serve` runs the API, `migrate` brings the database schema up to date,
`seed` fills an empty database with realistic data."""

import asyncio
import os
import time
from datetime import UTC, datetime
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError

from conduit import migrations
from conduit import seed as seeding
from conduit.config import Settings
from conduit.database import create_engine

app = typer.Typer(no_args_is_help=True, add_completion=False)


def _load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        typer.echo(f"Invalid configuration:\n{exc}", err=True)
        raise typer.Exit(code=2) from exc


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = True,
) -> None:
    """Run the API with uvicorn (uvloop and httptools)."""
    settings = _load_settings()
    shared_store = settings.redis.url is not None or settings.redis.rest_url is not None
    if workers > 1 and settings.cache.enabled and not shared_store:
        # Each worker would invalidate only its own memory and serve the others' stale entries.
        typer.echo(
            "The read cache is off: with more than one worker it needs a shared store "
            "(REDIS_URL or UPSTASH_REDIS_REST_URL).",
            err=True,
        )
        os.environ["CONDUIT_CACHE_ENABLED"] = "false"
    uvicorn.run(
        "conduit.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        # X-Forwarded-* are honoured by the app itself, from CONDUIT_HTTP_TRUSTED_PROXIES only.
        proxy_headers=False,
    )


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply database migrations up to REVISION."""
    settings = _load_settings()

    async def run() -> None:
        engine = create_engine(settings.database)
        try:
            await migrations.upgrade(engine, revision)
        finally:
            await engine.dispose()

    asyncio.run(run())
    typer.echo(f"Database migrated to {revision}.")


async def _seed(settings: Settings, scale: seeding.Scale, random_seed: int) -> dict[str, int]:
    engine = create_engine(settings.database)
    try:
        async with engine.begin() as connection:
            await seeding.ensure_ready(connection)
            today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            plan = seeding.plan(scale, seed=random_seed, now=today)
            with typer.progressbar(length=sum(plan.counts.values()), label="Seeding") as bar:
                await seeding.seed(connection, plan, on_progress=bar.update)
    finally:
        await engine.dispose()
    return plan.counts


@app.command()
def seed(
    scale: Annotated[
        seeding.ScaleName,
        typer.Option(
            help="small: 1k articles; medium: 10k; large: 100k articles and 1.2M favorites."
        ),
    ] = seeding.ScaleName.SMALL,
    random_seed: Annotated[
        int, typer.Option("--seed", help="The same seed on the same day gives the same data.")
    ] = 1,
) -> None:
    """Fill an empty, migrated database with realistic users, articles, tags, follows,
    favorites and comments, over the two years before today. Every seeded user signs in as
    <username>@example.com with the password `conduit-seed-password`."""
    settings = _load_settings()
    started = time.monotonic()
    try:
        counts = asyncio.run(_seed(settings, seeding.SCALES[scale], random_seed))
    except seeding.DatabaseNotReady as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=1) from exc
    summary = ", ".join(f"{count:,} {table}" for table, count in counts.items())
    typer.echo(f"Seeded {summary} in {time.monotonic() - started:.1f} s.")
