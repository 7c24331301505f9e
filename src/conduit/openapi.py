"""The OpenAPI document: FastAPI's, from the routes, completed with what a route cannot say of
itself: who may call it, the errors the middleware sends for it, and where its answer leads.

`python -m conduit.openapi > docs/openapi.json` writes the committed copy (`render`), which a
test holds to the app's document."""

import json
import sys
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, status
from fastapi.routing import APIRoute

from conduit.auth.dependencies import security_requirement, security_schemes
from conduit.config import Settings
from conduit.errors import ErrorResponse, responses

# The operations one operation's answer leads to (OpenAPI links), so that a client, or a fuzzer,
# can follow a resource from its creation to its deletion. Keyed by operation id (the route's
# name) and status; each link is named for the operation it leads to.
_ARTICLE = {"slug": "$response.body#/article/slug"}
_LINKS: dict[tuple[str, int], dict[str, dict[str, str]]] = {
    ("create_article", status.HTTP_201_CREATED): {
        "get_article": _ARTICLE,
        "update_article": _ARTICLE,
        "delete_article": _ARTICLE,
        "favorite_article": _ARTICLE,
        "unfavorite_article": _ARTICLE,
        "list_comments": _ARTICLE,
        "add_comment": _ARTICLE,
    },
    ("update_article", status.HTTP_200_OK): {"get_article": _ARTICLE},
    ("favorite_article", status.HTTP_200_OK): {"unfavorite_article": _ARTICLE},
    ("add_comment", status.HTTP_201_CREATED): {
        "delete_comment": {"slug": "$request.path.slug", "comment_id": "$response.body#/comment/id"}
    },
    ("register", status.HTTP_201_CREATED): {
        name: {"username": "$response.body#/user/username"}
        for name in ("get_profile", "follow", "unfollow")
    },
    ("follow", status.HTTP_200_OK): {"unfollow": {"username": "$response.body#/profile/username"}},
    ("create_api_key", status.HTTP_201_CREATED): {
        "revoke_api_key": {"key_id": "$response.body#/apiKey/id"}
    },
}


def complete(app: FastAPI, routes: Iterable[APIRoute]) -> None:
    """Complete the document FastAPI generates for `app`, whose API `routes` all use the
    database."""
    generate = app.openapi
    routes = list(routes)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        components = document.setdefault("components", {})
        components["securitySchemes"] = security_schemes()
        schemas = {**components["schemas"], "ErrorResponse": ErrorResponse.model_json_schema()}
        # In FastAPI's order, by name.
        components["schemas"] = dict(sorted(schemas.items()))
        for route in routes:
            for method in route.methods or ():
                operation = document["paths"][route.path_format][method.lower()]
                if security := security_requirement(route):
                    operation["security"] = security
                codes = operation["responses"]
                # What the edge sends, not the route: the database unavailable, a body too large.
                codes.setdefault("503", responses(503)[503])
                if "requestBody" in operation:
                    codes.setdefault("413", responses(413)[413])
                success = route.status_code or status.HTTP_200_OK
                if links := _LINKS.get((route.name, success)):
                    codes[str(success)]["links"] = {
                        target: {"operationId": target, "parameters": parameters}
                        for target, parameters in links.items()
                    }
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def render(document: dict[str, Any]) -> str:
    """The document as docs/openapi.json holds it: in the app's own order (paths as the routes
    are matched, which is stable), two spaces of indent, text as it is, a final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    # Here, not at the top: conduit.main imports this module.
    from conduit.main import create_app

    sys.stdout.write(render(create_app(Settings()).openapi()))
