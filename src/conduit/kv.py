"""State shared between processes: Redis over TCP, Upstash over REST, or, with neither
configured, this process's memory (the embedded default, right for one process only).

`connect` creates the one client of the process and closes it; rate limiting uses it, and
caching and jobs are meant to share it.
"""

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from conduit.config import RedisSettings

if TYPE_CHECKING:
    import upstash_redis.asyncio

    from conduit.redis_connection import RedisConnection

logger = logging.getLogger(__name__)

# How long after a failure the store is left alone before it is tried again: a server that
# is down costs one timeout per this interval, not one per request.
RETRY_AFTER_FAILURE_SECONDS = 1.0


class Unavailable(Exception):
    """The store did not answer in time, or answered with an error."""


class Full(Unavailable):
    """The store refused a write for lack of memory (a Redis at its `maxmemory` that evicts
    nothing): up, but full."""


class ScriptMissing(Exception):
    """Redis does not know a script sent by its hash (EVALSHA): it restarted since it learnt it."""


# A command as Redis takes it: its name, then its arguments.
Command = tuple[str | bytes | int, ...]


@dataclass
class Outage:
    """Whether a store is failing. The first failure logs one warning, saying what to check,
    and the recovery one line, whatever the number of requests in between."""

    store: str
    # A failure in one line that starts with the variable to fix and says what to check,
    # without credentials.
    explain: Callable[[BaseException], str] = str
    retry_at: float = 0.0
    down: bool = False
    # The last failure was the store refusing a write for lack of memory (`Full`).
    full: bool = False

    def available(self) -> bool:
        return not self.down or time.monotonic() >= self.retry_at

    def failed(self, error: Unavailable) -> None:
        self.retry_at = time.monotonic() + RETRY_AFTER_FAILURE_SECONDS
        self.full = isinstance(error, Full)
        if not self.down:
            self.down = True
            cause = error.__cause__ or error
            logger.warning(
                "shared_store_unavailable",
                extra={
                    "store": self.store,
                    "error": type(cause).__name__,
                    "detail": self.explain(error),
                },
            )

    def recovered(self) -> None:
        self.full = False
        if self.down:
            self.down = False
            logger.info("shared_store_recovered", extra={"store": self.store})


@dataclass(frozen=True)
class Redis:
    client: "RedisConnection"
    # What a call raises when the store, not the caller, is at fault.
    errors: tuple[type[Exception], ...]
    outage: Outage

    async def run(self, commands: Sequence[Command]) -> list[object]:
        """The commands in one round trip, bounded by the timeout as a whole."""
        try:
            return await self.client.run(commands)
        except self.errors as error:
            message = str(error)
            if message.startswith("NOSCRIPT"):
                raise ScriptMissing from error
            if message.startswith("OOM"):
                raise Full(str(commands[0][0])) from error
            raise Unavailable(str(commands[0][0])) from error


@dataclass(frozen=True)
class Upstash:
    client: "upstash_redis.asyncio.Redis"
    timeout_seconds: float
    errors: tuple[type[Exception], ...]
    outage: Outage

    async def run(self, commands: Sequence[Command]) -> list[object]:
        """The commands in one request (Upstash's `/pipeline`), bounded by the timeout."""
        pipeline = self.client.pipeline()
        for command in commands:
            pipeline.execute(
                [part.decode() if isinstance(part, bytes) else str(part) for part in command]
            )
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return list(await pipeline.exec())
        except self.errors as error:
            raise Unavailable(str(commands[0][0])) from error


@dataclass(frozen=True)
class Memory:
    """Nothing to connect to: each user of the layer keeps its state in this process, which
    never fails."""

    outage: Outage


Store = Redis | Upstash | Memory


def _causes(error: BaseException) -> list[BaseException]:
    """`error`, then what it was raised from or while handling, down to the first cause."""
    causes = []
    cause: BaseException | None = error
    while cause is not None:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    return causes


_Explanations = tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...]


def _redis_explanations() -> _Explanations:
    from conduit.redis_connection import AuthenticationFailed

    return (
        (
            ConnectionRefusedError,
            "REDIS_URL: connection refused by {where}: is Redis running there, on that port?",
        ),
        (socket.gaierror, "REDIS_URL: cannot resolve the host {host!r}: is the name right?"),
        (
            AuthenticationFailed,
            "REDIS_URL: {where} refused the credentials: check the user and password in it",
        ),
        (
            Full,
            "REDIS_URL: {where} is out of memory and evicts nothing: set its maxmemory-policy "
            "to allkeys-lru (docs/deployment.md, Redis memory)",
        ),
        (
            TimeoutError,
            "REDIS_URL: no answer from {where} within {timeout:g} s: is it reachable from here "
            "(a firewall, another network)? CONDUIT_REDIS_TIMEOUT_SECONDS sets the wait",
        ),
    )


