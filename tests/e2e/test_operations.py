"""What an operator sees of a real `conduit serve` process: its log lines, request ids, metrics,
health checks and start-up errors."""

import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conduit.database import SCHEMA_REVISION
from tests.databases import create_postgres_database, drop_postgres_database, stamp_revision
from tests.e2e.conftest import (
    REPO_ROOT,
    SERVER_READY_TIMEOUT,
    SERVER_SECRET_KEY,
    ConduitServer,
    database_env,
    serving,
    working,
)
from tests.threaded import free_port

pytestmark = pytest.mark.e2e

PASSWORD = "operations-password-0123"
SECRET_KEY = SERVER_SECRET_KEY
# Far beyond what a job takes: only a job that never runs waits this long.
JOB_DEADLINE_SECONDS = 60


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with database_env(tmp_path) as environment:
        yield environment | {
            "CONDUIT_LOG_FORMAT": "json",
            "CONDUIT_RATE_LIMIT_SIGN_IN__QUOTA": "1000",
        }


def _stopped(server: ConduitServer) -> list[dict[str, Any]]:
    """Every line the server wrote, once it has stopped, each parsed as JSON."""
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=30)
    lines = server.log_path.read_text().splitlines()
    return [json.loads(line) for line in lines]


def _register(client: httpx.Client, server: ConduitServer, name: str, request_id: str) -> str:
    response = client.post(
        f"{server.api_url}/users",
        json={"user": {"username": name, "email": f"{name}@example.com", "password": PASSWORD}},
        headers={"X-Request-ID": request_id},
    )
    assert response.status_code == 201, response.text
    assert response.headers["x-request-id"] == request_id
    token: str = response.json()["user"]["token"]
    return token


def test_every_line_is_json_and_each_request_one_access_line_without_secrets(
    env: dict[str, str], tmp_path: Path
) -> None:
    """In JSON, every line is an object (the server's own start-up lines included); each
    request has one access line with its route template, status, duration, request id and
    user; health checks are not logged at INFO; no password, token or key is in any line."""
    with serving(env, tmp_path) as server, httpx.Client(trust_env=False, timeout=10) as client:
        token = _register(client, server, "operator", "registration-1")
        auth = {"Authorization": f"Token {token}"}
        created = client.post(
            f"{server.api_url}/articles",
            json={"article": {"title": "Logged", "description": "d", "body": "b"}},
            headers={**auth, "X-Request-ID": "bad id with spaces"},
        )
        generated = created.headers["x-request-id"]
        assert generated != "bad id with spaces"
        assert len(generated) == 32
        key = client.post(
            f"{server.api_url}/user/api-keys",
            json={"apiKey": {"name": "ops", "scopes": ["read"]}},
            headers=auth,
        ).json()["apiKey"]["key"]
        assert client.get(f"{server.api_url}/user", headers={"X-API-Key": key}).status_code == 200
        assert client.head(f"{server.api_url}/articles/logged").status_code in {200, 404}
        assert client.get(f"{server.base_url}/health/live").status_code == 200
        client.get(f"{server.api_url}/nowhere")
        records = _stopped(server)

    access = [record for record in records if record["logger"] == "conduit.access"]
    assert {"logger": "uvicorn.error", "event": "Application startup complete."}.items() <= next(
        record for record in records if record["event"] == "Application startup complete."
    ).items()
    registration = next(record for record in access if record["request_id"] == "registration-1")
    assert registration | {"duration_ms": 0, "time": ""} == {
        "event": "POST /api/users 201",
        "level": "info",
        "logger": "conduit.access",
        "method": "POST",
        "route": "/api/users",
        "status": 201,
        "user_id": None,
        "rate_limits": ["sign-in", "anonymous"],
        "request_id": "registration-1",
        "duration_ms": 0,
        "time": "",
    }
    article = next(record for record in access if record["request_id"] == generated)
    assert article["route"] == "/api/articles"
    assert isinstance(article["user_id"], int)
    assert any(record["method"] == "HEAD" for record in access)
    unmatched = next(record for record in access if record["route"] is None)
    assert (unmatched["event"], unmatched["path"]) == ("GET /api/nowhere 404", "/api/nowhere")
    assert not any(record.get("route") == "/health/live" for record in access)
    text = server.log_path.read_text()
    for secret in (PASSWORD, token, key, SECRET_KEY):
        assert secret not in text


