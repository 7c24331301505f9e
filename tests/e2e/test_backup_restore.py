"""Backup and restore as docs/deployment.md tells an operator to do them, on the database of
the pass: `pg_dump -Fc` then `pg_restore` into a new database on PostgreSQL, `sqlite3 ...
".backup ..."` on SQLite, taken while the API serves; then `conduit migrate` and a server on
the restored database, which answers with what was written before the backup, and not after."""

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.databases import create_postgres_database, drop_postgres_database
from tests.e2e.conftest import REPO_ROOT, ConduitServer, database_env, serving

pytestmark = pytest.mark.e2e

TOOL_TIMEOUT_SECONDS = 120
PASSWORD = "a-password-to-restore"


def _run(argv: list[str], env: dict[str, str] | None = None) -> None:
    completed = subprocess.run(  # noqa: S603
        argv,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.returncode == 0, f"{' '.join(argv)}:\n{completed.stdout}{completed.stderr}"


def _libpq(url: str) -> str:
    """The database URL as pg_dump and pg_restore take it: no SQLAlchemy driver name."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    assert database is not None
    return Path(database)


def _back_up(database_url: str, directory: Path) -> Path:
    if database_url.startswith("sqlite"):
        if shutil.which("sqlite3") is None:
            pytest.skip("the sqlite3 command-line shell is not installed (apt-get install sqlite3)")
        backup = directory / "conduit-backup.db"
        _run(["sqlite3", str(_sqlite_path(database_url)), f".backup '{backup}'"])
        return backup
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump and pg_restore (PostgreSQL's client programs) are not on PATH")
    backup = directory / "conduit.dump"
    _run(["pg_dump", "--format=custom", f"--file={backup}", _libpq(database_url)])
    return backup


@contextmanager
def _restored(backup: Path, database_url: str, directory: Path) -> Iterator[str]:
    """The backup restored into a database of its own; yields its URL."""
    if database_url.startswith("sqlite"):
        restored = directory / "restored" / "conduit.db"
        restored.parent.mkdir()
        shutil.copyfile(backup, restored)
        yield f"sqlite+aiosqlite:///{restored}"
        return
    server_url = os.environ["TEST_DATABASE_URL"]
    url = asyncio.run(create_postgres_database(server_url))
    try:
        _run(["pg_restore", "--no-owner", f"--dbname={_libpq(url)}", str(backup)])
        yield url
    finally:
        asyncio.run(drop_postgres_database(server_url, url))


def _write(server: ConduitServer) -> tuple[str, str]:
    """A user, an article, its comment and a favorite, through the API; the token and slug."""
    with httpx.Client(base_url=server.api_url, timeout=10, trust_env=False) as client:
        user = {"username": "jake", "email": "jake@example.com", "password": PASSWORD}
        token = client.post("/users", json={"user": user}).json()["user"]["token"]
        headers = {"Authorization": f"Token {token}"}
        article = {"title": "Backed up", "description": "d", "body": "b", "tagList": ["ops"]}
        created = client.post("/articles", headers=headers, json={"article": article})
        assert created.status_code == 201, server.diagnostics()
        slug: str = created.json()["article"]["slug"]
        comment = client.post(
            f"/articles/{slug}/comments", headers=headers, json={"comment": {"body": "kept"}}
        )
        favorite = client.post(f"/articles/{slug}/favorite", headers=headers)
        assert (comment.status_code, favorite.status_code) == (201, 200), server.diagnostics()
    return token, slug


def test_a_backup_taken_while_serving_restores_to_a_working_api(tmp_path: Path) -> None:
    with database_env(tmp_path) as env:
        with serving(env, tmp_path, "original") as original:
            token, slug = _write(original)
            backup = _back_up(env["DATABASE_URL"], tmp_path)
            after = {"title": "After the backup", "description": "d", "body": "b"}
            later = httpx.post(
                f"{original.api_url}/articles",
                headers={"Authorization": f"Token {token}"},
                json={"article": after},
                timeout=10,
            )
            assert later.status_code == 201, original.diagnostics()

        with _restored(backup, env["DATABASE_URL"], tmp_path) as url:
            # A fresh cache: the old one holds documents of the state after the backup.
            restored_env = env | {"DATABASE_URL": url}
            if "CONDUIT_REDIS_KEY_PREFIX" in env:
                restored_env["CONDUIT_REDIS_KEY_PREFIX"] = f"conduit-e2e-{uuid.uuid4().hex[:12]}"
            _run([sys.executable, "-m", "conduit", "migrate"], restored_env)
            with (
                serving(restored_env, tmp_path, "restored") as restored,
                httpx.Client(base_url=restored.api_url, timeout=10, trust_env=False) as client,
            ):
                me = client.get("/user", headers={"Authorization": f"Token {token}"})
                article = client.get(f"/articles/{slug}").json()["article"]
                comments = client.get(f"/articles/{slug}/comments").json()["comments"]
                listing = client.get("/articles").json()
                login = client.post(
                    "/users/login",
                    json={"user": {"email": "jake@example.com", "password": PASSWORD}},
                )

    # The session, the article with its tag, favorite and comment, the count kept by triggers.
    assert me.status_code == 200, restored.diagnostics()
    assert me.json()["user"]["username"] == "jake"
    assert (article["tagList"], article["favoritesCount"]) == (["ops"], 1)
    assert [comment["body"] for comment in comments] == ["kept"]
    assert [item["slug"] for item in listing["articles"]] == [slug]
    assert listing["articlesCount"] == 1
    assert login.status_code == 200
