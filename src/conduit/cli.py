"""The `conduit` command: `serve` runs the API, `migrate` brings the database schema up to date,
`seed` fills an empty database with realistic data, `recount` puts derived totals right, `worker`
runs background jobs and `jobs` shows and handles them."""

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvicorn
from prometheus_client import start_http_server
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy import exc
from uvicorn.supervisors import ChangeReload

from conduit import clients, config, database, logs, metrics, operations, server, startup
from conduit import seed as seeding
from conduit.articles import service as articles_service
from conduit.config import Environment, JobsBackend, Settings
from conduit.database import Database
from conduit.jobs import admin
from conduit.jobs.outbox import Status

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    # Click's plain help: paragraphs rewrapped to the terminal's width and no type after a flag.
    # Rich's kept a docstring's line breaks in the list of commands, showed every flag as
    # `<bool>`, and read "[default: ...]" in a help text as a style tag, which it dropped.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

T = TypeVar("T")

logger = logging.getLogger("conduit.cli")


def _show_version(shown: bool) -> None:
    if shown:
        typer.echo(f"conduit {version('conduit')}")
        raise typer.Exit


@app.callback()
def main(
    _: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Conduit: the RealWorld API as a production service."""


def _fail(message: str, code: int = 1, *, log: bool = False) -> typer.Exit:
    """The exit of a command that cannot go on, saying why in one line: a log line for the
    commands that log (`serve`, `worker`: JSON in production), else plain text."""
    if log:
        logger.error(message)
    else:
        typer.echo(message, err=True)
    return typer.Exit(code=code)


def _load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "\n".join(f"  {line}" for line in config.explain(error))
        raise _fail(f"Invalid configuration:\n{problems}", code=2) from None
    except SettingsError as error:
        raise _fail(f"Invalid configuration: {error}", code=2) from None


def _run(settings: Settings, work: Coroutine[Any, Any, T], *, log: bool = False) -> T:
    """Run `work`; a database that cannot be reached is one line saying why, not a traceback."""
    try:
        return asyncio.run(work)
    except (exc.DBAPIError, *database.UNAVAILABLE) as error:
        if not database.unavailable(error):
            raise
        reason = database.explain(settings.database, error)
        raise _fail(f"Database unavailable: {reason}", log=log) from None


@contextlib.contextmanager
def _metrics_directory(*, shared: bool) -> Iterator[None]:
    """For processes that serve under a supervisor (several workers, or one restarted on every
    change), a directory they share their metrics through (`conduit.metrics`), emptied at each
    start, unless the environment names one."""
    if not shared or "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="conduit-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        try:
            yield
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def _ensure_port_free(host: str, port: int) -> None:
    """Bind and release the address as uvicorn will, so that a port in use is one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise _fail(
                    f"Port {port} on {host} is in use by another process: stop it, or choose "
                    "another with --port.",
                    log=True,
                ) from None
            raise _fail(f"Cannot listen on {host}:{port}: {error.strerror}", log=True) from None


@contextlib.contextmanager
def _metrics_port(settings: Settings, host: str) -> Iterator[None]:
    """`GET /metrics` on CONDUIT_METRICS_PORT, served by this process in a thread of its own:
    the only process of one worker, or the supervisor of several, whose registry adds up
    theirs (`conduit.metrics.registry`)."""
    port = settings.metrics.port
    if port is None or not settings.metrics.enabled:
        yield
        return
    _ensure_port_free(host, port)
    scrapes = uvicorn.Server(
        uvicorn.Config(
            operations.metrics_app(settings),
            host=host,
            port=port,
            # Configured, for the whole process, by `conduit serve`.
            log_config=None,
            access_log=False,
            server_header=False,
            lifespan="on",
        )
    )
    thread = threading.Thread(target=scrapes.run, name="conduit-metrics")
    thread.start()
    try:
        yield
    finally:
        scrapes.should_exit = True
        thread.join()


def _check_at_start(settings: Settings, *, database_required: bool) -> None:
    """`conduit.startup.check`: a refusal is its one log line and exit code 1."""
    try:
        asyncio.run(startup.check(settings, database_required=database_required))
    except startup.Refused:
        raise typer.Exit(code=1) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(metavar="HOST", help="Interface to listen on.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(metavar="PORT", help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, metavar="N", help="Worker processes.")] = 1,
    access_log: Annotated[
        bool | None,
        typer.Option(
            help="Log one line per request. Without either flag, CONDUIT_LOG_ACCESS decides "
            "(on unless it is false)."
        ),
    ] = None,
    reload: Annotated[
        bool,
        typer.Option(
            "--reload",
            help="Restart whenever a file of the conduit package changes. For development: "
            "refused in production and with more than one worker.",
        ),
    ] = False,
) -> None:
    """Serve the API over HTTP (uvicorn, uvloop and httptools)."""
    if access_log is not None:
        # Read by the app factory in each worker process.
        os.environ["CONDUIT_LOG_ACCESS"] = str(access_log).lower()
    settings = _load_settings()
    logs.configure(settings)
    if reload and workers > 1:
        raise _fail("--reload restarts one worker: leave out --workers or --reload.", 2, log=True)
    if reload and settings.env is Environment.PRODUCTION:
        raise _fail("--reload is for development, and CONDUIT_ENV is production.", 2, log=True)
    _check_at_start(settings, database_required=False)
    shared_store = settings.redis.url is not None or settings.redis.rest_url is not None
    if workers > 1 and settings.cache.enabled and not shared_store:
        # Each worker would invalidate only its own memory and serve the others' stale entries.
        logger.warning(
            "The read cache is off: with more than one worker it needs a shared store "
            "(REDIS_URL or UPSTASH_REDIS_REST_URL)."
        )
        os.environ["CONDUIT_CACHE_ENABLED"] = "false"
    replicas = settings.database.replica_dsns and not settings.database.is_sqlite
    if workers > 1 and replicas and not shared_store:
        # A user's write position would be known to the worker that served the write only.
        logger.warning(
            "Reads on replicas are off: with more than one worker, read-your-writes needs a "
            "shared store (REDIS_URL or UPSTASH_REDIS_REST_URL)."
        )
        os.environ["DATABASE_REPLICA_URLS"] = ""
    _ensure_port_free(host, port)
    config = server.Config(
        "conduit.main:create_app",
        header_timeout_seconds=settings.http.header_timeout_seconds,
        max_header_bytes=settings.http.max_header_bytes,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # `conduit.access` writes one line per request instead (`conduit.logs`).
        access_log=False,
        log_config=logs.config(settings),
        loop="uvloop",
        lifespan="on",
        # X-Forwarded-* are honoured by the app itself, from CONDUIT_HTTP_TRUSTED_PROXIES only.
        proxy_headers=False,
        timeout_graceful_shutdown=settings.http.shutdown_grace_seconds,
        # A worker's start, on a machine starting as many as it has cores or more.
        timeout_worker_healthcheck=30,
        reload=reload,
        reload_dirs=[str(Path(__file__).parent)] if reload else None,
    )
    with _metrics_directory(shared=workers > 1 or reload), _metrics_port(settings, host):
        if reload:
            sockets = [config.bind_socket()]
            ChangeReload(config, target=server.Server(config).run, sockets=sockets).run()
            return
        if workers > 1:
            server.Multiprocess(config, sockets=[config.bind_socket()]).run()
            return
        single = server.Server(config)
        # uvicorn raises the SIGTERM it handled again once it has shut down: exit 0 then.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        single.run()
    if not single.started:
        raise typer.Exit(code=3)


def _exit_cleanly(_: int, __: object) -> None:
    raise SystemExit(0)


@app.command()
def migrate(
    revision: Annotated[
        str, typer.Argument(metavar="REVISION", help="The revision to migrate to.")
    ] = "head",
) -> None:
    """Migrate the database to REVISION, the latest by default."""
    settings = _load_settings()
    logs.configure(settings)
    # Alembic only for the commands that migrate.
    from alembic.script.revision import RevisionError  # noqa: PLC0415

    from conduit import migrations  # noqa: PLC0415

    async def run() -> None:
        engine = database.create_engine(settings.database, direct=True)
        try:
            await migrations.upgrade(
                engine,
                revision,
                lock_timeout_seconds=settings.database.migrate_lock_timeout_seconds,
            )
        finally:
            await engine.dispose()

    # Each revision is a log line; a failure is the command's answer, on standard error.
    try:
        _run(settings, run())
    except migrations.LockNotAcquired as error:
        # EX_TEMPFAIL (sysexits.h): nothing was half-applied, and running it again may succeed.
        raise _fail(error.explain(), code=75) from None
    except RevisionError as error:
        raise _fail(
            f"Cannot migrate to {revision}: {error}. `conduit migrate` only upgrades "
            "(docs/deployment.md, Downgrades).",
            code=2,
        ) from None
    typer.echo(f"Database migrated to {revision}.")


class _NotMigrated(Exception):
    """The database is older than this release's migration."""


async def _recount(settings: Settings) -> tuple[int, int]:
    async with clients.connect(settings, run_embedded_jobs=False) as connected:
        revision = await database.schema_revision(connected.database.engine)
        if await database.schema_standing(revision) is database.Schema.OLDER:
            raise _NotMigrated
        async with database.transaction(
            connected.database.sessions, cache=connected.cache
        ) as session:
            return await articles_service.recount_total(session)


@app.command()
def recount() -> None:
    """Count derived totals again, and correct those that drifted.

    The unfiltered articlesCount is read from a total that triggers keep; a rolling deploy across
    some releases left it wrong (CHANGELOG.md says which). Idempotent, and safe while the API
    serves."""
    settings = _load_settings()
    try:
        before, after = _run(settings, _recount(settings))
    except _NotMigrated:
        raise _fail(startup.NOT_MIGRATED) from None
    if before == after:
        typer.echo(f"Article total: {after:,}, right.")
    else:
        typer.echo(f"Article total: {before:,}, corrected to {after:,}.")


async def _seed(settings: Settings, scale: seeding.Scale, random_seed: int) -> dict[str, int]:
    engine = database.create_engine(settings.database)
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
            help="Tiny: 20 articles. Small: 1k. Medium: 10k. Large: 100k articles and 1.2M"
            " favorites."
        ),
    ] = seeding.ScaleName.SMALL,
    random_seed: Annotated[
        int,
        typer.Option(
            "--seed", metavar="N", help="The same seed on the same day gives the same data."
        ),
    ] = 1,
) -> None:
    """Fill an empty, migrated database with realistic data.

    Users, articles, tags, follows, favorites and comments, over the two years before today.
    Every seeded user signs in as USERNAME@example.com with this password:

    \b
        conduit-seed-password
    """
    settings = _load_settings()
    started = time.monotonic()
    try:
        counts = _run(settings, _seed(settings, seeding.SCALES[scale], random_seed))
    except seeding.DatabaseNotReady as error:
        raise _fail(str(error)) from None
    summary = ", ".join(f"{count:,} {table}" for table, count in counts.items())
    typer.echo(f"Seeded {summary} in {time.monotonic() - started:.1f} s.")


