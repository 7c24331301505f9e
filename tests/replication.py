"""A PostgreSQL primary with a streaming replica that applies transactions late, and PgBouncer in
transaction mode, of a test's own on loopback: what the tests of reads on a replica and of Conduit
behind a pooler stand on.

Both are context managers, for session- or module-scoped fixtures as much as for a test, and
whatever the test did to them (a replica stopped or paused, a failed assertion), their processes
are gone and their directories removed when the block ends. They belong to the PostgreSQL pass
(TEST_DATABASE_URL set); where they cannot be had, a test skips with the one line
`cluster_unavailable()` or `pgbouncer_unavailable()` gives.

PostgreSQL and PgBouncer refuse to run as root: as root, their programs run as the `postgres`
account, in a temporary directory it owns (pytest's `tmp_path` is root's, closed to it).
"""

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from tests.threaded import START_TIMEOUT_SECONDS, free_port

SUPERUSER = "postgres"
# Debian keeps each major version's server programs here, off PATH.
POSTGRES_ROOT = Path("/usr/lib/postgresql")
POSTGRES_PROGRAMS = ("initdb", "pg_ctl", "pg_basebackup", "postgres", "psql")
# Where Debian installs it: on root's PATH, often not on other accounts'.
PGBOUNCER_INSTALLED = Path("/usr/sbin/pgbouncer")
# An older PgBouncer takes `max_prepared_statements` for an unknown parameter and will not start.
PREPARED_STATEMENTS_SINCE = (1, 21)
# Bounds on what takes milliseconds on a quiet machine: only something broken waits this long.
PROGRAM_TIMEOUT_SECONDS = 2 * START_TIMEOUT_SECONDS
QUERY_TIMEOUT_SECONDS = 30.0
REPLAY_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.01
LOG_TAIL_LINES = 20
# PgBouncer's server connections a database: fewer than a test's clients, so that they share.
POOL_SIZE = 4


class Unavailable(Exception):
    """What this machine lacks to run a server here, in one line."""


class ServerFailed(Exception):
    """A server's program failed, or a server did not get where it should within its bound."""


def cluster_unavailable() -> str | None:
    """Why `replicated_cluster` cannot run here, or None."""
    try:
        _postgres_programs()
        _server_account()
    except Unavailable as missing:
        return str(missing)
    return None


def pgbouncer_unavailable() -> str | None:
    """Why `pgbouncer` cannot run here, or None."""
    try:
        _pgbouncer_binary()
        _server_account()
    except Unavailable as missing:
        return str(missing)
    return None


def require_cluster() -> None:
    """Skip the test, saying why in one line, where `replicated_cluster` cannot run."""
    reason = cluster_unavailable()
    if reason is not None:
        pytest.skip(reason)


def require_pgbouncer() -> None:
    """Skip the test, saying why in one line, where `pgbouncer` cannot run."""
    reason = pgbouncer_unavailable()
    if reason is not None:
        pytest.skip(reason)


def _postgres_programs() -> Path:
    """The directory of `initdb` on PATH, else the newest under /usr/lib/postgresql: the first
    holding every program the cluster runs."""
    on_path = shutil.which("initdb")
    versions = [path for path in POSTGRES_ROOT.glob("*/bin") if path.parent.name.isdigit()]
    candidates = [
        *([Path(on_path).resolve().parent] if on_path else []),
        *sorted(versions, key=lambda path: int(path.parent.name), reverse=True),
    ]
    for directory in candidates:
        if all((directory / program).is_file() for program in POSTGRES_PROGRAMS):
            return directory
    raise Unavailable(
        f"needs PostgreSQL's programs ({', '.join(POSTGRES_PROGRAMS)}) in one directory, "
        f"that of initdb on PATH or one under {POSTGRES_ROOT}"
    )