def test_a_job_s_log_lines_carry_the_request_id_that_enqueued_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The welcome email of a registration is sent by a job whose lines carry the
    registration's request id, in the API process (SQLite) or a worker (PostgreSQL)."""
    on_postgres = "TEST_DATABASE_URL" in os.environ
    metrics_port = free_port()
    worker_env = env | {"CONDUIT_METRICS_WORKER_PORT": str(metrics_port)}
    with serving(env, tmp_path) as server, httpx.Client(trust_env=False, timeout=10) as client:
        if on_postgres:
            with working(worker_env, tmp_path) as worker:
                _register(client, server, "traced", "trace-me-42")
                _until_logged(worker.log_path, "job_done", 1)
                scrape = client.get(f"http://127.0.0.1:{metrics_port}/metrics").text
                worker.process.send_signal(signal.SIGTERM)
                worker.process.wait(timeout=30)
            log = worker.log()
            runs = _samples(scrape, "conduit_job_runs_total")
            assert runs[(("outcome", "done"), ("task", "auth.welcome_email"))] == 1
        else:
            _register(client, server, "traced", "trace-me-42")
            _until_logged(server.log_path, "job_done", 1)
        records = _stopped(server)
    if on_postgres:
        records = [json.loads(line) for line in log.splitlines()]
    done = [record for record in records if record["event"].startswith("job_done")]
    assert [(record["request_id"], record["task"]) for record in done] == [
        ("trace-me-42", "auth.welcome_email")
    ]


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def _read_articles_on_connections_of_their_own(server: ConduitServer, requests: int) -> None:
    """A connection each, so that every worker answers some."""
    for _ in range(requests):
        with httpx.Client(trust_env=False, timeout=10) as client:
            assert client.get(f"{server.api_url}/articles?limit=1").status_code == 200


def _until_logged(log: Path, event: str, count: int) -> None:
    """Until `event` is in the log `count` times (a job runs when it runs: on a loaded machine,
    seconds)."""
    deadline = time.monotonic() + JOB_DEADLINE_SECONDS
    while log.read_text().count(event) < count:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def test_production_logs_name_no_email_address(env: dict[str, str], tmp_path: Path) -> None:
    """A sign-up, a password-reset request and an email change, in production, with no SMTP
    server (so every email is a log line): no line of the API's or the worker's holds the
    old address or the new, and each email's line names its recipient by digest."""
    production = env | {"CONDUIT_ENV": "production"}
    old, new = "private@example.com", "moved@example.org"
    with ExitStack() as processes, httpx.Client(trust_env=False, timeout=10) as client:
        server = processes.enter_context(serving(production, tmp_path))
        logs = [server.log_path]
        if "TEST_DATABASE_URL" in os.environ:
            logs.append(processes.enter_context(working(production, tmp_path)).log_path)
        token = _register(client, server, "private", "private-sign-up")
        _until_logged(logs[-1], "email_logged", 1)
        reset = client.post(f"{server.api_url}/users/password-reset", json={"user": {"email": old}})
        assert reset.status_code == 202, reset.text
        # Sent before the address changes: the job looks the account up by it.
        _until_logged(logs[-1], "email_logged", 2)
        changed = client.put(
            f"{server.api_url}/user",
            json={"user": {"email": new}},
            headers={"Authorization": f"Token {token}"},
        )
        assert changed.status_code == 200, changed.text
        _until_logged(logs[-1], "email_logged", 3)

    text = "".join(log.read_text() for log in logs)
    records = [json.loads(line) for line in text.splitlines()]
    emails = [record for record in records if record["event"].startswith("email_logged")]
    assert sorted(record["subject"] for record in emails) == [
        "Reset your Conduit password",
        "The email address of your Conduit account changed",
        "Welcome to Conduit",
    ]
    # All three went to the old address: the notice of the change goes there too.
    assert {record["recipient_digest"] for record in emails} == {
        hashlib.sha256(old.encode()).hexdigest()
    }
    assert old not in text
    assert new not in text


def test_metrics_count_every_request_of_every_worker_and_need_the_token(
    env: dict[str, str], tmp_path: Path
) -> None:
    """With two workers, a scrape answered by either counts the requests both served, by route
    template and status; with CONDUIT_METRICS_TOKEN, a scrape needs it."""
    requests = 40
    metrics_env = env | {"CONDUIT_METRICS_TOKEN": "scrape-token-0123"}
    with serving(metrics_env, tmp_path, workers=2) as server:
        _read_articles_on_connections_of_their_own(server, requests)
        with httpx.Client(trust_env=False, timeout=10) as client:
            refused = client.get(f"{server.base_url}/metrics")
            scrapes = [
                client.get(
                    f"{server.base_url}/metrics",
                    headers={"Authorization": "Bearer scrape-token-0123"},
                )
                for _ in range(4)
            ]
        log = server.log_path.read_text()

    assert refused.status_code == 401
    assert refused.json() == {"errors": {"token": ["is missing or invalid"]}}
    assert {scrape.status_code for scrape in scrapes} == {200}
    assert log.count("Application startup complete.") == 2
    for scrape in scrapes:
        counts = _samples(scrape.text, "conduit_http_request_duration_seconds_count")
        key = (("method", "GET"), ("route", "/api/articles"), ("status", "200"))
        assert counts[key] == requests
        assert _samples(scrape.text, "conduit_db_pool_connections_in_use") == {(): 0.0}
        assert (("status", "queued"),) in _samples(scrape.text, "conduit_jobs")
        assert (("decision", "allowed"), ("policy", "anonymous")) in _samples(
            scrape.text, "conduit_rate_limit_decisions_total"
        )