async def _work(settings: Settings, *, drain: bool) -> str:
    """Run jobs until a signal, or with `drain` until none is due; what stopped them."""
    async with clients.connect(settings, run_embedded_jobs=False) as connected:
        if settings.metrics.worker_port is not None:
            start_http_server(settings.metrics.worker_port, registry=metrics.registry())
        jobs = connected.jobs
        stop = asyncio.Event()
        received: list[signal.Signals] = []

        def on_signal(signum: signal.Signals) -> None:
            received.append(signum)
            # Either way the running jobs finish first.
            if jobs.embedded is None:
                stop.set()
            else:
                jobs.embedded.stop()

        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, on_signal, signum)
        concurrency = settings.jobs.concurrency
        logger.info("Running %s jobs, %d at a time.", jobs.backend, concurrency)
        if jobs.embedded is None:
            from conduit.jobs import postgres  # noqa: PLC0415 (PgQueuer only where it is used)

            await postgres.work(jobs.context, jobs.tasks, jobs.schedules, stop=stop, drain=drain)
        elif drain:
            while await jobs.embedded.run_due(jobs.context):
                pass
        else:
            await jobs.embedded.run_forever(jobs.context)
    # Without a signal, only a drain ends.
    return received[0].name if received else "drained"


@app.command()
def worker(
    drain: Annotated[
        bool, typer.Option("--drain", help="Exit once no job is due instead of waiting for more.")
    ] = False,
) -> None:
    """Run background jobs until SIGTERM or Ctrl-C.

    Either lets the jobs running finish first. Start any number of workers, on any number of
    machines (PostgreSQL). On the embedded default (SQLite) the API runs the jobs itself,
    unless CONDUIT_JOBS_RUN_IN_API=false; with QStash there is no worker to run."""
    settings = _load_settings()
    if settings.jobs_backend is JobsBackend.QSTASH:
        typer.echo(
            "Jobs are delivered by QStash to the API (POST /jobs/qstash): there is no worker "
            "to run.",
            err=True,
        )
        raise typer.Exit(code=2)
    logs.configure(settings)
    _check_at_start(settings, database_required=True)
    stopped_by = _run(settings, _work(settings, drain=drain), log=True)
    runs = metrics.job_runs()
    logger.info(
        "worker_stopped: %s, %d job runs, %d failed",
        stopped_by,
        sum(runs.values()),
        runs.get("failed", 0),
        extra={"stopped_by": stopped_by, "job_runs": runs},
    )


