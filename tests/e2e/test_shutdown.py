"""SIGTERM under load loses no accepted request: a real `conduit serve` process, written to and
read from by several client threads, is sent SIGTERM; the requests it is serving finish, new
connections are refused, it exits with 0, and every write it acknowledged is there afterwards.

A client of a server being stopped may see a response (the one it would have had anyway) or a
refused connection (the request never reached the server, and is safe to send again). Any other
failure, a reset or a connection closed without a response, is a request sent on a connection
the server had accepted, then dropped: the client cannot tell whether it was carried out.

The clients open a connection per request (`Connection: close`), which exercises the listening
socket and connections accepted but not yet read, or keep theirs alive, which exercises idle
keep-alive connections; with `--workers 2`, the supervisor that holds the listening socket too.
"""

import itertools
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import pytest

from tests.e2e.conftest import ConduitServer, database_env, serving

pytestmark = pytest.mark.e2e

Operation = Literal["register", "write", "read"]
Connections = Literal["one per request", "keep-alive"]
EXPECTED_STATUS: dict[Operation, int] = {"register": 201, "write": 201, "read": 200}

PASSWORD = "password123"
# What each client thread sends, over and over. Registrations hash a password (argon2, tens
# of ms, one at a time per process): they queue up, so that some are under way whenever the
# signal arrives. Writes and reads keep connections and requests arriving without a pause.
REGISTERING: tuple[Operation, ...] = ("register",)
WRITING_AND_READING: tuple[Operation, ...] = ("write", "read", "read")
ROUNDS = (REGISTERING,) * 2 + (WRITING_AND_READING,) * 6
LOAD_BEFORE_SIGNAL_SECONDS = 1.0
GRACE_SECONDS = 5
# After the grace period: the application's shutdown and the interpreter's exit.
EXIT_MARGIN_SECONDS = 5
REQUEST_TIMEOUT_SECONDS = GRACE_SECONDS + EXIT_MARGIN_SECONDS
PAGE_SIZE = 100


@dataclass(frozen=True)
class Outcome:
    operation: Operation
    # The username registered or the title of the article written.
    name: str
    started: float
    finished: float
    status: int | None = None
    error: httpx.TransportError | None = None

    @property
    def refused(self) -> bool:
        """The connection was refused: the server never accepted the request."""
        return isinstance(self.error, httpx.ConnectError)

    @property
    def dropped(self) -> bool:
        """Sent on an accepted connection, and no response came."""
        return self.error is not None and not self.refused

    @property
    def label(self) -> str:
        if self.status is not None:
            return f"{self.operation} {self.status}"
        return f"{self.operation} {type(self.error).__name__}: {self.error}"


class Load:
    """A client thread per round of `ROUNDS`, each sending its round over and over until the
    server refuses its connection after the signal (or until a deadline)."""

    def __init__(self, server: ConduitServer, token: str, connections: Connections) -> None:
        self.server = server
        self.token = token
        self.connections = connections
        self.signalled = threading.Event()
        self.signalled_at = float("inf")
        self.deadline = float("inf")
        self._outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._drive, args=(number, round_), daemon=True)
            for number, round_ in enumerate(ROUNDS)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def signal(self, signum: signal.Signals) -> None:
        self.signalled_at = time.monotonic()
        self.deadline = self.signalled_at + GRACE_SECONDS + EXIT_MARGIN_SECONDS
        self.signalled.set()
        self.server.process.send_signal(signum)

    def join(self) -> list[Outcome]:
        for thread in self._threads:
            thread.join(timeout=GRACE_SECONDS + EXIT_MARGIN_SECONDS + REQUEST_TIMEOUT_SECONDS)
        assert not any(thread.is_alive() for thread in self._threads), "a client never ended"
        with self._lock:
            return list(self._outcomes)

    def _drive(self, number: int, round_: tuple[Operation, ...]) -> None:
        with httpx.Client(
            base_url=self.server.api_url, timeout=REQUEST_TIMEOUT_SECONDS, trust_env=False
        ) as client:
            for sequence, operation in enumerate(itertools.cycle(round_)):
                if time.monotonic() > self.deadline:
                    return
                outcome = self._send(client, operation, f"load{number}x{sequence}")
                with self._lock:
                    self._outcomes.append(outcome)
                if outcome.refused and self.signalled.is_set():
                    return

    def _send(self, client: httpx.Client, operation: Operation, name: str) -> Outcome:
        headers = {"Authorization": f"Token {self.token}"}
        if self.connections == "one per request":
            headers["Connection"] = "close"
        started = time.monotonic()
        try:
            if operation == "register":
                user = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
                response = client.post("/users", json={"user": user}, headers=headers)
            elif operation == "write":
                article = {"title": name, "description": "d", "body": "b", "tagList": ["load"]}
                response = client.post("/articles", json={"article": article}, headers=headers)
            else:
                response = client.get("/articles", headers=headers)
        except httpx.TransportError as error:
            return Outcome(operation, name, started, time.monotonic(), error=error)
        return Outcome(operation, name, started, time.monotonic(), status=response.status_code)


