"""An upgrade as an operator runs it: the previous release (the newest in CHANGELOG.md whose schema
differs from this code's) serves a database it migrated, with data made through its own API; it
keeps writing while this code's `conduit migrate` runs and after; then this code serves the
database, and every row and count the old release wrote reads back through this code's API, and
every credential it issued still works.

The previous release is installed from git (`git archive` of its commit) into a virtual
environment of its own, with its own lock (`uv sync --locked`). Without git history or a network
(a tarball, a shallow clone, no PyPI and no uv cache) the test is skipped, saying why.
"""

import asyncio
import io
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from conduit import cli
from conduit.database import SCHEMA_REVISION
from tests.e2e.conduit_api import PASSWORD, Api, Servers, User, unique
from tests.e2e.conftest import (
    REPO_ROOT,
    ConduitServer,
    Installation,
    database_env,
    migrate,
    serving,
)
from tests.releases import CHANGELOG, previous_release

pytestmark = [pytest.mark.e2e, pytest.mark.upgrade]

INSTALL_TIMEOUT = 600.0


def _uv() -> Path | None:
    installed = REPO_ROOT / ".tools" / "bin" / "uv"
    found = installed if installed.is_file() else shutil.which("uv")
    return None if found is None else Path(found)


def _run(argv: list[str], cwd: Path) -> tuple[bytes, str | None]:
    """`argv`'s output, or None and the last line it wrote on standard error."""
    # The variables of the `uv run` that may be running these tests name its environment.
    env = {name: value for name, value in os.environ.items() if not name.startswith("VIRTUAL_ENV")}
    done = subprocess.run(  # noqa: S603
        argv, cwd=cwd, env=env, capture_output=True, timeout=INSTALL_TIMEOUT, check=False
    )
    if done.returncode == 0:
        return done.stdout, None
    lines = done.stderr.decode(errors="replace").strip().splitlines()
    return done.stdout, lines[-1] if lines else f"exit code {done.returncode}"


@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    """The previous release, installed in a directory of its own."""
    release = previous_release(CHANGELOG.read_text(), SCHEMA_REVISION)
    assert release.commit is not None
    git = shutil.which("git")
    uv = _uv()
    if git is None or uv is None:
        pytest.skip(f"release {release.version} is installed with git and uv, and one is missing")
    archive, failed = _run([git, "archive", "--format=tar", release.commit], REPO_ROOT)
    if failed:
        pytest.skip(f"no git history of release {release.version} ({release.commit}): {failed}")
    root = tmp_path_factory.mktemp(f"conduit-{release.version}")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    _, failed = _run([str(uv), "sync", "--locked", "--no-dev", "--compile-bytecode"], root)
    if failed:
        pytest.skip(
            f"release {release.version}'s locked dependencies could not be installed (no "
            f"network and no uv cache?): {failed}"
        )
    return Installation(python=root / ".venv" / "bin" / "python", root=root)


