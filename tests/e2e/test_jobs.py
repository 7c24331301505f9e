"""Jobs across real processes: `conduit serve` and `conduit worker` on PostgreSQL, the embedded
default across a restart, and QStash delivering to a real server."""

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from conduit.jobs import Job
from tests import qstash_server
from tests.e2e.conftest import (
    REPO_ROOT,
    ConduitServer,
    database_env,
    pooled_env,
    serving,
    working,
)
from tests.smtp import Mailbox
from tests.threaded import free_port

pytestmark = pytest.mark.e2e

PASSWORD = "password123"
# Far beyond what a job takes: only one that never runs waits this long.
JOB_DEADLINE_SECONDS = 60


@pytest.fixture
def postgres_env(tmp_path: Path, mailbox: Mailbox) -> Iterator[dict[str, str]]:
    _needs_postgres(mailbox)
    with database_env(tmp_path) as env:
        yield env | _jobs_env(mailbox)


@pytest.fixture
def pooled_postgres_env(tmp_path: Path, mailbox: Mailbox) -> Iterator[dict[str, str]]:
    """The API and the worker behind PgBouncer in transaction mode; the worker's LISTEN and
    the migration past it (`DATABASE_DIRECT_URL`)."""
    _needs_postgres(mailbox)
    with pooled_env(tmp_path) as env:
        yield env | _jobs_env(mailbox)


def _needs_postgres(mailbox: Mailbox) -> None:
    if not os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("TEST_DATABASE_URL is not set (CI sets it): workers need PostgreSQL")
    mailbox.clear()
    mailbox.release()


def _jobs_env(mailbox: Mailbox) -> dict[str, str]:
    return {
        "CONDUIT_RATE_LIMIT_SIGN_IN__QUOTA": "10000",
        "CONDUIT_SMTP_HOST": mailbox.host,
        "CONDUIT_SMTP_PORT": str(mailbox.port),
        "CONDUIT_SMTP_STARTTLS": "false",
        "CONDUIT_JOBS_HEARTBEAT_TIMEOUT_SECONDS": "2",
        "CONDUIT_JOBS_RETRY_BASE_SECONDS": "0.05",
        "CONDUIT_JOBS_MAX_ATTEMPTS": "2",
    }


