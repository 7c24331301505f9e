"""The official RealWorld suites the conformance tests run: `$CONDUIT_REALWORLD_DIR`, else
`../shared/realworld` beside the repository, else a copy fetched at the versions pinned in
`conformance/suites.json`, every file checked against its SHA-256 there, and kept in
`.tools/realworld/`."""

import fcntl
import hashlib
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
from pydantic import BaseModel, ConfigDict, TypeAdapter

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST = REPO_ROOT / "conformance" / "suites.json"
CACHE_DIR = REPO_ROOT / ".tools" / "realworld"
REALWORLD_DIR_ENV = "CONDUIT_REALWORLD_DIR"
# Every connect and read, and the whole download: a network that drops packets costs a skip
# within a minute or two, not a hung run.
FETCH_TIMEOUT_SECONDS = 15.0
FETCH_DEADLINE_SECONDS = 120.0


class Part(BaseModel):
    """One directory of the suites (`current/`, `legacy/`): `path` inside the archive of
    `repository` at `commit`, and the SHA-256 of every file used, by its path under `path`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    repository: str
    commit: str
    archive: str
    path: str
    files: dict[str, str]

    def source(self) -> str:
        return f"{self.path}/ of github.com/{self.repository} at {self.commit}"


Manifest = dict[str, Part]
_MANIFEST = TypeAdapter(Manifest)


class Unavailable(Exception):
    """The suites could not be had: no copy here and no archive from the network."""


class Mismatch(Exception):
    """A fetched archive is not what the manifest pins: refused."""


def load_manifest(path: Path = MANIFEST) -> Manifest:
    return _MANIFEST.validate_json(path.read_bytes())


def bruno_folders(manifest: Manifest) -> list[str]:
    """The Bruno collection's request folders (every one but `environments`, as upstream)."""
    folders = {
        name.split("/")[1]
        for name in manifest["current"].files
        if name.startswith("bruno/") and name.count("/") == 2
    }
    return sorted(folders - {"environments"})


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verified(directory: Path, manifest: Manifest) -> bool:
    """Whether `directory` holds every file of the manifest, each with its pinned hash."""
    for name, part in manifest.items():
        for relative, digest in part.files.items():
            path = directory / name / relative
            if not path.is_file() or _sha256(path.read_bytes()) != digest:
                return False
    return True


def locate(
    manifest: Manifest,
    *,
    beside: Path = REPO_ROOT.parent / "shared" / "realworld",
    cache: Path = CACHE_DIR,
) -> Path:
    """Where the suites are: `$CONDUIT_REALWORLD_DIR`, else `beside`, else `cache`, fetched
    there first if it does not hold them.

    Raises `Unavailable` with one line saying what is missing and where to get it when they
    cannot be fetched, `Mismatch` when what was fetched is not what the manifest pins."""
    override = os.environ.get(REALWORLD_DIR_ENV)
    if override:
        return Path(override).expanduser().resolve()
    if beside.is_dir():
        return beside
    with one_at_a_time(cache.with_suffix(".lock")):
        if not verified(cache, manifest):
            try:
                fetch(manifest, cache)
            except Unavailable as error:
                raise Unavailable(_missing(manifest, beside, str(error))) from error
    return cache


def _missing(manifest: Manifest, beside: Path, reason: str) -> str:
    sources = "; ".join(f"{name}/ = {part.source()}" for name, part in manifest.items())
    return (
        f"RealWorld suites not in ${REALWORLD_DIR_ENV} nor {beside}, and not fetched "
        f"({' '.join(reason.split())}): get {sources} (conformance/suites.json) and set "
        f"{REALWORLD_DIR_ENV} to their directory"
    )


@contextmanager
def one_at_a_time(path: Path) -> Iterator[None]:
    """One process at a time, by a lock on `path` (the two test passes run side by side)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def fetch(
    manifest: Manifest,
    destination: Path,
    *,
    timeout: float = FETCH_TIMEOUT_SECONDS,
    deadline: float = FETCH_DEADLINE_SECONDS,
) -> None:
    """Download each part's archive and put the files the manifest lists, each checked, in
    `destination/<part>/` (replacing whatever was there); nothing is kept unless all are."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent) as staging:
        suites = Path(staging) / "suites"
        for name, part in manifest.items():
            with tempfile.TemporaryFile() as archive:
                _download(part.archive, archive, timeout=timeout, deadline=deadline)
                archive.seek(0)
                _extract(part, archive, suites / name)
        shutil.rmtree(destination, ignore_errors=True)
        suites.rename(destination)


def _download(url: str, into: IO[bytes], *, timeout: float, deadline: float) -> None:
    give_up_at = time.monotonic() + deadline
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != httpx.codes.OK:
                raise Unavailable(f"{url} answered HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                if time.monotonic() > give_up_at:
                    raise Unavailable(f"{url} took more than {deadline:.0f} s")
                into.write(chunk)
    except httpx.HTTPError as error:
        raise Unavailable(f"{url}: {type(error).__name__}: {error}") from error


def _extract(part: Part, archive: IO[bytes], into: Path) -> None:
    """The manifest's files from the archive (GitHub's: one top directory, then the
    repository's tree), each checked against its hash before it is written."""
    prefix = f"{part.path}/"
    missing = set(part.files)
    try:
        with tarfile.open(fileobj=archive, mode="r|gz") as tar:
            for member in tar:
                inside = member.name.partition("/")[2]
                relative = inside.removeprefix(prefix)
                if (
                    not inside.startswith(prefix)
                    or relative not in missing
                    or not member.isfile()
                    or (reader := tar.extractfile(member)) is None
                ):
                    continue
                data = reader.read()
                if _sha256(data) != part.files[relative]:
                    raise Mismatch(
                        f"{relative} in {part.archive} is not the pinned file "
                        f"(SHA-256 {_sha256(data)}, pinned {part.files[relative]})"
                    )
                target = into / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                missing.remove(relative)
    except (tarfile.TarError, EOFError) as error:
        raise Unavailable(f"{part.archive} is not a gzipped tar archive: {error}") from error
    if missing:
        raise Mismatch(f"{part.archive} lacks pinned files: {', '.join(sorted(missing))}")
