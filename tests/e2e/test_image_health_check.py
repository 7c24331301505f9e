"""The image's HEALTHCHECK command, run as Docker runs it, against a real `conduit serve`: it
passes while Redis is down, when readiness does not, so that an orchestrator restarting
unhealthy containers leaves the API serving through a Redis outage."""

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests import deployment_files
from tests.e2e.conftest import database_env, serving
from tests.threaded import free_port

pytestmark = pytest.mark.e2e

PROBE_TIMEOUT_SECONDS = 30


def test_the_health_check_passes_while_redis_is_down(tmp_path: Path) -> None:
    check = deployment_files.image_health_check()
    image_port = f":{check.url.port}/"
    assert image_port in check.command[-1]
    nobody_listens = f"redis://127.0.0.1:{free_port()}/0"

    with (
        database_env(tmp_path) as env,
        serving({**env, "REDIS_URL": nobody_listens}, tmp_path) as server,
    ):
        ready = httpx.get(f"{server.base_url}/health/ready", timeout=10, trust_env=False)
        # The probe's own code, pointed at this server's port instead of the image's.
        code = check.command[-1].replace(image_port, f":{urlsplit(server.base_url).port}/")
        probe = subprocess.run(  # noqa: S603
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            check=False,
        )

    assert ready.status_code == 503, ready.text
    assert probe.returncode == 0, probe.stderr + server.diagnostics()