@dataclass
class Ledger:
    """Everything the old release was asked to write, to be read back through the new one."""

    users: list[User] = field(default_factory=list)
    follows: set[tuple[str, str]] = field(default_factory=set)
    # slug -> author, tags
    articles: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)
    favorites: dict[str, set[str]] = field(default_factory=dict)
    # slug -> [(comment id, author, body)]
    comments: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)

    async def round(self, api: Api) -> None:
        """A new user signs up, follows, publishes, favorites and comments; an older user
        favorites the new article and comments on it."""
        number = len(self.users)
        user = await api.register(f"writer{number}")
        self.users.append(user)
        older = self.users[number // 2]
        if older is not user:
            await api.write("POST", f"/profiles/{older.username}/follow", user)
            self.follows.add((user.username, older.username))
        tags = frozenset({f"round{number}", f"tag{number % 3}"})
        article = await api.publish(user, *sorted(tags))
        slug = article["slug"]
        self.articles[slug] = (user.username, tags)
        self.favorites[slug] = set()
        self.comments[slug] = []
        for reader in {user, older}:
            for target in {slug, next(iter(self.articles))}:
                if reader.username not in self.favorites[target]:
                    await api.write("POST", f"/articles/{target}/favorite", reader)
                    self.favorites[target].add(reader.username)
            comment = await api.comment(reader, slug, unique("comment"))
            self.comments[slug].append((comment["id"], reader.username, comment["body"]))


@dataclass(frozen=True)
class Credentials:
    """What the old release issued besides RealWorld tokens: an OAuth refresh token and an API
    key."""

    refresh_token: str
    api_key: str


async def _issue_credentials(http: httpx.AsyncClient, api_url: str, user: User) -> Credentials:
    oauth = await http.post(
        f"{api_url}/auth/token", data={"username": user.username, "password": PASSWORD}
    )
    assert oauth.status_code == 200, oauth.text
    key = await http.post(
        f"{api_url}/user/api-keys",
        headers=user.headers,
        json={"apiKey": {"name": "upgrade", "scopes": ["read"]}},
    )
    assert key.status_code == 201, key.text
    return Credentials(oauth.json()["refresh_token"], key.json()["apiKey"]["key"])


async def _check(api: Api, ledger: Ledger, credentials: Credentials) -> None:
    """Every row and count the old release wrote, through the new release's API."""
    page = await api.page("/articles?limit=100")
    assert page["articlesCount"] == len(ledger.articles), api.explain()
    assert {article["slug"] for article in page["articles"]} == set(ledger.articles)
    for slug, (author, tags) in ledger.articles.items():
        article = await api.article(slug)
        assert (article["author"]["username"], frozenset(article["tagList"])) == (author, tags)
        assert article["favoritesCount"] == len(ledger.favorites[slug]), slug
        comments = await api.comments(slug)
        assert sorted(
            (comment["id"], comment["author"]["username"], comment["body"]) for comment in comments
        ) == sorted(ledger.comments[slug])
    every_tag = {tag for _, tags in ledger.articles.values() for tag in tags}
    assert every_tag <= set(await api.tags())
    for tag in every_tag:
        tagged = [slug for slug, (_, tags) in ledger.articles.items() if tag in tags]
        assert (await api.page(f"/articles?tag={tag}"))["articlesCount"] == len(tagged), tag
    for user in ledger.users:
        favorited = [slug for slug, fans in ledger.favorites.items() if user.username in fans]
        page = await api.page(f"/articles?favorited={user.username}")
        assert page["articlesCount"] == len(favorited), user.username
        # Nobody was signed out: the old release's token still authenticates.
        followed = {followee for follower, followee in ledger.follows if follower == user.username}
        feed = await api.page("/articles/feed?limit=100", user)
        authors = {article["author"]["username"] for article in feed["articles"]}
        assert authors == followed & {author for author, _ in ledger.articles.values()}
    for follower, followee in ledger.follows:
        viewer = next(user for user in ledger.users if user.username == follower)
        assert (await api.profile(followee, viewer))["following"] is True
    refreshed = await api.http.post(
        f"{api.servers.reader.api_url}/auth/refresh",
        json={"refresh_token": credentials.refresh_token},
    )
    assert refreshed.status_code == 200, api.failed(refreshed)
    keyed = await api.http.get(
        f"{api.servers.reader.api_url}/articles/feed",
        headers={"X-API-Key": credentials.api_key},
    )
    assert keyed.status_code == 200, api.failed(keyed)


async def _write_while_migrating(
    old: ConduitServer, env: dict[str, str]
) -> tuple[Ledger, Credentials]:
    """The old release's writes: some before `conduit migrate`, more while it runs, and a
    couple after it, on the new schema, as until the rollout replaces the old processes."""
    ledger = Ledger()
    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
        writing = Api(http, Servers(writer=old, reader=old))
        for _ in range(3):
            await ledger.round(writing)
        credentials = await _issue_credentials(http, old.api_url, ledger.users[0])
        migrated = asyncio.create_task(asyncio.to_thread(migrate, env))
        while not migrated.done():
            await ledger.round(writing)
        await migrated
        for _ in range(2):
            await ledger.round(writing)
    return ledger, credentials


async def _read_back(new: ConduitServer, ledger: Ledger, credentials: Credentials) -> None:
    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
        await _check(Api(http, Servers(writer=new, reader=new)), ledger, credentials)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_upgrade_while_the_previous_release_writes_keeps_every_row_and_count(
    previous: Installation, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both databases in one test session, so that the previous release is installed once: the
    PostgreSQL pass runs both (the SQLite pass may leave this test out, `-m 'not upgrade'`)."""
    if backend == "sqlite":
        monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    elif "TEST_DATABASE_URL" not in os.environ:
        pytest.skip("TEST_DATABASE_URL is not set (CI sets it)")
    with database_env(tmp_path, installation=previous) as database:
        env = {**database, "CONDUIT_RATE_LIMIT_ENABLED": "false"}
        with serving(env, tmp_path, "previous", installation=previous) as old:
            ledger, credentials = asyncio.run(_write_while_migrating(old, env))
        with serving(env, tmp_path, "current") as new:
            asyncio.run(_read_back(new, ledger, credentials))
        recount = CliRunner().invoke(cli.app, ["recount"], env=env)
    assert recount.output == f"Article total: {len(ledger.articles)}, right.\n"