def _pgbouncer_binary() -> Path:
    on_path = shutil.which("pgbouncer")
    if on_path:
        return Path(on_path)
    if PGBOUNCER_INSTALLED.is_file():
        return PGBOUNCER_INSTALLED
    raise Unavailable("needs pgbouncer (Debian's package `pgbouncer`, which .ci/run installs)")


def _server_account() -> pwd.struct_passwd | None:
    """Whom the servers run as: `postgres` when this process is root, which they refuse; this
    process's own user (None) otherwise."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise Unavailable(
            f"runs as root, which PostgreSQL and PgBouncer refuse, and has no `{SUPERUSER}` "
            "account to run them as"
        ) from None


def _identity() -> tuple[int | None, int | None, list[int] | None]:
    """`subprocess`'s user, group and extra groups for the servers' account: root's own groups
    are dropped with root."""
    account = _server_account()
    if account is None:
        return None, None, None
    return account.pw_uid, account.pw_gid, []


def _hand_over(path: Path) -> None:
    """`path` made the servers' account's, whatever this process's umask."""
    account = _server_account()
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)


def _environment() -> dict[str, str]:
    """This process's environment without libpq's variables: a PGSSLMODE or PGOPTIONS from the
    developer's shell would otherwise change what the servers' programs do."""
    return {name: value for name, value in os.environ.items() if not name.startswith("PG")}


