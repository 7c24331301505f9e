"""The layers a request passes through, each named by the modules it is made of, and which layer
a profiler's sample belongs to.

A sample is a stack of frames, outermost first. It belongs to the layer of its innermost frame
whose module is in a layer: a frame of `json` or `contextlib` called by pydantic counts as the
framework's, the pydantic code called by Conduit's edge as the framework's too, and a
sample none of whose frames is in a layer is "other". A module is in the layer whose prefix
matches it the longest (`conduit.cache.core` is the cache's, not Conduit's other modules').
"""

import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Edit here as the code moves: each prefix is a module or a package, matched whole.
LAYERS: dict[str, tuple[str, ...]] = {
    "HTTP server": ("uvicorn", "httptools", "uvloop", "h11", "conduit.server"),
    "framework": ("starlette", "fastapi", "pydantic", "pydantic_core"),
    # Before issue 22 the edge was middleware (`--at` an older commit).
    "Conduit's edge": (
        "conduit.edge",
        "conduit.fast_reads",
        "conduit.request_state",
        "conduit.main",
        "conduit.middleware",
        "conduit.cache.anonymous",
    ),
    "cache": ("conduit.cache",),
    "rate limiting": ("conduit.ratelimit", "upstash_ratelimit"),
    "Redis client": ("redis", "hiredis", "upstash_redis", "conduit.kv", "conduit.redis_connection"),
    "database": ("asyncpg", "sqlalchemy", "conduit.database"),
    "logging": ("structlog", "orjson", "logging", "conduit.logs"),
    "metrics": ("prometheus_client", "conduit.metrics"),
    "asyncio/event loop": ("asyncio",),
    "Conduit, other modules": ("conduit",),
}
OTHER = "other"
# The ends of compiled modules' and sources' names, which are not part of a module's name.
_SUFFIXES = (".py", ".pyx", ".pxd", ".c", ".so")


@dataclass(frozen=True, slots=True)
class Frame:
    function: str
    # The file as the profiler names it: a path, or `<frozen runpy>`.
    file: str


def _prefixes() -> list[tuple[str, str]]:
    """(prefix, layer), longest prefix first."""
    pairs = [(prefix, layer) for layer, prefixes in LAYERS.items() for prefix in prefixes]
    return sorted(pairs, key=lambda pair: -len(pair[0]))


def _dotted(parts: Sequence[str]) -> str:
    *packages, name = parts
    stem = name.split(".", 1)[0]
    return ".".join([*packages, stem] if stem != "__init__" else packages)


@dataclass(frozen=True, slots=True)
class Layers:
    """Which layer a file's code belongs to, for a server run by this interpreter: a file under
    one of its import roots (`sys.path`) is named as it is imported (`.../site-packages/redis/
    client.py` is `redis.client`); compiled code's own sources, under none of them, from the
    first of their directories that is a layer's package (`/project/uvloop/loop.c`:
    `uvloop.loop`)."""

    roots: tuple[Path, ...]
    prefixes: tuple[tuple[str, str], ...]

    @classmethod
    def of_this_interpreter(cls) -> "Layers":
        roots = {Path(entry).resolve() for entry in sys.path if entry}
        longest_first = sorted(roots, key=lambda root: -len(root.parts))
        return cls(tuple(longest_first), tuple(_prefixes()))

    def module(self, file: str) -> str | None:
        path = Path(file)
        if not path.is_absolute() or not path.name.endswith(_SUFFIXES):
            return None
        for root in self.roots:
            if path.is_relative_to(root):
                return _dotted(path.relative_to(root).parts)
        packages = {prefix.split(".", 1)[0] for prefix, _ in self.prefixes}
        for index, part in enumerate(path.parts[:-1]):
            if part in packages:
                return _dotted(path.parts[index:])
        return None

    def layer_of_module(self, module: str) -> str | None:
        return next(
            (
                layer
                for prefix, layer in self.prefixes
                if module == prefix or module.startswith(prefix + ".")
            ),
            None,
        )

    def layer(self, stack: Sequence[Frame]) -> str:
        """The layer of the innermost frame that is in one, else OTHER."""
        for frame in reversed(stack):
            module = self.module(frame.file)
            layer = None if module is None else self.layer_of_module(module)
            if layer is not None:
                return layer
        return OTHER

    def tally(self, samples: Iterable[tuple[Sequence[Frame], int]]) -> Counter[str]:
        """Samples per layer, from (stack, how many samples had it)."""
        counts: Counter[str] = Counter()
        for stack, count in samples:
            counts[self.layer(stack)] += count
        return counts