def _register(client: httpx.Client, server: ConduitServer, username: str) -> str:
    response = client.post(
        f"{server.api_url}/users",
        json={
            "user": {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
        },
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["user"]["token"]
    return token


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


def _query(env: dict[str, str], sql: str, *arguments: object) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        url = env["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(url)
        try:
            rows: list[asyncpg.Record] = await connection.fetch(sql, *arguments)
            return rows
        finally:
            await connection.close()

    return asyncio.run(fetch())


@pytest.mark.parametrize("where", ["direct", "pgbouncer"])
def test_a_follower_is_notified_by_a_separate_worker(
    where: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The notification's latency is printed: a busy machine makes it anything (the worker is
    woken by PostgreSQL's NOTIFY; docs/benchmarks.md has it measured)."""
    env: dict[str, str] = request.getfixturevalue(
        "postgres_env" if where == "direct" else "pooled_postgres_env"
    )
    with (
        serving(env, tmp_path) as server,
        working(env, tmp_path),
        httpx.Client(timeout=5, trust_env=False) as client,
    ):
        author = _register(client, server, "author")
        follower = _register(client, server, "follower")
        response = client.post(f"{server.api_url}/profiles/author/follow", headers=_auth(follower))
        assert response.status_code == 200
        article = {"title": "Hot off the press", "description": "d", "body": "b", "tagList": []}

        published_at = time.monotonic()
        response = client.post(
            f"{server.api_url}/articles", headers=_auth(author), json={"article": article}
        )
        assert response.status_code == 201
        kinds: list[str] = []
        while time.monotonic() - published_at < JOB_DEADLINE_SECONDS and (
            "article.published" not in kinds
        ):
            notifications = client.get(
                f"{server.api_url}/notifications", headers=_auth(follower)
            ).json()["notifications"]
            kinds = [notification["kind"] for notification in notifications]
            time.sleep(0.02)
        latency = time.monotonic() - published_at

    assert "article.published" in kinds, f"no notification within {JOB_DEADLINE_SECONDS} s"
    print(f"notification reached the follower {latency * 1000:.0f} ms after publishing")  # noqa: T201


def test_a_killed_worker_s_job_is_finished_by_another_and_sends_once(
    postgres_env: dict[str, str], tmp_path: Path, mailbox: Mailbox
) -> None:
    with (
        serving(postgres_env, tmp_path) as server,
        working(postgres_env, tmp_path, "first") as first,
        httpx.Client(timeout=5, trust_env=False) as client,
    ):
        mailbox.hold()
        _register(client, server, "patient")
        # The first worker is in the middle of sending the welcome email...
        mailbox.wait_held(timeout=JOB_DEADLINE_SECONDS)
        with working(postgres_env, tmp_path, "second"):
            # ... when it dies, without a word to anyone.
            first.process.send_signal(signal.SIGKILL)
            first.process.wait()
            mailbox.wait_dropped()
            mailbox.release()

            [message] = mailbox.wait_for(1, timeout=JOB_DEADLINE_SECONDS)
            # Once the job has left the queue (done jobs go to its log), nothing can send it
            # again.
            _wait_until_queue_holds(postgres_env, [])

    assert message["To"] == "patient@example.com"
    assert len(mailbox.messages) == 1
    [row] = _query(postgres_env, "SELECT count(*) AS sent FROM sent_emails")
    assert row["sent"] == 1


def test_two_workers_run_each_job_once(
    postgres_env: dict[str, str], tmp_path: Path, mailbox: Mailbox
) -> None:
    users = 30
    with (
        serving(postgres_env, tmp_path) as server,
        working(postgres_env, tmp_path, "first"),
        working(postgres_env, tmp_path, "second"),
        httpx.Client(timeout=5, trust_env=False) as client,
    ):
        for n in range(users):
            _register(client, server, f"user{n}")
        messages = mailbox.wait_for(users, timeout=JOB_DEADLINE_SECONDS)
        _wait_until_queue_holds(postgres_env, [])

    assert len(mailbox.messages) == users
    assert len({message["Message-ID"] for message in messages}) == users
    assert {message["To"] for message in messages} == {f"user{n}@example.com" for n in range(users)}


def _conduit(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "conduit", *arguments],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _wait_until_queue_holds(env: dict[str, str], statuses: list[str]) -> None:
    """Until the queue holds jobs of these statuses and nothing else."""
    deadline = time.monotonic() + JOB_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        held = [row["status"] for row in _query(env, "SELECT status FROM pgqueuer")]
        if held == statuses:
            return
        time.sleep(0.1)
    pytest.fail(f"the queue holds {held}, not {statuses}")


def test_a_worker_logs_its_stop_the_signal_and_the_runs(tmp_path: Path, mailbox: Mailbox) -> None:
    """On either backend (PgQueuer on PostgreSQL, the embedded one on SQLite), SIGTERM stops a
    worker with one line saying so, and how many jobs it ran."""
    mailbox.clear()
    with database_env(tmp_path) as database:
        env = database | _jobs_env(mailbox) | {"CONDUIT_JOBS_RUN_IN_API": "false"}
        with serving(env, tmp_path) as server, httpx.Client(timeout=5, trust_env=False) as client:
            # Before the worker starts: one on SQLite looks for jobs every 30 s otherwise.
            _register(client, server, "stopping")
            with working(env, tmp_path) as worker:
                mailbox.wait_for(1, timeout=15)
                worker.process.send_signal(signal.SIGTERM)
                assert worker.process.wait(timeout=30) == 0

    [stopped] = [line for line in worker.log().splitlines() if "worker_stopped" in line]
    assert "worker_stopped: SIGTERM, 1 job runs, 0 failed" in stopped


def test_a_poison_job_is_held_as_failed_while_others_run_and_the_cli_handles_it(
    postgres_env: dict[str, str], tmp_path: Path, mailbox: Mailbox
) -> None:
    poison = Job(id=uuid.uuid4(), task="auth.welcome_email", arguments={"user_id": "x"})
    with (
        serving(postgres_env, tmp_path) as server,
        working(postgres_env, tmp_path),
        httpx.Client(timeout=5, trust_env=False) as client,
    ):
        _query(
            postgres_env,
            "INSERT INTO pgqueuer (priority, entrypoint, payload, status) "
            "VALUES (0, $1, $2, 'queued')",
            poison.task,
            poison.encode(),
        )
        _register(client, server, "healthy")
        mailbox.wait_for(1, timeout=JOB_DEADLINE_SECONDS)
        _wait_until_queue_holds(postgres_env, ["failed"])

        listed = _conduit(postgres_env, "jobs", "list", "--status", "failed").stdout
        [line] = listed.splitlines()
        job_id, task, status = line.split()[:3]
        assert (task, status) == ("auth.welcome_email", "failed")
        assert "attempts=2" in line

        retried = _conduit(postgres_env, "jobs", "retry", job_id)
        assert retried.stdout.strip() == "1 job(s) queued again.", retried.stderr
        _wait_until_queue_holds(postgres_env, ["failed"])
        discarded = _conduit(postgres_env, "jobs", "discard", job_id)
        assert discarded.stdout.strip() == "1 job(s) discarded.", discarded.stderr
        assert _query(postgres_env, "SELECT id FROM pgqueuer") == []

    assert [message["To"] for message in mailbox.messages] == ["healthy@example.com"]


def test_the_embedded_default_loses_no_job_across_a_restart(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    if os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("the embedded backend runs on SQLite")
    mailbox.clear()
    with database_env(tmp_path) as database:
        env = database | _jobs_env(mailbox)
        with (
            serving(env | {"CONDUIT_JOBS_RUN_IN_API": "false"}, tmp_path, "first") as server,
            httpx.Client(timeout=5, trust_env=False) as client,
        ):
            _register(client, server, "durable")
        assert mailbox.messages == []

        with serving(env, tmp_path, "second"):
            [message] = mailbox.wait_for(1, timeout=JOB_DEADLINE_SECONDS)

    assert message["To"] == "durable@example.com"


def test_qstash_delivers_committed_jobs_and_schedules_to_a_real_server(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    mailbox.clear()
    current, next_ = "sig_current_" + secrets.token_hex(16), "sig_next_" + secrets.token_hex(16)
    port = free_port()
    callback = f"http://127.0.0.1:{port}/jobs/qstash"
    with (
        qstash_server.serving(secrets.token_urlsafe(16), current, next_) as qstash,
        database_env(tmp_path) as database,
    ):
        env = (
            database
            | _jobs_env(mailbox)
            | {
                "QSTASH_TOKEN": qstash.token,
                "QSTASH_CURRENT_SIGNING_KEY": current,
                "QSTASH_NEXT_SIGNING_KEY": next_,
                "QSTASH_URL": qstash.url,
                "CONDUIT_JOBS_QSTASH_CALLBACK_URL": callback,
            }
        )
        with (
            serving(env, tmp_path, port=port) as server,
            httpx.Client(timeout=5, trust_env=False) as client,
        ):
            _register(client, server, "serverless")
            [message] = mailbox.wait_for(1, timeout=JOB_DEADLINE_SECONDS)
            assert set(qstash.schedules) == {
                "conduit-auth.purge",
                "conduit-api_keys.purge",
                "conduit-jobs.qstash_purge",
            }
            qstash.fire("conduit-auth.purge")
            asyncio.run(qstash.wait_delivered(2))

        worker = _conduit(env, "worker")

    assert message["To"] == "serverless@example.com"
    # The welcome email's job, published once, and the purge its schedule fired.
    assert len(qstash.published) == 2
    assert [delivery.status for delivery in qstash.deliveries] == [204, 204]
    assert worker.returncode == 2
    assert "QStash" in worker.stderr
