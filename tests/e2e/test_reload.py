"""`conduit serve --reload`, as a developer runs it: a real process serving a copy of the
package, restarted when one of the copy's files changes."""

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import conduit
from tests.e2e.conftest import database_env
from tests.threaded import free_port

# What uvicorn's reloader does, whichever database the server is on.
pytestmark = [pytest.mark.e2e, pytest.mark.one_pass]

# Bounds on a busy machine, polled, never waited out: a start is 1 to 4 s here.
DEADLINE_SECONDS = 60.0


def _until(
    done: Callable[[], bool], failure: str, process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not done():
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{failure}; the server's log:\n{log.read_text()}", pytrace=False)
        time.sleep(0.1)


def _answers(url: str) -> bool:
    """A connection of its own: a kept-alive one would hold up the old server's shutdown."""
    try:
        return httpx.get(url, timeout=5, trust_env=False).status_code == httpx.codes.OK
    except httpx.TransportError:
        return False


def test_a_reload_server_answers_and_restarts_when_a_file_of_the_package_changes(
    tmp_path: Path,
) -> None:
    package = tmp_path / "source" / "conduit"
    # With its compiled modules, still valid (their sources keep their times).
    shutil.copytree(Path(conduit.__file__).parent, package)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/tags"
    log = tmp_path / "server.log"
    with database_env(tmp_path) as env, log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "conduit", "serve", "--reload", "--port", str(port)],
            cwd=tmp_path,
            env=env | {"PYTHONPATH": str(package.parent)},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            _until(lambda: _answers(url), "The server never answered", process, log)
            (package / "reload_probe.py").write_text("")
            _until(
                lambda: log.read_text().count("Application startup complete.") == 2,
                "The server did not restart",
                process,
                log,
            )
            _until(lambda: _answers(url), "The restarted server never answered", process, log)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)

    text = log.read_text()
    assert process.returncode == 0, text
    assert f"Will watch for changes in these directories: ['{package}']" in text
    assert "detected changes in 'source/conduit/reload_probe.py'. Reloading..." in text
    assert text.count("Started server process") == 2
    # WatchFiles' own line would repeat uvicorn's.
    assert "change detected" not in text
