"""The `conduit` command: `serve` runs the API, `migrate` brings the database schema up to date."""

import asyncio
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError

from conduit import migrations
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
    _load_settings()
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
