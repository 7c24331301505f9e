"""The `conduit` command: `serve` runs the API, `migrate` brings the database schema up to date,
`seed` fills an empty database with realistic data, `worker` runs background jobs and `jobs`
shows and handles them."""

import asyncio
import copy
import logging.config
import os
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, TypeVar

import typer
import uvicorn
import uvicorn.config
from pydantic import ValidationError

from conduit import clients, database, migrations
from conduit import seed as seeding
from conduit.config import JobsBackend, Settings
from conduit.database import Database, create_engine
from conduit.jobs import admin
from conduit.jobs.outbox import Status

app = typer.Typer(no_args_is_help=True, add_completion=False)

T = TypeVar("T")


def _logging_config() -> dict[str, Any]:
    """uvicorn's own logging, and Conduit's loggers at INFO through its console handler (what
    the embedded default's emails are written to, among others)."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["conduit"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


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
        log_config=_logging_config(),
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


async def _work(settings: Settings, *, drain: bool) -> None:
    async with clients.connect(settings, run_embedded_jobs=False) as connected:
        jobs = connected.jobs
        stop = asyncio.Event()
        # Either way the running jobs finish first.
        on_signal = stop.set if jobs.embedded is None else jobs.embedded.stop
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, on_signal)
        concurrency = settings.jobs.concurrency
        typer.echo(f"Running {jobs.backend} jobs, {concurrency} at a time.", err=True)
        if jobs.embedded is None:
            from conduit.jobs import postgres  # noqa: PLC0415 (PgQueuer only where it is used)

            await postgres.work(jobs.context, jobs.tasks, jobs.schedules, stop=stop, drain=drain)
        elif drain:
            while await jobs.embedded.run_due(jobs.context):
                pass
        else:
            await jobs.embedded.run_forever(jobs.context)


@app.command()
def worker(
    drain: Annotated[
        bool, typer.Option(help="Exit once no job is due, instead of waiting for more.")
    ] = False,
) -> None:
    """Run background jobs until SIGTERM or Ctrl-C, which let the running ones finish. Start
    any number, on any number of machines (PostgreSQL); on the embedded default (SQLite), the
    API runs jobs itself unless CONDUIT_JOBS_RUN_IN_API=false."""
    settings = _load_settings()
    if settings.jobs_backend is JobsBackend.QSTASH:
        typer.echo(
            "Jobs are delivered by QStash to the API (POST /jobs/qstash): there is no worker "
            "to run.",
            err=True,
        )
        raise typer.Exit(code=2)
    logging.config.dictConfig(_logging_config())
    asyncio.run(_work(settings, drain=drain))


jobs_app = typer.Typer(no_args_is_help=True, help="Show, retry and discard background jobs.")
app.add_typer(jobs_app, name="jobs")


async def _with_database(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    async with database.connect(settings.database) as db:
        return await action(db)


@jobs_app.command("list")
def list_jobs(
    status: Annotated[Status | None, typer.Option(help="Only the jobs in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """The jobs waiting, running and held as failed, newest first."""
    settings = _load_settings()
    listed = asyncio.run(
        _with_database(settings, partial(admin.listing, settings, status=status, limit=limit))
    )
    for job in listed:
        error = f"  {job.error}" if job.error else ""
        typer.echo(
            f"{job.id}  {job.task:<36} {job.status:<9} attempts={job.attempts} "
            f"at={job.at.isoformat(timespec='seconds')}{error}"
        )
    typer.echo(f"{len(listed)} job(s).", err=True)


def _act(action: Callable[[Settings, Database, list[str]], Awaitable[int]], ids: list[str]) -> int:
    settings = _load_settings()
    try:
        return asyncio.run(_with_database(settings, lambda db: action(settings, db, ids)))
    except admin.UnknownJobId as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from exc


@jobs_app.command()
def retry(ids: Annotated[list[str], typer.Argument(help="Ids of failed jobs.")]) -> None:
    """Queue failed jobs again, their attempts back to zero."""
    typer.echo(f"{_act(admin.retry, ids)} job(s) queued again.")


@jobs_app.command()
def discard(
    ids: Annotated[list[str], typer.Argument(help="Ids of queued or failed jobs.")],
) -> None:
    """Delete queued or failed jobs for good."""
    typer.echo(f"{_act(admin.discard, ids)} job(s) discarded.")
