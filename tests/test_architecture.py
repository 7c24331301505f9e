"""Architecture rules that matter, as tests (STYLE.md): only the unit of work commits, a
domain imports from another domain only what that one shares, and no route escapes rate
limiting.

A domain is a folder of src/conduit with tables or routes of its own: a `models.py` or a
`router.py`. The other folders (`cache`, `database`, `jobs`, `ratelimit`, `seed`, ...) are what
the domains are built on, and hold neither."""

import ast
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path

import pytest
from fastapi.dependencies.models import Dependant

from conduit.auth.dependencies import _authentication, anonymous_caller
from conduit.config import Settings
from conduit.main import create_app
from conduit.ratelimit.dependencies import limit_anonymous, limit_sign_in

pytestmark = pytest.mark.one_pass


SOURCE = Path(__file__).resolve().parent.parent / "src" / "conduit"
DOMAINS = frozenset(
    folder.name
    for folder in SOURCE.iterdir()
    if (folder / "models.py").exists() or (folder / "router.py").exists()
)

# What a domain may import from another, by the other domain's module it comes from: the
# validating dependencies, auth's caller (`principal`) and token digests (`tokens`), the reads,
# the schemas the API shows, the services, the tasks to enqueue, and `__init__`: the names its
# package shares in `__all__` (the tables others join, e.g. `conduit.auth.User`). Never its
# `models`, nor a name its package does not share.
SHARED = frozenset(
    {"__init__", "dependencies", "principal", "reads", "schemas", "service", "tasks", "tokens"}
)
# A domain's jobs (`tasks.py`) read other domains through their `reads` only: not their tables,
# nor their services.
SHARED_WITH_TASKS = frozenset({"reads"})


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(SOURCE.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def _domain(path: Path) -> str | None:
    top = path.relative_to(SOURCE).parts[0]
    return top if top in DOMAINS else None


def test_only_the_unit_of_work_commits() -> None:
    committing = [
        f"{path.relative_to(SOURCE)}:{node.lineno}"
        for path, module in _modules()
        if path != SOURCE / "database" / "transactions.py"
        for node in ast.walk(module)
        if isinstance(node, ast.Attribute) and node.attr == "commit"
    ]
    assert committing == []


def _imports(module: ast.Module) -> Iterator[tuple[str, list[str], int]]:
    for node in ast.walk(module):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, [alias.name for alias in node.names], node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno


def _reached(imported: str, names: list[str]) -> Iterator[tuple[str, str | None, str]]:
    """Each part of a domain that an import reaches: the domain, the module of it reached
    (`__init__` for a name its package shares, None for a name it does not), and the import."""
    parts = imported.split(".")
    if parts[0] != "conduit" or len(parts) < 2 or parts[1] not in DOMAINS:
        return
    domain = parts[1]
    if len(parts) > 2 or not names:
        yield domain, parts[2] if len(parts) > 2 else "__init__", imported
        return
    submodules = {path.stem for path in (SOURCE / domain).glob("*.py")}
    shared = getattr(import_module(imported), "__all__", [])
    for name in names:
        part: str | None = None
        if name in submodules:
            part = name
        elif name in shared:
            part = "__init__"
        yield domain, part, f"{imported}.{name}"


def _shared_with(path: Path) -> frozenset[str]:
    return SHARED_WITH_TASKS if path.name == "tasks.py" else SHARED


def test_domains_import_from_other_domains_only_what_those_share() -> None:
    # Found by the rule, or every import would pass.
    assert {"articles", "auth", "notifications"} <= DOMAINS
    violations = [
        f"{path.relative_to(SOURCE)}:{line} imports {what}"
        for path, module in _modules()
        if (own := _domain(path)) is not None
        for imported, names, line in _imports(module)
        for other, part, what in _reached(imported, names)
        if other != own and part not in _shared_with(path)
    ]
    assert violations == []


def _counts_caller(dependant: Dependant) -> bool:
    # `anonymous_caller` is counted by the cache's lookup (conduit.cache), with it.
    counting = {limit_anonymous, limit_sign_in, anonymous_caller}
    return any(
        dependency.call in counting or _counts_caller(dependency)
        for dependency in dependant.dependencies
    )


def test_every_api_route_counts_its_caller_against_a_rate_limit() -> None:
    """Through the authentication dependency (by user, key or address) or, on routes that do
    not authenticate, through one of the limits by address."""
    routes = create_app(Settings()).api_routes
    unlimited = [
        f"{sorted(route.methods or ())} {route.path}"
        for route in routes
        if not (_authentication(route.dependant) or _counts_caller(route.dependant))
    ]
    assert len(routes) > 20
    assert unlimited == []
