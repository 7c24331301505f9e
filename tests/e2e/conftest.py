"""Infrastructure for the end-to-end conformance tests.

Provides a real Conduit server process (SQLite by default, a throw-away PostgreSQL database when
``TEST_DATABASE_URL`` is set), the pinned conformance runners from ``conformance/``, the location
of the official RealWorld suites, and a closing summary of every conformance run.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.databases import create_postgres_database, drop_postgres_database
from tests.e2e import realworld
from tests.redis_keys import STORE_TIMEOUT_SECONDS, delete_keys
from tests.replication import (
    PREPARED_STATEMENTS_SINCE,
    pgbouncer,
    pgbouncer_version,
    replicated_cluster,
    require_cluster,
    require_pgbouncer,
)
from tests.threaded import free_port
from tests.upstash_rest import serving as serving_upstash

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE_DIR = REPO_ROOT / "conformance"
CONFORMANCE_BIN = CONFORMANCE_DIR / "node_modules" / ".bin"
CONFORMANCE_TOOLS = ("bru", "newman")

# Bounds on waiting for a process that works: a loaded machine can take a minute to start one
# (two workers, each importing the app); only a process that never starts waits this long.
SERVER_READY_TIMEOUT = 120.0
SERVER_STOP_TIMEOUT = 15.0
MIGRATE_TIMEOUT = 180.0
NPM_CI_TIMEOUT = 900.0
LOG_TAIL_LINES = 40
# The servers' signing key: no log line may hold it.
SERVER_SECRET_KEY = "e2e-conformance-secret-key-0123456789abcdef"

_SUMMARY_KEY = pytest.StashKey[list[str]]()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bruno_folder" in metafunc.fixturenames:
        metafunc.parametrize("bruno_folder", realworld.bruno_folders(realworld.load_manifest()))


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(_SUMMARY_KEY, [])
    if not lines:
        return
    terminalreporter.write_sep("=", "RealWorld conformance")
    for line in lines:
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A pytest-xdist worker hands its summary lines to the controller, which prints them."""
    workeroutput: dict[str, object] | None = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["conformance_summary"] = session.config.stash.get(_SUMMARY_KEY, [])


class _Worker(Protocol):
    """What a pytest-xdist worker's controller shows of it (xdist is untyped)."""

    config: pytest.Config
    workeroutput: dict[str, list[str]]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: _Worker) -> None:
    lines = node.workeroutput.get("conformance_summary", [])
    node.config.stash.setdefault(_SUMMARY_KEY, []).extend(lines)