def _tail(path: Path) -> str:
    if not path.is_file():
        return f"({path} was not written)"
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _run(
    argv: Sequence[str | Path],
    *,
    cwd: Path,
    log: Path | None = None,
    timeout: float = PROGRAM_TIMEOUT_SECONDS,
) -> str:
    """`argv` run as the servers' account; its output. A failure raises ServerFailed with what
    the program said and the tail of `log`."""
    user, group, extra_groups = _identity()
    completed = subprocess.run(  # noqa: S603
        [str(argument) for argument in argv],
        cwd=cwd,
        env=_environment(),
        user=user,
        group=group,
        extra_groups=extra_groups,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        command = " ".join([Path(argv[0]).name, *map(str, argv[1:])])
        said = (completed.stderr or completed.stdout).strip()
        details = f"\ntail of {log}:\n{_tail(log)}" if log is not None else ""
        raise ServerFailed(
            f"`{command}` failed with exit code {completed.returncode}: {said}{details}"
        )
    return completed.stdout


def _write_settings(path: Path, settings: Mapping[str, str]) -> None:
    """`settings` appended to the configuration file at `path`: where a name comes twice, the
    last line wins."""
    with path.open("a", encoding="utf-8") as configuration:
        configuration.writelines(f"{name} = '{value}'\n" for name, value in settings.items())


def _process_stat(pid: int) -> tuple[str, int] | None:
    """The state letter and parent of process `pid`, from /proc; None once it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name, in parentheses before these fields, may itself hold spaces and ")".
    state, parent = stat.rsplit(")", 1)[1].split()[:2]
    return state, int(parent)


def _children(pid: int) -> list[int]:
    """The processes that `pid` forked: for a postmaster, every other process of its server."""
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
        and (stat := _process_stat(int(entry.name))) is not None
        and stat[1] == pid
    ]


def _works_in(pid: int, directory: Path) -> bool:
    """Whether process `pid` has `directory` for its working directory, as every process of a
    PostgreSQL server has its data directory."""
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")) == directory.resolve()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False


def _signal_all(pids: Sequence[int], signal_number: signal.Signals) -> None:
    for pid in pids:
        # A backend may have ended since it was listed.
        with suppress(ProcessLookupError):
            os.kill(pid, signal_number)


def _lsn(text: str) -> int:
    """A WAL position as PostgreSQL writes it ("0/3016040"), as a number that orders."""
    high, low = text.strip().split("/")
    return (int(high, 16) << 32) | int(low, 16)


class Server:
    """One PostgreSQL server of a `replicated_cluster`, on a loopback port of its own."""

    def __init__(self, programs: Path, directory: Path, name: str, database: str) -> None:
        self.port = free_port()
        self.database = database
        self.url = f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"
        self.data = directory / name
        self.log_path = directory / f"{name}.log"
        self._programs = programs
        self._directory = directory

    def start(self) -> None:
        """Started and answering: a replica once it is consistent and serves reads (hot
        standby)."""
        self._ctl("start", "-l", str(self.log_path), "-t", str(START_TIMEOUT_SECONDS))

    def stop(self) -> None:
        """Stopped as if it crashed (`pg_ctl stop -m immediate`), paused or not: connecting is
        refused at once. Started again, it recovers from its WAL, and a replica goes on
        streaming from where it was."""
        self.resume()
        self._ctl("stop", "-m", "immediate", "-t", str(START_TIMEOUT_SECONDS))

    def pause(self) -> None:
        """Frozen (SIGSTOP), as a server that stops answering: the kernel still completes the
        TCP handshake of a new connection, which then hangs until the client's timeout, and
        open connections hang as well. The postmaster is stopped first, so that it forks
        nothing more while its children are listed."""
        postmaster = self._running_postmaster()
        os.kill(postmaster, signal.SIGSTOP)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while (stat := _process_stat(postmaster)) is not None and stat[0] != "T":
            if time.monotonic() > deadline:
                raise ServerFailed(f"the postmaster of {self.data} did not stop on SIGSTOP")
            time.sleep(POLL_SECONDS)
        _signal_all(_children(postmaster), signal.SIGSTOP)

    def resume(self) -> None:
        """Answering again after `pause` (SIGCONT); nothing happens to a server that is not
        paused."""
        postmaster = self._postmaster()
        if postmaster is not None:
            _signal_all([*_children(postmaster), postmaster], signal.SIGCONT)

    def query(self, statement: str, *, database: str | None = None) -> str:
        """The rows `statement` returns, as psql prints them unaligned: a line a row, "|"
        between columns. One statement a call: each runs in a transaction of its own, and
        ALTER SYSTEM and CREATE DATABASE run in none."""
        return _run(
            [
                self._programs / "psql",
                *("-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1"),
                *("-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER),
                *("-d", database or self.database, "-c", statement),
            ],
            cwd=self._directory,
            timeout=QUERY_TIMEOUT_SECONDS,
        ).strip()

    def halt(self) -> None:
        """Stopped, whatever state it was left in; killed, with every process it forked, if it
        will not stop. A server that is not running is left as it is, even one killed before
        it could remove its postmaster.pid."""
        postmaster = self._postmaster()
        if postmaster is None or not _works_in(postmaster, self.data):
            return
        try:
            self.stop()
        except (ServerFailed, subprocess.TimeoutExpired):
            # Only processes working in its data directory: the file may name a process id that
            # has since gone to another program.
            processes = [*_children(postmaster), postmaster]
            _signal_all([pid for pid in processes if _works_in(pid, self.data)], signal.SIGKILL)
            raise

    def _ctl(self, *arguments: str) -> None:
        _run(
            [self._programs / "pg_ctl", "-D", self.data, "-w", *arguments],
            cwd=self._directory,
            log=self.log_path,
        )

    def _postmaster(self) -> int | None:
        """The postmaster's process id, from the file it keeps while it runs."""
        try:
            first_line = (self.data / "postmaster.pid").read_text(encoding="utf-8").split("\n")[0]
        except FileNotFoundError:
            return None
        return int(first_line)

    def _running_postmaster(self) -> int:
        postmaster = self._postmaster()
        if postmaster is None:
            raise ServerFailed(f"the server of {self.data} is not running")
        return postmaster


class Replication:
    """A primary and its streaming replica, from `replicated_cluster`."""

    def __init__(self, primary: Server, replica: Server, apply_delay_ms: int) -> None:
        self.primary = primary
        self.replica = replica
        self._apply_delay_ms = apply_delay_ms

    def set_apply_delay(self, milliseconds: int) -> None:
        """How long after its commit on the primary the replica applies a transaction, from
        now on, for a transaction it is holding back too (it measures the wait again). A
        standby takes ALTER SYSTEM, which writes postgresql.auto.conf and no WAL, and reads
        `recovery_min_apply_delay` again on reload; the replica must be running."""
        self.replica.query(f"ALTER SYSTEM SET recovery_min_apply_delay = '{milliseconds}ms'")
        self.replica.query("SELECT pg_reload_conf()")
        self._apply_delay_ms = milliseconds

    def wait_for_replay(self, timeout: float | None = None) -> None:
        """Returns once the replica has replayed all the WAL the primary had written when this
        was called: then whatever was committed on the primary before is visible on the
        replica. Raises TimeoutError after `timeout` seconds, by default the apply delay and
        REPLAY_TIMEOUT_SECONDS more."""
        written = self.primary.query("SELECT pg_current_wal_lsn()")
        bound = self._apply_delay_ms / 1000 + REPLAY_TIMEOUT_SECONDS if timeout is None else timeout
        deadline = time.monotonic() + bound
        while True:
            replayed = self.replica.query("SELECT pg_last_wal_replay_lsn()")
            if _lsn(replayed) >= _lsn(written):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the replica replayed the WAL up to {replayed}, not to the primary's "
                    f"{written}, within {bound:.1f} s"
                )
            time.sleep(POLL_SECONDS)


