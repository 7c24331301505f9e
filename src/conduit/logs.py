"""Logging: every line a Conduit process writes is rendered by structlog, Conduit's own lines
and uvicorn's and every library's alike, so that production's stdout is JSON lines only and
development's is readable.

Loggers are the standard library's (`logging.getLogger(__name__)`, fields in `extra=`), which
structlog's `Formatter` renders, adding the time, the level, the logger and the request's
context (`request_id`, bound by `conduit.edge.Edge`). The one line written for
every request (`access_logger`) is a structlog logger of its own instead, on structlog's fast path
(no `LogRecord`, one `orjson.dumps` to bytes): through the standard library it cost a request
25 µs in JSON and 50 µs on the console (docs/benchmarks.md). Both write whole lines to stdout.
"""

import logging
import logging.config
import sys
from typing import Any

import orjson
import structlog

from conduit.config import LogFormat, Settings

# The most of a client's text (a path no route matched) a log line shows.
SHOWN_CHARACTERS = 200


def printable(text: str) -> str:
    """Text a client chose, fit for a log line: every character that is not printable (line
    breaks, terminal escapes, bidirectional overrides), and the backslash, escaped as Python
    writes it, so that the text can neither end the line, forge another nor drive a terminal;
    cut after `SHOWN_CHARACTERS`, saying how many more there were, so that it cannot flood
    the log."""
    if len(text) <= SHOWN_CHARACTERS and text.isprintable() and "\\" not in text:
        return text
    shown: list[str] = []
    length = 0
    for position, character in enumerate(text):
        if character.isprintable() and character != "\\":
            piece = character
        else:
            piece = character.encode("unicode_escape").decode("ascii")
        if length + len(piece) > SHOWN_CHARACTERS:
            return "".join(shown) + f"...[{len(text) - position} more]"
        shown.append(piece)
        length += len(piece)
    return "".join(shown)


def _json(event: dict[str, Any], **_: object) -> str:
    return orjson.dumps(event, default=str).decode()


def _access(
    _: structlog.typing.WrappedLogger, __: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    event["logger"] = "conduit.access"
    return event


def _without_colours(
    _: structlog.typing.WrappedLogger, __: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """uvicorn adds a copy of some messages with terminal colour codes."""
    event.pop("color_message", None)
    return event


class Formatter(structlog.stdlib.ProcessorFormatter):
    def __init__(self, log_format: LogFormat) -> None:
        renderer: list[structlog.typing.Processor]
        if log_format is LogFormat.JSON:
            renderer = [
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(serializer=_json),
            ]
        else:
            # Plain tracebacks: a rich one shows each frame's local variables, secrets included.
            renderer = [
                structlog.dev.ConsoleRenderer(
                    colors=sys.stdout.isatty(), exception_formatter=structlog.dev.plain_traceback
                )
            ]
        super().__init__(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
                _without_colours,
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        )


def config(settings: Settings) -> dict[str, Any]:
    """The `logging.config.dictConfig` of a Conduit process, given to uvicorn as its
    `log_config` (so that each of its worker processes applies it too): one handler on stdout,
    which uvicorn's loggers reach through the root logger. uvicorn's access log stays off;
    `conduit.access` writes one line per request instead."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "conduit": {"()": Formatter, "log_format": settings.log_format},
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "conduit",
                "stream": "ext://sys.stdout",
            },
        },
        "root": {"handlers": ["stdout"], "level": settings.log.level},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
            # `conduit.migrations` says which revision it applies; Alembic's lines repeat it.
            "alembic": {"level": "WARNING"},
            # `conduit serve --reload`: uvicorn's own line names the files that changed.
            "watchfiles": {"level": "WARNING"},
            # Seven lines at INFO whenever Alembic is imported, saying nothing to an operator.
            "alembic.runtime.plugins": {"level": "WARNING"},
        },
    }


def configure(settings: Settings) -> None:
    """For the processes uvicorn does not start (`conduit worker`, `migrate`, ...)."""
    logging.config.dictConfig(config(settings))
    configure_access(settings)


def access_logger() -> structlog.typing.FilteringBoundLogger:
    """The logger of the access line, as `configure_access` made it (structlog's own loggers
    write only that line). Resolved once: a lazy proxy would rebuild it on every line."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger().bind()
    return logger


def configure_access(settings: Settings) -> None:
    """The access logger, in each process that serves (`conduit.main.create_app`)."""
    level = logging.getLevelNamesMapping()[settings.log.level]
    if settings.log_format is LogFormat.JSON:
        renderer: list[structlog.typing.Processor] = [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ]
        factory: Any = structlog.BytesLoggerFactory()
    else:
        renderer = [structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())]
        factory = structlog.PrintLoggerFactory()
    structlog.configure(
        # The request's id is given by the line itself: merging the context's variables would
        # copy the whole context of the request's task on every line.
        processors=[
            _access,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            *renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=factory,
    )