@pytest.fixture(scope="session")
def conformance_summary(request: pytest.FixtureRequest) -> list[str]:
    """Lines appended here are printed in pytest's closing summary."""
    return request.config.stash.setdefault(_SUMMARY_KEY, [])


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The conformance tests that are to run are skipped, in one line for them all, when their
    suites or their runners cannot be had here. Last, so that only tests still selected fetch."""
    conformance = [item for item in items if "realworld_dir" in getattr(item, "fixturenames", ())]
    if not conformance:
        return
    missing = _runners_missing() or _suites_missing()
    if missing is not None:
        for item in conformance:
            item.add_marker(pytest.mark.skip(reason=missing))


def _runners_missing() -> str | None:
    runners = ", ".join(f"{package} {version}" for package, version in _pinned_versions().items())
    if shutil.which("node") is None:
        return f"Node.js is not on PATH: the conformance runners ({runners}) need it"
    if not _runners_installed() and shutil.which("npm") is None:
        return f"npm is not on PATH to install the conformance runners ({runners}) in conformance/"
    return None


def _suites_missing() -> str | None:
    try:
        realworld.locate(realworld.load_manifest())
    except realworld.Unavailable as error:
        return str(error)
    except realworld.Mismatch:
        return None  # `realworld_dir` fails the tests, saying what was refused.
    return None


@pytest.fixture(scope="session")
def realworld_dir() -> Path:
    """The RealWorld suites (`tests.e2e.realworld`); when they are not here and cannot be
    fetched, the tests that need them have been skipped at collection."""
    try:
        path = realworld.locate(realworld.load_manifest())
    except realworld.Mismatch as error:
        pytest.fail(f"Refused the fetched RealWorld suites: {error}", pytrace=False)
    expected = (
        path / "current" / "bruno" / "bruno.json",
        path / "legacy" / "Conduit.postman_collection.json",
    )
    missing = [str(candidate) for candidate in expected if not candidate.is_file()]
    if missing:
        pytest.fail(
            f"RealWorld conformance suites not found under {path} (missing: {', '.join(missing)}).",
            pytrace=False,
        )
    return path


def _pinned_versions() -> dict[str, str]:
    manifest = json.loads((CONFORMANCE_DIR / "package.json").read_text(encoding="utf-8"))
    dependencies: dict[str, str] = manifest["dependencies"]
    return dependencies


def _installed_version(package: str) -> str | None:
    manifest = CONFORMANCE_DIR / "node_modules" / package / "package.json"
    if not manifest.is_file():
        return None
    version: str = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    return version


def _runners_installed() -> bool:
    if not all((CONFORMANCE_BIN / tool).exists() for tool in CONFORMANCE_TOOLS):
        return False
    return all(
        _installed_version(package) == version for package, version in _pinned_versions().items()
    )


def _tail(output: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(output.splitlines()[-lines:])


@pytest.fixture(scope="session")
def conformance_bin() -> Path:
    """``conformance/node_modules/.bin`` holding the pinned runners (``npm ci`` if missing)."""
    # `npm ci` starts by deleting node_modules: the other pass's must not run meanwhile.
    with realworld.one_at_a_time(REPO_ROOT / ".tools" / "conformance-runners.lock"):
        if _runners_installed():
            return CONFORMANCE_BIN
        _run_or_fail(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=CONFORMANCE_DIR, timeout=NPM_CI_TIMEOUT
        )
    if not _runners_installed():
        pytest.fail(
            f"`npm ci` succeeded but {', '.join(CONFORMANCE_TOOLS)} at the versions pinned in "
            f"{CONFORMANCE_DIR / 'package.json'} are still missing from {CONFORMANCE_BIN}.",
            pytrace=False,
        )
    return CONFORMANCE_BIN


@dataclass(frozen=True)
class Installation:
    """A Conduit to run: its Python, with Conduit installed, and the tree it runs in."""

    python: Path
    root: Path


# The code under test, in the environment running the tests.
CURRENT = Installation(python=Path(sys.executable), root=REPO_ROOT)


@dataclass(frozen=True)
class ConduitServer:
    base_url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    def diagnostics(self) -> str:
        """The server's state and the tail of its log, for failure messages."""
        exit_code = self.process.poll()
        state = "running" if exit_code is None else f"exited with code {exit_code}"
        log = self.log_path.read_text(encoding="utf-8", errors="replace")
        return f"Server {self.base_url} {state}; tail of {self.log_path}:\n{_tail(log)}"


# The servers' shared store is chosen by the tests (TEST_REDIS_URL), never inherited.
_STORE_VARIABLES = frozenset({"REDIS_URL", "UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN"})


def _server_env(database_url: str) -> dict[str, str]:
    """The environment of a server on `database_url`, sharing state in the Redis at
    TEST_REDIS_URL (under a key prefix of its own) when it is set."""
    env = {
        **{name: value for name, value in os.environ.items() if name not in _STORE_VARIABLES},
        "DATABASE_URL": database_url,
        "CONDUIT_SECRET_KEY": SERVER_SECRET_KEY,
        "CONDUIT_ENV": "development",
        "PYTHONUNBUFFERED": "1",
    }
    redis_url = os.environ.get("TEST_REDIS_URL")
    if redis_url:
        env["REDIS_URL"] = redis_url
        env["CONDUIT_REDIS_KEY_PREFIX"] = f"conduit-e2e-{uuid.uuid4().hex[:12]}"
        env["CONDUIT_REDIS_TIMEOUT_SECONDS"] = str(STORE_TIMEOUT_SECONDS)
    return env


@contextmanager
def database_env(
    workdir: Path, *, installation: Installation = CURRENT
) -> Iterator[dict[str, str]]:
    """The environment of servers on a database of their own: a throw-away PostgreSQL
    database when TEST_DATABASE_URL is set, else a SQLite file in `workdir`, migrated by
    `installation` (for this one, a copy of `_migrated`'s)."""
    postgres_url = os.environ.get("TEST_DATABASE_URL")
    if not postgres_url:
        path = workdir / "e2e.db"
        if installation is CURRENT:
            shutil.copyfile(_migrated.sqlite(), path)
        yield _server_env(f"sqlite+aiosqlite:///{path}")
        return
    template = _migrated.postgres(postgres_url) if installation is CURRENT else None
    url = asyncio.run(create_postgres_database(postgres_url, template=template))
    try:
        env = _server_env(url)
        if template is None:
            migrate(env, installation=installation)
        yield env
    finally:
        asyncio.run(drop_postgres_database(postgres_url, url))