@contextmanager
def replicated_cluster(
    *, apply_delay_ms: int = 0, database: str = "conduit"
) -> Iterator[Replication]:
    """A primary holding an empty `database`, and its replica, made by `pg_basebackup -R` and
    streaming through a replication slot (so the primary keeps the WAL of a replica that is
    down). The replica applies each transaction `apply_delay_ms` after its commit on the
    primary (`recovery_min_apply_delay`) and serves reads meanwhile (hot standby, with
    feedback so that the primary's vacuum cancels none of them). Both trust every connection
    from this machine and, nothing of theirs outliving the test, never sync to disk: up in a
    second or two, most of it initdb's. Stopped and removed when the block ends."""
    programs = _postgres_programs()
    with ExitStack() as stack:
        directory = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="conduit-replication-"))
        )
        _hand_over(directory)
        primary = Server(programs, directory, "primary", database)
        replica = Server(programs, directory, "replica", database)
        _run(
            [
                *(programs / "initdb", "-D", primary.data, "-U", SUPERUSER, "--auth=trust"),
                *("-E", "UTF8", "--locale=C.UTF-8", "--no-sync"),
            ],
            cwd=directory,
        )
        # The replica copies these with the data directory; its own lines come after them.
        _write_settings(
            primary.data / "postgresql.conf",
            {
                "port": str(primary.port),
                "listen_addresses": "127.0.0.1",
                "unix_socket_directories": str(directory),
                "fsync": "off",
                "shared_buffers": "16MB",
                "wal_level": "replica",
                "max_wal_senders": "4",
                "max_replication_slots": "4",
                "hot_standby": "on",
            },
        )
        stack.callback(primary.halt)
        primary.start()
        primary.query(f'CREATE DATABASE "{database}"', database="postgres")
        _run(
            [
                programs / "pg_basebackup",
                *("-h", "127.0.0.1", "-p", str(primary.port), "-U", SUPERUSER),
                *("-D", replica.data, "--write-recovery-conf", "--wal-method=stream"),
                *("--checkpoint=fast", "--create-slot", "--slot=replica", "--no-sync"),
            ],
            cwd=directory,
        )
        _write_settings(
            replica.data / "postgresql.conf",
            {
                "port": str(replica.port),
                "recovery_min_apply_delay": f"{apply_delay_ms}ms",
                "hot_standby_feedback": "on",
            },
        )
        stack.callback(replica.halt)
        replica.start()
        yield Replication(primary, replica, apply_delay_ms)


