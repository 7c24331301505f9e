"""FastAPI's own OpenTelemetry support follows Conduit's tracing (`conduit.main.create_app`):
with the `OTEL_*` variables off, a tracer provider configured by something else in the process
gets no spans from FastAPI. In an interpreter of its own: a process sets its global provider
once."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.one_pass

SPANS = """
import asyncio

import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conduit.main import create_app

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)


async def request() -> None:
    app = create_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            # Through the framework: the fast path answers before FastAPI.
            answer = await client.get("/api/tags", headers={"X-API-Key": ""})
            assert answer.status_code == 200, answer.text


asyncio.run(request())
print(sorted(span.name for span in exporter.get_finished_spans()))
"""


def test_fastapi_records_no_spans_when_conduits_tracing_is_off(tmp_path: Path) -> None:
    environ = {
        key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "CONDUIT_"))
    }
    finished = subprocess.run(  # noqa: S603 (this interpreter, this code)
        [sys.executable, "-c", SPANS],
        env={
            **environ,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'conduit.db'}",
            "CONDUIT_LOG_ACCESS": "false",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "[]"