class _Migrated:
    """A database of each kind that `conduit migrate` made, once a session, for the tests'
    own to be copied from: a copy takes milliseconds, where a migration starts a process
    (2.4 s of CPU) and runs every revision."""

    def __init__(self) -> None:
        self._directory: Path | None = None
        self._postgres: tuple[str, str] | None = None

    def sqlite(self) -> Path:
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="conduit-e2e-"))
            migrate(_server_env(f"sqlite+aiosqlite:///{self._directory / 'migrated.db'}"))
        return self._directory / "migrated.db"

    def postgres(self, server_url: str) -> str:
        if self._postgres is None:
            url = asyncio.run(create_postgres_database(server_url))
            self._postgres = (server_url, url)
            migrate(_server_env(url))
        return self._postgres[1]

    def drop(self) -> None:
        if self._directory is not None:
            shutil.rmtree(self._directory)
        if self._postgres is not None:
            asyncio.run(drop_postgres_database(*self._postgres))


_migrated = _Migrated()


@pytest.fixture(scope="session", autouse=True)
def _drop_migrated() -> Iterator[None]:
    yield
    _migrated.drop()


@contextmanager
def shared_store_env(kind: str) -> Iterator[dict[str, str]]:
    """The environment of servers sharing the Redis at TEST_REDIS_URL (the test is skipped when
    it is not set), over TCP (`kind` "redis") or through the Upstash REST emulator ("upstash"),
    under a key prefix of their own that is emptied afterwards."""
    redis_url = os.environ.get("TEST_REDIS_URL")
    if redis_url is None:
        pytest.skip("TEST_REDIS_URL is not set (CI sets it)")
    prefix = f"conduit-e2e-{uuid.uuid4().hex[:12]}"
    try:
        timeout = {"CONDUIT_REDIS_TIMEOUT_SECONDS": str(STORE_TIMEOUT_SECONDS)}
        if kind == "redis":
            yield {"REDIS_URL": redis_url, "CONDUIT_REDIS_KEY_PREFIX": prefix} | timeout
            return
        token = secrets.token_urlsafe(16)
        with serving_upstash(redis_url, token) as url:
            yield {
                "UPSTASH_REDIS_REST_URL": url,
                "UPSTASH_REDIS_REST_TOKEN": token,
                "CONDUIT_REDIS_KEY_PREFIX": prefix,
            } | timeout
    finally:
        asyncio.run(delete_keys(redis_url, f"{prefix}:*"))