def test_in_production_metrics_are_off_the_api_port_and_on_their_own(
    env: dict[str, str], tmp_path: Path
) -> None:
    """With two workers in production, `/metrics` is not on the serving port; on
    CONDUIT_METRICS_PORT, the supervisor answers what a scrape of the serving port would:
    every worker's requests, the pools, the job queue's depth from the database."""
    requests = 20
    metrics_port = free_port()
    production = env | {"CONDUIT_ENV": "production", "CONDUIT_METRICS_PORT": str(metrics_port)}
    with serving(production, tmp_path, workers=2) as server:
        _read_articles_on_connections_of_their_own(server, requests)
        with httpx.Client(trust_env=False, timeout=10) as client:
            public = client.get(f"{server.base_url}/metrics")
            scrapes = [client.get(f"http://127.0.0.1:{metrics_port}/metrics") for _ in range(2)]

    assert public.status_code == 404
    for scrape in scrapes:
        assert scrape.status_code == 200
        assert "server" not in scrape.headers
        counts = _samples(scrape.text, "conduit_http_request_duration_seconds_count")
        key = (("method", "GET"), ("route", "/api/articles"), ("status", "200"))
        assert counts[key] == requests
        assert _samples(scrape.text, "conduit_db_pool_connections_in_use") == {(): 0.0}
        assert (("status", "queued"),) in _samples(scrape.text, "conduit_jobs")


def test_jobs_piling_up_without_a_worker_are_a_metric_and_a_warning(
    env: dict[str, str], tmp_path: Path
) -> None:
    """No `conduit worker` runs (and on SQLite the API runs no jobs either): with two workers,
    the API warns once the oldest job has waited past the threshold, and every scrape,
    whichever worker answers it, reports that wait."""
    piling = env | {
        "CONDUIT_JOBS_RUN_IN_API": "false",
        "CONDUIT_JOBS_WAIT_WARNING_SECONDS": "0.5",
        "CONDUIT_JOBS_WAIT_CHECK_SECONDS": "0.2",
    }
    with (
        serving(piling, tmp_path, workers=2) as server,
        httpx.Client(trust_env=False, timeout=10) as client,
    ):
        _register(client, server, "waiting", "waiting-1")
        deadline = time.monotonic() + 30
        while "jobs_waiting" not in server.log_path.read_text():
            assert time.monotonic() < deadline, "no jobs_waiting line within 30 s"
            time.sleep(0.1)
        scrapes = [client.get(f"{server.base_url}/metrics") for _ in range(4)]
        records = _stopped(server)

    warning = next(record for record in records if record["event"] == "jobs_waiting")
    assert warning["level"] == "warning"
    assert warning["queued"] == 1
    assert warning["detail"].startswith(
        "the oldest job due has waited more than 0.5 s (CONDUIT_JOBS_WAIT_WARNING_SECONDS): "
        "is a `conduit worker` running"
    )
    for scrape in scrapes:
        assert _samples(scrape.text, "conduit_jobs_oldest_queued_age_seconds")[()] > 0.5
        assert _samples(scrape.text, "conduit_jobs")[(("status", "queued"),)] == 1


