"""Schemathesis against a real `conduit serve`, on SQLite or PostgreSQL as the pass is: every
check, every phase (coverage, fuzzing, stateful through the document's links), positive and
negative data. A fixed seed and budget here; `./dev fuzz` runs longer (docs/reliability.md)."""

import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import REPO_ROOT, database_env, serving

# The budget of each operation and phase; CI's is small, `./dev fuzz` sets a larger one.
MAX_EXAMPLES = os.environ.get("FUZZ_MAX_EXAMPLES", "8")
SEED = os.environ.get("FUZZ_SEED", "20261130")
TIMEOUT_SECONDS = 1800


def test_the_api_is_what_its_openapi_document_says(tmp_path: Path) -> None:
    with (
        database_env(tmp_path) as env,
        # Unlimited, so that the fuzzer reaches the routes rather than their rate limits.
        serving({**env, "CONDUIT_RATE_LIMIT_ENABLED": "false"}, tmp_path) as server,
    ):
        run = subprocess.run(  # noqa: S603
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"{server.base_url}/openapi.json",
                "--checks=all",
                "--mode=all",
                "--phases=examples,coverage,fuzzing,stateful",
                f"--max-examples={MAX_EXAMPLES}",
                f"--seed={SEED}",
                # One: hypothesis's lambda descriptions call ast.parse, which CPython 3.11
                # does not make safe across threads ("AST constructor recursion depth").
                "--workers=1",
                "--no-color",
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
        log = server.log_path.read_text(encoding="utf-8", errors="replace")

    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:]
    assert "Traceback" not in log, server.diagnostics()