@contextmanager
def _conduit(
    arguments: list[str], env: dict[str, str], log_path: Path, installation: Installation
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m conduit <arguments>``, its output in `log_path`, stopped afterwards."""
    with ExitStack() as stack:
        log = stack.enter_context(log_path.open("wb"))
        process = subprocess.Popen(  # noqa: S603
            [installation.python, "-m", "conduit", *arguments],
            cwd=installation.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(_stop, process)
        yield process


@contextmanager
def serving(
    env: dict[str, str],
    workdir: Path,
    name: str = "server",
    *,
    workers: int = 1,
    port: int | None = None,
    installation: Installation = CURRENT,
) -> Iterator[ConduitServer]:
    """A real ``python -m conduit serve`` process of `installation` on `port` (a free loopback
    port by default), ready to serve; its log is `workdir / <name>.log`."""
    port = port or free_port()
    log_path = workdir / f"{name}.log"
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    with _conduit(serve, env, log_path, installation) as process:
        server = ConduitServer(
            base_url=f"http://127.0.0.1:{port}", log_path=log_path, process=process
        )
        _wait_until_ready(server)
        yield server


@dataclass(frozen=True)
class Worker:
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def working(env: dict[str, str], workdir: Path, name: str = "worker") -> Iterator[Worker]:
    """A real ``python -m conduit worker`` process, running jobs; its log is
    `workdir / <name>.log`."""
    log_path = workdir / f"{name}.log"
    with _conduit(["worker"], env, log_path, CURRENT) as process:
        worker = Worker(log_path=log_path, process=process)
        deadline = time.monotonic() + SERVER_READY_TIMEOUT
        while "jobs," not in worker.log():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"The worker did not start:\n{_tail(worker.log())}", pytrace=False)
            time.sleep(0.05)
        yield worker


def _run_or_fail(
    argv: list[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> None:
    """Run a setup command; fail the session with its output if it fails or hangs."""
    command = " ".join([Path(argv[0]).name, *argv[1:]])
    try:
        completed = subprocess.run(  # noqa: S603
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{command}` in {cwd} did not finish within {timeout:.0f} s.")
    if completed.returncode != 0:
        pytest.fail(
            f"`{command}` in {cwd} failed with exit code {completed.returncode}:\n"
            f"{_tail(completed.stdout)}\n{_tail(completed.stderr)}",
            pytrace=False,
        )


def migrate(env: dict[str, str], *, installation: Installation = CURRENT) -> None:
    _run_or_fail(
        [str(installation.python), "-m", "conduit", "migrate"],
        cwd=installation.root,
        env=env,
        timeout=MIGRATE_TIMEOUT,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=SERVER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_until_ready(server: ConduitServer) -> None:
    deadline = time.monotonic() + SERVER_READY_TIMEOUT
    last_problem = "no attempt made"
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(
                    f"The Conduit server exited before becoming ready.\n{server.diagnostics()}",
                    pytrace=False,
                )
            try:
                response = client.get(f"{server.api_url}/tags")
            except httpx.TransportError as error:
                last_problem = repr(error)
            else:
                if response.status_code == httpx.codes.OK:
                    return
                last_problem = f"GET /api/tags answered {response.status_code}: {response.text}"
            time.sleep(0.2)
    pytest.fail(
        f"The Conduit server was not ready within {SERVER_READY_TIMEOUT:.0f} s "
        f"(last: {last_problem}).\n{server.diagnostics()}",
        pytrace=False,
    )


# How far the replica the suites read from lags: every request of theirs follows the one
# before within milliseconds, so every read that should see a write is a read of one the
# replica has not replayed.
SUITE_REPLICA_LAG_MS = 1000


@contextmanager
def replicated_env(*, apply_delay_ms: int) -> Iterator[dict[str, str]]:
    """The environment of servers on a private primary, migrated, reading from its streaming
    replica, which replays each write `apply_delay_ms` late (`tests.replication`); the test
    is skipped, saying why, where the cluster cannot be had."""
    require_cluster()
    with replicated_cluster() as cluster:
        env = _server_env(cluster.primary.url)
        migrate(env)
        cluster.wait_for_replay()
        cluster.set_apply_delay(apply_delay_ms)
        yield env | {"DATABASE_REPLICA_URLS": cluster.replica.url}


@contextmanager
def pooled_env(workdir: Path) -> Iterator[dict[str, str]]:
    """The environment of servers on a database of their own behind a PgBouncer in transaction
    mode with its defaults (`tests.replication.pgbouncer`), migrated over a direct connection
    (`DATABASE_DIRECT_URL`), as docs/deployment.md sets them up; the test is skipped, saying
    why, where PgBouncer cannot be had."""
    require_pgbouncer()
    # Before 1.21 PgBouncer carries no prepared statement from one server connection to the
    # next: Conduit is told so. From 1.21 it does, once `max_prepared_statements` is set.
    carried = pgbouncer_version() >= PREPARED_STATEMENTS_SINCE
    with database_env(workdir) as env:
        direct = make_url(env["DATABASE_URL"])
        with pgbouncer(
            direct.host or "127.0.0.1",
            direct.port or 5432,
            extra_config=["max_prepared_statements = 200"] if carried else [],
        ) as bouncer:
            yield env | {
                "DATABASE_URL": bouncer.url(direct.database or ""),
                "DATABASE_DIRECT_URL": env["DATABASE_URL"],
                "CONDUIT_DB_PREPARED_STATEMENTS": str(carried).lower(),
            }


# The servers the suites run against: on PostgreSQL, also through a lagging replica and
# through PgBouncer.
_SUITE_SERVERS = ["direct"]
if "TEST_DATABASE_URL" in os.environ:
    _SUITE_SERVERS += ["lagging replica", "pgbouncer"]


@pytest.fixture(scope="session", params=_SUITE_SERVERS)
def conduit_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConduitServer]:
    """A real server for the conformance suites, rate limited at the defaults but for sign-in:
    each suite registers and signs in dozens of users from one address within a minute."""
    workdir = tmp_path_factory.mktemp("conduit-e2e")
    kind: str = request.param
    with ExitStack() as stack:
        if kind == "lagging replica":
            env = stack.enter_context(replicated_env(apply_delay_ms=SUITE_REPLICA_LAG_MS))
        elif kind == "pgbouncer":
            env = stack.enter_context(pooled_env(workdir))
        else:
            env = stack.enter_context(database_env(workdir))
        yield stack.enter_context(
            serving({**env, "CONDUIT_RATE_LIMIT_SIGN_IN__QUOTA": "1000"}, workdir)
        )