@pytest.mark.one_pass
def test_an_unreachable_database_and_store_are_named_at_start_and_fail_readiness(
    tmp_path: Path,
) -> None:
    """The server starts, saying at once which variables point where nothing answers;
    readiness and every request answer 503 with `Retry-After`; the log says why once, not a
    traceback per request."""
    database_port, redis_port = free_port(), free_port()
    down = {
        **os.environ,
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{database_port}/conduit",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "CONDUIT_SECRET_KEY": SECRET_KEY,
    }
    log_path = tmp_path / "down.log"
    port = free_port()
    with _process(["serve", "--port", str(port)], down, log_path) as process:
        base = f"http://127.0.0.1:{port}"
        _wait_for_port(port, process)
        with httpx.Client(trust_env=False, timeout=10) as client:
            assert client.get(f"{base}/health/live").status_code == 200
            answers = [client.get(f"{base}/health/ready") for _ in range(5)]
            answers += [client.get(f"{base}/api/articles") for _ in range(5)]
    log = log_path.read_text()

    assert {answer.status_code for answer in answers} == {503}
    assert answers[0].json() == {
        "errors": {"database": ["is unavailable"], "redis": ["is unavailable"]}
    }
    assert answers[-1].json() == {"errors": {"database": ["is unavailable, retry shortly"]}}
    assert answers[-1].headers["retry-after"] == "5"
    assert "Traceback" not in log
    lines = log.splitlines()
    [database_at_start] = [line for line in lines if "database_unreachable" in line]
    assert (
        f"DATABASE_URL: connection refused by 127.0.0.1:{database_port}: is PostgreSQL running "
        "there?" in database_at_start
    )
    [store_at_start] = [line for line in lines if "shared_store_unreachable" in line]
    assert (
        f"REDIS_URL: connection refused by 127.0.0.1:{redis_port}: is Redis running there, on "
        "that port?" in store_at_start
    )
    warnings = [line for line in lines if "database_unavailable" in line]
    assert len(warnings) == 1
    assert "connection refused by 127.0.0.1" in warnings[0]
    [store_down] = [line for line in lines if "shared_store_unavailable" in line]
    assert f"REDIS_URL: connection refused by 127.0.0.1:{redis_port}" in store_down


def test_the_worker_refuses_a_database_that_does_not_answer() -> None:
    port = free_port()
    worker = _run(
        ["worker"],
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/conduit",
        CONDUIT_SECRET_KEY=SECRET_KEY,
    )

    assert worker.returncode == 1
    assert worker.stderr == ""
    [line] = worker.stdout.splitlines()
    assert "database_unreachable" in line
    assert f"DATABASE_URL: connection refused by 127.0.0.1:{port}" in line


def _postgres_server() -> str:
    server = os.environ.get("TEST_DATABASE_URL")
    if server is None:
        pytest.skip("TEST_DATABASE_URL is not set (CI sets it)")
    return server


@pytest.mark.parametrize(("revision", "workers"), [(None, 2), ("6b2e0c4f9a17", 1)])
def test_serve_refuses_a_schema_older_than_the_release_before_it_listens(
    revision: str | None, workers: int
) -> None:
    """Never migrated, or migrated by an earlier release: one line naming `conduit migrate`,
    before any server or worker process starts."""
    server = _postgres_server()
    database = asyncio.run(create_postgres_database(server))
    port = free_port()
    try:
        if revision is not None:
            asyncio.run(stamp_revision(database, revision))
        serve = _run(
            ["serve", "--port", str(port), "--workers", str(workers)],
            DATABASE_URL=database,
            CONDUIT_SECRET_KEY=SECRET_KEY,
        )
    finally:
        asyncio.run(drop_postgres_database(server, database))

    assert serve.returncode == 1
    assert serve.stderr == ""
    [line] = serve.stdout.splitlines()
    assert "The database is not migrated to this release: run `conduit migrate` first." in line


def test_serve_and_worker_run_on_a_schema_a_later_release_migrated(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A rolling deploy: the new release migrated first, this one's processes still start,
    each saying so once, and readiness reports the schema as newer."""
    _postgres_server()
    asyncio.run(stamp_revision(env["DATABASE_URL"], "0a1b2c3d4e5f"))
    with (
        serving(env, tmp_path) as server,
        working(env, tmp_path) as worker,
        httpx.Client(trust_env=False, timeout=10) as client,
    ):
        ready = client.get(f"{server.base_url}/health/ready")
        records = _stopped(server)

    assert ready.status_code == 200
    assert ready.json()["checks"]["schema"] == "newer"
    [newer] = [record for record in records if record["event"] == "schema_newer"]
    assert (newer["revision"], newer["release_revision"]) == ("0a1b2c3d4e5f", SCHEMA_REVISION)
    assert worker.log().count("schema_newer") == 1


@pytest.mark.one_pass
def test_the_embedded_default_creates_and_migrates_its_database_file(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A stranger's first `./dev serve`, with no database yet (the other end-to-end tests start
    on a copy of a migrated one): the file is created, migrated, and the API answers."""
    path = tmp_path / "first.db"
    first = env | {"DATABASE_URL": f"sqlite+aiosqlite:///{path}"}
    with serving(first, tmp_path) as server, httpx.Client(trust_env=False, timeout=10) as client:
        ready = client.get(f"{server.base_url}/health/ready")
        _register(client, server, "first", "first-request")
        records = _stopped(server)

    applied = [record["revision"] for record in records if record["event"] == "migration_applied"]
    assert applied[-1] == SCHEMA_REVISION
    assert ready.status_code == 200
    assert ready.json()["checks"]["schema"] == "ok"


def test_the_otel_variables_turn_tracing_on(env: dict[str, str], tmp_path: Path) -> None:
    """With OTEL_TRACES_EXPORTER=console, each request is a span, and its statements too."""
    traced = env | {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "conduit-e2e"}
    with serving(traced, tmp_path) as server, httpx.Client(trust_env=False, timeout=10) as client:
        _register(client, server, "spanned", "span-1")
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=30)
    log = server.log_path.read_text()

    assert '"service.name": "conduit-e2e"' in log
    assert '"http.route": "/api/users"' in log
    assert '"db.system' in log