def _upstash_explanations() -> _Explanations:
    import httpx

    return (
        (
            ConnectionRefusedError,
            "UPSTASH_REDIS_REST_URL: connection refused by {where}: is the URL right?",
        ),
        (
            socket.gaierror,
            "UPSTASH_REDIS_REST_URL: cannot resolve the host {host!r}: is the URL right?",
        ),
        (
            (TimeoutError, httpx.TimeoutException),
            "UPSTASH_REDIS_REST_URL: no answer from {where} within {timeout:g} s: if the "
            "database is in another region, raise CONDUIT_REDIS_TIMEOUT_SECONDS",
        ),
        # Upstash answers a request it refuses, a wrong token first of all, with one error
        # object where upstash-redis reads a pipeline's list of results.
        (
            AttributeError,
            "UPSTASH_REDIS_REST_TOKEN: {where} refused the request: is the token this database's?",
        ),
    )


def _explain(
    error: BaseException,
    explanations: _Explanations,
    *,
    variable: str,
    where: str,
    host: str | None,
    timeout: float,
) -> str:
    causes = _causes(error)
    for kind, template in explanations:
        if any(isinstance(cause, kind) for cause in causes):
            return template.format(where=where, host=host, timeout=timeout)
    return f"{variable}: {where} unavailable: {causes[-1]}"


def _explain_redis(url: str, timeout: float, error: BaseException) -> str:
    parts = urlsplit(url)
    where = parts.path if parts.scheme == "unix" else f"{parts.hostname}:{parts.port or 6379}"
    return _explain(
        error,
        _redis_explanations(),
        variable="REDIS_URL",
        where=where,
        host=parts.hostname,
        timeout=timeout,
    )


def _explain_upstash(url: str, timeout: float, error: BaseException) -> str:
    parts = urlsplit(url)
    return _explain(
        error,
        _upstash_explanations(),
        variable="UPSTASH_REDIS_REST_URL",
        where=parts.netloc.rpartition("@")[2],
        host=parts.hostname,
        timeout=timeout,
    )


def _text(part: str | bytes | int) -> str:
    return part.decode() if isinstance(part, bytes) else str(part)


@asynccontextmanager
async def connect(settings: RedisSettings) -> AsyncIterator[Store]:
    """The store the settings name. Nothing is sent until it is used: a Redis that is down at
    start-up is an outage like any other, not a reason to refuse to serve. A client library is
    imported only when its store is configured (redis-py alone costs ~16 MiB per process)."""
    if settings.url is not None:
        from conduit import tracing
        from conduit.redis_connection import RedisConnection, ReplyError

        connection = RedisConnection(
            settings.url,
            timeout_seconds=settings.timeout_seconds,
            tracer=tracing.tracer("conduit.redis") if tracing.enabled() else None,
        )
        try:
            yield Redis(
                connection,
                (ReplyError, OSError, TimeoutError),
                Outage("redis", partial(_explain_redis, settings.url, settings.timeout_seconds)),
            )
        finally:
            await connection.aclose()
    elif settings.rest_url is not None and settings.rest_token is not None:
        import json

        import httpx
        import upstash_redis.asyncio
        from upstash_redis.errors import UpstashError

        rest = upstash_redis.asyncio.Redis(
            settings.rest_url,
            settings.rest_token.get_secret_value(),
            # Its retry waits seconds; a request cannot. Calls are bounded by the timeout.
            rest_retries=0,
            allow_telemetry=False,
        )
        try:
            # httpx's errors for the transport, JSONDecodeError for a body that is not JSON,
            # AttributeError for a pipeline answered with one error object rather than a list
            # (upstash-redis reads it as a list).
            errors = (
                UpstashError,
                httpx.HTTPError,
                json.JSONDecodeError,
                TimeoutError,
                AttributeError,
            )
            yield Upstash(
                rest,
                settings.timeout_seconds,
                errors,
                Outage(
                    "upstash",
                    partial(_explain_upstash, settings.rest_url, settings.timeout_seconds),
                ),
            )
        finally:
            await rest.close()
    else:
        yield Memory(Outage("memory"))