def _phase(outcome: Outcome, signalled_at: float) -> str:
    if outcome.finished < signalled_at:
        return "before SIGTERM"
    if outcome.started < signalled_at:
        return "under way at SIGTERM"
    return "sent after SIGTERM"


def _summary(outcomes: list[Outcome], signalled_at: float) -> str:
    """Counts by phase and outcome, one line each."""
    counts = Counter((_phase(outcome, signalled_at), outcome.label) for outcome in outcomes)
    return "\n".join(
        f"  {phase}: {label} x{count}" for (phase, label), count in sorted(counts.items())
    )


def _register(client: httpx.Client, username: str) -> str:
    user = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    response = client.post("/users", json={"user": user})
    assert response.status_code == 201, response.text
    token: str = response.json()["user"]["token"]
    return token


def _titles(client: httpx.Client) -> set[str]:
    """The titles of every article, page by page."""
    titles: set[str] = set()
    for offset in itertools.count(0, PAGE_SIZE):
        response = client.get("/articles", params={"limit": PAGE_SIZE, "offset": offset})
        assert response.status_code == 200, response.text
        page = [article["title"] for article in response.json()["articles"]]
        titles.update(page)
        if len(page) < PAGE_SIZE:
            break
    return titles


def _missing_users(client: httpx.Client, usernames: list[str]) -> list[str]:
    return [
        username
        for username in usernames
        if client.get(f"/profiles/{username}").status_code != httpx.codes.OK
    ]


def _exit_code(process: subprocess.Popen[bytes]) -> int | None:
    """The process's exit code, or None if it is still running after the grace period."""
    try:
        return process.wait(timeout=GRACE_SECONDS + EXIT_MARGIN_SECONDS)
    except subprocess.TimeoutExpired:
        return None


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with database_env(tmp_path) as database:
        yield database | {
            "CONDUIT_RATE_LIMIT_ENABLED": "false",
            "CONDUIT_HTTP_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
        }


@pytest.mark.parametrize(
    ("connections", "workers"),
    [
        pytest.param("one per request", 1, id="one-connection-per-request"),
        pytest.param("keep-alive", 1, id="keep-alive"),
        pytest.param("one per request", 2, id="two-workers"),
    ],
)
def test_sigterm_under_load_finishes_accepted_requests_and_refuses_new_ones(
    env: dict[str, str], tmp_path: Path, connections: Connections, workers: int
) -> None:
    """A client of a server being stopped gets either its answer, every write acknowledged
    being kept, or a refused connection: never a dropped request (with two workers, one sent
    after the signal may be: see below). The server exits with 0."""
    with serving(env, tmp_path, "stopped", workers=workers) as server:
        with httpx.Client(base_url=server.api_url, trust_env=False) as client:
            token = _register(client, "writer")
        load = Load(server, token, connections)
        load.start()
        time.sleep(LOAD_BEFORE_SIGNAL_SECONDS)
        load.signal(signal.SIGTERM)
        outcomes = load.join()
        exit_code = _exit_code(server.process)
        diagnostics = server.diagnostics()

    written = [o.name for o in outcomes if o.operation == "write" and o.status == 201]
    registered = [o.name for o in outcomes if o.operation == "register" and o.status == 201]
    with (
        serving(env, tmp_path, "restarted") as restarted,
        httpx.Client(base_url=restarted.api_url, trust_env=False) as client,
    ):
        missing_articles = sorted(set(written) - _titles(client))
        missing_users = _missing_users(client, registered)

    signalled_at = load.signalled_at
    summary = _summary(outcomes, signalled_at)
    print(f"\n{connections}, {workers} worker(s), exit code {exit_code}:\n{summary}")  # noqa: T201
    context = f"\nExit code {exit_code}; outcomes by phase:\n{summary}\n{diagnostics}"
    unexpected = [
        outcome
        for outcome in outcomes
        if outcome.status is not None and outcome.status != EXPECTED_STATUS[outcome.operation]
    ]
    assert not unexpected, f"{len(unexpected)} unexpected statuses{context}"
    dropped = [outcome for outcome in outcomes if outcome.dropped]
    if workers > 1:
        # What remains with several workers (docs/operations.md): a connection the kernel
        # completes between one worker closing its copy of the listening socket and the last
        # doing so is reset by uvicorn's own worker server. Only a request sent after the
        # signal can meet it; one under way when it came is answered.
        dropped = [outcome for outcome in dropped if outcome.started < signalled_at]
    assert not dropped, f"{len(dropped)} accepted requests dropped, no response{context}"
    refused_early = [o for o in outcomes if o.refused and o.finished < signalled_at]
    assert not refused_early, f"{len(refused_early)} connections refused before SIGTERM{context}"
    answered_in_grace = [
        o for o in outcomes if o.status is not None and o.started < signalled_at < o.finished
    ]
    assert answered_in_grace, f"no request under way at SIGTERM was answered{context}"
    assert any(outcome.refused for outcome in outcomes), f"no connection was refused{context}"
    assert not missing_articles, f"acknowledged articles lost: {missing_articles}{context}"
    assert not missing_users, f"acknowledged users lost: {missing_users}{context}"
    assert exit_code == 0, f"the server exited with {exit_code}{context}"
