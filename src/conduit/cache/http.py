"""HTTP caching of the read endpoints: a strong ETag on every document, 304 for a client that
already holds it, and `Cache-Control` that keeps one viewer's flags out of shared caches.

An anonymous response may be stored anywhere but must be revalidated before each use
(`no-cache`): its ETag changes with its bytes, so a write is seen at once by every client that
revalidates, on any process. A response to a request that sent credentials carries the
viewer's own `favorited` and `following`, and is `no-store`, as every credentialed response
is (`conduit.edge.Edge`); its ETag still answers `If-None-Match`.
`Vary` keeps a shared cache from answering a credentialed request with an anonymous response.
"""

from typing import Any

from fastapi import Request, Response

from conduit.cache.entries import Document

_VARY = "Authorization, X-API-Key"

# How the cached routes document their 304.
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {
        "description": "Not modified: the `ETag` sent in `If-None-Match` is still current.",
        "headers": {"ETag": {"description": "The current ETag.", "schema": {"type": "string"}}},
    }
}


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110's weak comparison, which If-None-Match uses: `W/` does not matter."""
    if if_none_match.strip() == "*":
        return True
    return any(
        candidate.strip().removeprefix("W/") == etag for candidate in if_none_match.split(",")
    )


def respond(request: Request, document: Document) -> Response:
    headers = {"ETag": document.etag, "Cache-Control": "no-cache", "Vary": _VARY}
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and _matches(if_none_match, document.etag):
        return Response(status_code=304, headers=headers)
    return Response(document.body, media_type="application/json", headers=headers)
