"""The releases CHANGELOG.md records: each heading `## [<version>] - <date>` is followed by a
line `Commit `<commit>` · schema `<revision>`` (or `Not yet released · schema ...`)."""

import re
from dataclasses import dataclass
from pathlib import Path

CHANGELOG = Path(__file__).resolve().parent.parent / "CHANGELOG.md"

_RELEASE = re.compile(
    r"^## \[(?P<version>[^\]]+)\].*\n+"
    r"(?:Commit `(?P<commit>[0-9a-f]{7,40})`|Not yet released) · schema `(?P<schema>[0-9a-f]+)`",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Release:
    version: str
    # None until it is released.
    commit: str | None
    schema: str


def releases(changelog: str) -> list[Release]:
    """Newest first, as the changelog lists them."""
    return [
        Release(match["version"], match["commit"], match["schema"])
        for match in _RELEASE.finditer(changelog)
    ]


def previous_release(changelog: str, head: str) -> Release:
    """The newest release whose schema revision is not `head`: the one whose database this
    code's migrations must carry forward while it still runs."""
    for release in releases(changelog):
        if release.schema != head and release.commit is not None:
            return release
    raise LookupError(f"CHANGELOG.md names no release with a schema other than {head}")
