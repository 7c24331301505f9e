"""The baseline: Conduit as of a git ref, checked out in a worktree of its own for the length of
a run and imported from there by the venv's Python, so that a change is measured against the
code before it in the same invocation."""

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Revision:
    ref: str
    commit: str


def _git(*arguments: str) -> str:
    completed = subprocess.run(
        ["git", *arguments], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if completed.returncode:
        raise SystemExit(f"git {' '.join(arguments)} failed:\n{completed.stderr}")
    return completed.stdout.strip()


def revision(ref: str) -> Revision:
    return Revision(ref, _git("rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}"))


def env(source: Path) -> dict[str, str]:
    """PYTHONPATH with the worktree's src/ first: it comes before the editable install's path."""
    current = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": os.pathsep.join([str(source), current]) if current else str(source)}


def _check_imported_from(source: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", "import conduit; print(conduit.__file__)"],
        env={**os.environ, **env(source)},
        capture_output=True,
        text=True,
        check=False,
    )
    imported = Path(completed.stdout.strip())
    if completed.returncode or not imported.resolve().is_relative_to(source.resolve()):
        raise SystemExit(
            f"the baseline's Python imports conduit from {imported}, not {source}:\n"
            f"{completed.stderr}"
        )


@contextmanager
def worktree(checked_out: Revision) -> Iterator[Path]:
    """The src/ of a detached worktree at the revision, removed afterwards (also on error)."""
    with tempfile.TemporaryDirectory(prefix="conduit-baseline-") as parent:
        directory = Path(parent) / "worktree"
        _git("worktree", "add", "--quiet", "--detach", str(directory), checked_out.commit)
        try:
            source = directory / "src"
            _check_imported_from(source)
            yield source
        finally:
            _git("worktree", "remove", "--force", str(directory))