@contextmanager
def _process(
    arguments: list[str], env: dict[str, str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "conduit", *arguments],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            process.terminate()
            process.wait(timeout=30)


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVER_READY_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail("the server did not listen")


def _run(arguments: list[str], **variables: str) -> subprocess.CompletedProcess[str]:
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CONDUIT_", "DATABASE_URL"))
    }
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "conduit", *arguments],
        cwd=REPO_ROOT,
        env=environ | variables,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.one_pass
@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"CONDUIT_SECRET_KEY": "too-short-secret-value"},
            "CONDUIT_SECRET_KEY: signing keys must have at least 32 bytes",
        ),
        (
            {"CONDUIT_ENV": "production"},
            "CONDUIT_SECRET_KEY must be set in production",
        ),
        (
            {"DATABASE_URL": "mysql://root:too-short-secret-value@localhost/conduit"},
            "DATABASE_URL: mysql:// is not supported",
        ),
        (
            {"DATABASE_URL": "postgresql+psycopg://u:too-short-secret-value@localhost/conduit"},
            "DATABASE_URL: postgresql+psycopg:// is not supported",
        ),
        (
            {"CONDUIT_DB_POOL_SIZE": "lots"},
            "CONDUIT_DB_POOL_SIZE: Input should be a valid integer",
        ),
    ],
)
def test_a_refused_configuration_is_two_lines_without_the_value(
    variables: dict[str, str], expected: str
) -> None:
    result = _run(["serve"], **variables)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == ["Invalid configuration:", result.stderr.splitlines()[1]]
    assert expected in result.stderr
    assert "too-short-secret-value" not in result.stderr


@pytest.mark.one_pass
def test_an_unreachable_or_unknown_database_is_one_line() -> None:
    refused = _run(["migrate"], DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1
    assert refused.stderr.startswith("Database unavailable: connection refused by 127.0.0.1:")

    unresolved = _run(["migrate"], DATABASE_URL="postgresql://postgres:pw@no-such-host.invalid/x")
    assert unresolved.returncode == 1
    assert unresolved.stderr == (
        "Database unavailable: cannot resolve the host 'no-such-host.invalid' of DATABASE_URL\n"
    )


def test_an_unknown_postgres_database_and_an_unmigrated_one_are_one_line() -> None:
    server = os.environ.get("TEST_DATABASE_URL")
    if server is None:
        pytest.skip("TEST_DATABASE_URL is not set (CI sets it)")
    unknown = server.rsplit("/", 1)[0] + "/conduit_no_such_database"
    refused = _run(["jobs", "list"], DATABASE_URL=unknown, CONDUIT_SECRET_KEY=SECRET_KEY)
    assert refused.returncode == 1
    assert refused.stderr == (
        'Database unavailable: database "conduit_no_such_database" does not exist on '
        f"{unknown.split('@')[1].rsplit('/', 1)[0]}: create it, or fix DATABASE_URL\n"
    )

    empty = asyncio.run(create_postgres_database(server))
    try:
        worker = _run(["worker"], DATABASE_URL=empty, CONDUIT_SECRET_KEY=SECRET_KEY)
    finally:
        asyncio.run(drop_postgres_database(server, empty))
    assert worker.returncode == 1
    assert worker.stderr == ""
    assert "Traceback" not in worker.stdout
    last = worker.stdout.splitlines()[-1]
    assert "The database is not migrated to this release: run `conduit migrate` first." in last


@pytest.mark.one_pass
def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(
            ["serve", "--port", str(port)],
            DATABASE_URL=f"sqlite:///{tmp_path / 'port.db'}",
        )

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert f"Port {port} on 127.0.0.1 is in use by another process" in lines[0]