jobs_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Show, retry and discard background jobs."
)
app.add_typer(jobs_app, name="jobs")


async def _with_database(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    async with database.connect(settings.database) as db:
        return await action(db)


@jobs_app.command("list")
def list_jobs(
    status: Annotated[Status | None, typer.Option(help="Only the jobs in this state.")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=10_000, metavar="N", help="How many to list at most.")
    ] = 50,
) -> None:
    """List the jobs waiting, running and held as failed, newest first."""
    settings = _load_settings()
    listed = _run(
        settings,
        _with_database(settings, partial(admin.listing, settings, status=status, limit=limit)),
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
        return _run(settings, _with_database(settings, lambda db: action(settings, db, ids)))
    except admin.UnknownJobId as error:
        raise _fail(str(error), code=2) from None


@jobs_app.command()
def retry(
    ids: Annotated[
        list[str], typer.Argument(metavar="ID", help="Ids of failed jobs, as jobs list shows them.")
    ],
) -> None:
    """Queue failed jobs again, their attempts back to zero."""
    typer.echo(f"{_act(admin.retry, ids)} job(s) queued again.")


@jobs_app.command()
def discard(
    ids: Annotated[
        list[str],
        typer.Argument(metavar="ID", help="Ids of queued or failed jobs, as jobs list shows them."),
    ],
) -> None:
    """Delete queued or failed jobs for good."""
    typer.echo(f"{_act(admin.discard, ids)} job(s) discarded.")
