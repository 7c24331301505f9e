"""The read cache (docs/caching.md): documents shared by every viewer, kept in the process's
store (`conduit.kv`), invalidated exactly, across processes, after the writes that change them
commit. A read endpoint describes its document as a `CachedRead` (each domain's `reads`) and
answers with `Cache.respond`.
"""

from typing import Annotated

from fastapi import Depends, Request

from conduit import clients
from conduit.cache.core import (
    Cache,
    CachedRead,
    Entry,
    Uncached,
    VersionedCache,
    connect,
    create,
    document_of,
)
from conduit.cache.entries import Document
from conduit.cache.http import NOT_MODIFIED, respond
from conduit.cache.versions import changed


async def cache_of(request: Request) -> Cache:
    return clients.of(request).cache


Cached = Annotated[Cache, Depends(cache_of)]

__all__ = [
    "NOT_MODIFIED",
    "Cache",
    "Cached",
    "CachedRead",
    "Document",
    "Entry",
    "Uncached",
    "VersionedCache",
    "changed",
    "connect",
    "create",
    "document_of",
    "respond",
]
