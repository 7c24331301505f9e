"""Fetching the RealWorld suites at their pinned versions (`tests.e2e.realworld`), from a real
HTTP server on this machine serving archives laid out as GitHub's: the pinned files kept and
checked, anything else refused, and one line saying where to get them when nothing answers."""

import hashlib
import io
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests import threaded
from tests.e2e import realworld

pytestmark = pytest.mark.one_pass

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CURRENT = {
    "openapi.yml": b"openapi: 3.1.0\n",
    "bruno/bruno.json": b'{"name": "Conduit"}\n',
    "bruno/auth/01-register.bru": b"meta { name: register }\n",
    "bruno/environments/local.bru": b"vars { host: http://localhost:8000 }\n",
}
LEGACY = {"Conduit.postman_collection.json": b'{"item": []}\n'}


def _archive(repository: str, path: str, files: dict[str, bytes]) -> bytes:
    """A gzipped tar as GitHub serves one: `<name>-<commit>/` then the repository's tree,
    with files the manifest does not pin beside and above `path`."""
    top = f"{repository.split('/')[1]}-{COMMIT}"
    others = {"README.md": b"readme\n", "openapi.yml": b"not the spec\n", f"{path}/notes": b"-"}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        entries = {**others, **{f"{path}/{name}": data for name, data in files.items()}}
        for name, data in entries.items():
            member = tarfile.TarInfo(f"{top}/{name}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def _manifest(base_url: str) -> realworld.Manifest:
    def part(repository: str, path: str, files: dict[str, bytes]) -> realworld.Part:
        return realworld.Part(
            repository=repository,
            commit=COMMIT,
            archive=f"{base_url}/{repository}/tar.gz/{COMMIT}",
            path=path,
            files={name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
        )

    return {
        "current": part("example/realworld", "specs/api", CURRENT),
        "legacy": part("example/legacy", "api", LEGACY),
    }


@pytest.fixture
def archives() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A server answering `/<owner>/<repo>/tar.gz/<commit>` with what the test puts in the
    dict, 404 for anything else."""
    served: dict[str, bytes] = {}

    async def archive(request: Request) -> Response:
        body = served.get(request.url.path)
        return Response(status_code=404) if body is None else Response(body)

    app = Starlette(routes=[Route("/{path:path}", archive)])
    with threaded.serving(app, "archive server") as url:
        yield url, served


def _serve_pinned(url: str, served: dict[str, bytes]) -> realworld.Manifest:
    manifest = _manifest(url)
    served[f"/example/realworld/tar.gz/{COMMIT}"] = _archive(
        "example/realworld", "specs/api", CURRENT
    )
    served[f"/example/legacy/tar.gz/{COMMIT}"] = _archive("example/legacy", "api", LEGACY)
    return manifest


def _files(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in directory.rglob("*")
        if path.is_file()
    }


def test_the_pinned_files_are_fetched_and_nothing_else(
    archives: tuple[str, dict[str, bytes]], tmp_path: Path
) -> None:
    manifest = _serve_pinned(*archives)

    realworld.fetch(manifest, tmp_path / "suites")

    expected = {f"current/{name}": data for name, data in CURRENT.items()} | {
        f"legacy/{name}": data for name, data in LEGACY.items()
    }
    assert _files(tmp_path / "suites") == expected
    assert realworld.verified(tmp_path / "suites", manifest)
    assert realworld.bruno_folders(manifest) == ["auth"]


def test_an_archive_whose_file_differs_from_the_pin_is_refused(
    archives: tuple[str, dict[str, bytes]], tmp_path: Path
) -> None:
    url, served = archives
    manifest = _serve_pinned(url, served)
    realworld.fetch(manifest, tmp_path / "suites")
    tampered = CURRENT | {"bruno/auth/01-register.bru": b"meta { name: something else }\n"}
    served[f"/example/realworld/tar.gz/{COMMIT}"] = _archive(
        "example/realworld", "specs/api", tampered
    )

    with pytest.raises(realworld.Mismatch, match=r"bruno/auth/01-register\.bru"):
        realworld.fetch(manifest, tmp_path / "suites")
    assert realworld.verified(tmp_path / "suites", manifest)


def test_an_archive_without_a_pinned_file_is_refused(
    archives: tuple[str, dict[str, bytes]], tmp_path: Path
) -> None:
    url, served = archives
    manifest = _serve_pinned(url, served)
    served[f"/example/legacy/tar.gz/{COMMIT}"] = _archive("example/legacy", "api", {})

    with pytest.raises(realworld.Mismatch, match=r"lacks pinned files: Conduit\.postman"):
        realworld.fetch(manifest, tmp_path / "suites")
    assert not (tmp_path / "suites").exists()


def test_a_cache_that_holds_the_pinned_files_is_used_without_the_network(
    archives: tuple[str, dict[str, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, served = archives
    manifest = _serve_pinned(url, served)
    monkeypatch.delenv(realworld.REALWORLD_DIR_ENV, raising=False)
    cache = tmp_path / "cache"
    assert realworld.locate(manifest, beside=tmp_path / "absent", cache=cache) == cache
    served.clear()

    assert realworld.locate(manifest, beside=tmp_path / "absent", cache=cache) == cache
    (cache / "legacy" / "Conduit.postman_collection.json").write_bytes(b"edited")
    with pytest.raises(realworld.Unavailable, match="HTTP 404"):
        realworld.locate(manifest, beside=tmp_path / "absent", cache=cache)


def test_an_answer_that_is_not_an_archive_is_no_archive(
    archives: tuple[str, dict[str, bytes]], tmp_path: Path
) -> None:
    url, served = archives
    manifest = _serve_pinned(url, served)
    served[f"/example/legacy/tar.gz/{COMMIT}"] = b"<html>Sign in to this network</html>"

    with pytest.raises(realworld.Unavailable, match="is not a gzipped tar archive"):
        realworld.fetch(manifest, tmp_path / "suites")


def test_nothing_to_fetch_from_is_one_line_naming_the_pinned_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(realworld.REALWORLD_DIR_ENV, raising=False)
    # Bound but not listening: a connection to it is refused for as long as it is held.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        unreachable = _manifest(f"http://127.0.0.1:{closed.getsockname()[1]}")
        with pytest.raises(realworld.Unavailable) as raised:
            realworld.locate(unreachable, beside=tmp_path / "absent", cache=tmp_path / "c")

    [line] = str(raised.value).splitlines()
    assert "ConnectError" in line
    assert f"specs/api/ of github.com/example/realworld at {COMMIT}" in line
    assert f"api/ of github.com/example/legacy at {COMMIT}" in line
    assert realworld.REALWORLD_DIR_ENV in line
    assert not (tmp_path / "c").exists()


def test_the_committed_pin_lists_every_file_the_conformance_tests_read() -> None:
    manifest = realworld.load_manifest()

    assert {"bruno/bruno.json", "bruno/environments/local.bru"} <= manifest["current"].files.keys()
    assert "Conduit.postman_collection.json" in manifest["legacy"].files
    assert "auth" in realworld.bruno_folders(manifest)
    assert "environments" not in realworld.bruno_folders(manifest)
