"""CHANGELOG.md is where releases are defined: the version this code says it is, and the release
the upgrade test starts from (`tests/e2e/test_upgrade.py`)."""

from importlib.metadata import version

from conduit.database import SCHEMA_REVISION
from tests.releases import CHANGELOG, Release, previous_release, releases


def test_the_newest_release_in_the_changelog_is_this_code_and_its_schema() -> None:
    newest = releases(CHANGELOG.read_text())[0]

    assert (newest.version, newest.schema) == (version("conduit"), SCHEMA_REVISION)


def test_every_release_has_a_commit_but_the_newest_and_a_version_above_the_one_before() -> None:
    listed = releases(CHANGELOG.read_text())
    numbers = [tuple(int(part) for part in release.version.split(".")) for release in listed]

    assert len(listed) >= 11
    assert all(release.commit is not None for release in listed[1:])
    assert numbers == sorted(numbers, reverse=True)


def test_the_previous_release_is_the_newest_with_another_schema_and_a_commit() -> None:
    changelog = (
        "## [0.3.0] - unreleased\n\nNot yet released · schema `ccc`\n\n"
        "## [0.2.0] - 2026-12-02\n\nCommit `2222222` · schema `ccc`\n\n"
        "## [0.1.0] - 2026-12-01\n\nCommit `1111111` · schema `bbb`\n"
    )

    assert previous_release(changelog, "ccc") == Release("0.1.0", "1111111", "bbb")
    assert previous_release(changelog, "ddd") == Release("0.2.0", "2222222", "ccc")
