"""Architecture rules that matter, as tests (STYLE.md): only the unit of work commits, a
domain uses another domain's tables only through that domain's public module, and no route
escapes rate limiting."""

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
DOMAINS = {"api_keys", "articles", "auth", "comments", "profiles", "tags"}


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


def test_domains_reach_other_domains_tables_only_through_their_public_module() -> None:
    violations = []
    for path, module in _modules():
        own = _domain(path)
        if own is None:
            continue
        for imported, names, line in _imports(module):
            parts = imported.split(".")
            other = parts[1] if len(parts) > 1 and parts[0] == "conduit" else None
            if other not in DOMAINS or other == own:
                continue
            if parts[2:] == ["models"]:
                violations.append(f"{path.relative_to(SOURCE)}:{line} imports {imported}")
            if len(parts) == 2:
                public = set(getattr(import_module(imported), "__all__", []))
                submodules = {p.stem for p in (SOURCE / other).glob("*.py")}
                violations.extend(
                    f"{path.relative_to(SOURCE)}:{line} imports {name}"
                    for name in sorted(set(names) - public - submodules)
                )
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
    routes = create_app(Settings()).api_routes()
    unlimited = [
        f"{sorted(route.methods or ())} {route.path}"
        for route in routes
        if not (_authentication(route.dependant) or _counts_caller(route.dependant))
    ]
    assert len(routes) > 20
    assert unlimited == []
