"""OpenTelemetry tracing, configured by the standard `OTEL_*` variables and off unless they ask
for it: with none set, nothing of OpenTelemetry is imported and a request pays nothing.

On, a span is recorded for every request (FastAPI), statement (SQLAlchemy for writes, asyncpg
for the read path) and round trip to Redis (`conduit.redis_connection`, named by its
commands), and exported by OTLP over HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_HEADERS`, ...) or written to stdout (`OTEL_TRACES_EXPORTER=console`).
`OTEL_SERVICE_NAME` names the service (default `conduit`).
"""

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

_ASKED_BY = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").lower() == "none":
        return False
    return any(environ.get(name) for name in _ASKED_BY)


def provider() -> "TracerProvider":
    """The process's tracer provider, exporting as the variables say."""
    from opentelemetry import trace  # noqa: PLC0415 (only when tracing is on)
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    exporter: SpanExporter
    if os.environ.get("OTEL_TRACES_EXPORTER", "").lower() == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        exporter = OTLPSpanExporter()
    named = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "conduit"}
    tracer_provider = TracerProvider(resource=Resource.create(named))
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(tracer_provider)
    return tracer_provider


def instrument_app(app: FastAPI, tracer_provider: "TracerProvider") -> None:
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor  # noqa: PLC0415
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor  # noqa: PLC0415

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=tracer_provider, excluded_urls="/health/.*,/metrics"
    )
    AsyncPGInstrumentor().instrument(tracer_provider=tracer_provider)  # type: ignore[no-untyped-call]


def tracer(name: str) -> "Tracer":
    """A tracer of the process's provider (`provider`), for what no instrumentation covers:
    Conduit's own Redis connection (`conduit.redis_connection`)."""
    from opentelemetry import trace  # noqa: PLC0415

    return trace.get_tracer(name)


def instrument_engine(engine: AsyncEngine, tracer_provider: "TracerProvider") -> None:
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor  # noqa: PLC0415

    # Its declared range stops before SQLAlchemy 2.1, whose engine events it uses unchanged (the
    # end-to-end test reads its spans).
    SQLAlchemyInstrumentor().instrument(
        engine=engine.sync_engine, tracer_provider=tracer_provider, skip_dep_check=True
    )