@cache
def pgbouncer_version() -> tuple[int, ...]:
    """PgBouncer's version, from `pgbouncer --version` ("PgBouncer 1.18.0" is (1, 18, 0)): what
    its configuration may say depends on it (PREPARED_STATEMENTS_SINCE)."""
    said = subprocess.run(  # noqa: S603
        [_pgbouncer_binary(), "--version"],
        capture_output=True,
        text=True,
        timeout=PROGRAM_TIMEOUT_SECONDS,
        check=True,
    ).stdout
    found = re.search(r"PgBouncer (\d+(?:\.\d+)+)", said)
    if found is None:
        raise ServerFailed(f"`pgbouncer --version` said no version: {said!r}")
    return tuple(int(part) for part in found.group(1).split("."))


@dataclass(frozen=True)
class PgBouncer:
    """A PgBouncer from `pgbouncer`."""

    port: int
    version: tuple[int, ...]
    log_path: Path

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"


@contextmanager
def pgbouncer(host: str, port: int, *, extra_config: Sequence[str] = ()) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode on a free loopback port, in front of the PostgreSQL at
    `host` (a name, an address or a socket directory) and `port`: any of its databases, as
    `postgres` and without a password, which that server must let in likewise. POOL_SIZE
    server connections a database; PgBouncer's defaults otherwise, as a platform's pooler would
    have them: it refuses startup parameters it does not track, and without
    `max_prepared_statements` a named prepared statement dies with its transaction.
    `extra_config` is lines for its [pgbouncer] section, after the others (see
    PREPARED_STATEMENTS_SINCE). Killed and removed when the block ends."""
    binary = _pgbouncer_binary()
    version = pgbouncer_version()
    with ExitStack() as stack:
        directory = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="conduit-pgbouncer-"))
        )
        _hand_over(directory)
        listen_port = free_port()
        log_path = directory / "pgbouncer.log"
        auth_file = directory / "userlist.txt"
        auth_file.write_text(f'"{SUPERUSER}" ""\n', encoding="utf-8")
        configuration = directory / "pgbouncer.ini"
        configuration.write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host={host} port={port}",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {listen_port}",
                    f"unix_socket_dir = {directory}",
                    "auth_type = trust",
                    f"auth_file = {auth_file}",
                    "pool_mode = transaction",
                    f"default_pool_size = {POOL_SIZE}",
                    "max_client_conn = 200",
                    f"logfile = {log_path}",
                    f"pidfile = {directory / 'pgbouncer.pid'}",
                    *extra_config,
                    "",
                ]
            ),
            encoding="utf-8",
        )
        _hand_over(auth_file)
        _hand_over(configuration)
        user, group, extra_groups = _identity()
        # Its log file holds all it says on stderr, errors in its configuration included.
        process = subprocess.Popen(  # noqa: S603
            [binary, configuration],
            cwd=directory,
            env=_environment(),
            user=user,
            group=group,
            extra_groups=extra_groups,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stack.callback(_kill, process)
        _wait_until_listening(process, listen_port, log_path)
        yield PgBouncer(port=listen_port, version=version, log_path=log_path)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL: SIGTERM stops PgBouncer 1.18 at once, but since 1.23 only once its clients have
    gone; and it keeps nothing that needs a clean exit."""
    process.kill()
    process.wait()


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        exit_code = process.poll()
        if exit_code is not None:
            raise ServerFailed(
                f"PgBouncer exited with code {exit_code}; tail of {log_path}:\n{_tail(log_path)}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise ServerFailed(
                    f"PgBouncer did not listen on port {port} within {START_TIMEOUT_SECONDS} s; "
                    f"tail of {log_path}:\n{_tail(log_path)}"
                ) from None
            time.sleep(POLL_SECONDS)
