"""The Conduit API as the cache tests use it against real server processes: writes on one,
reads on another (or both on one), typed, each asserting it succeeded and saying on failure
what both servers logged."""

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

import httpx

from tests.e2e.conftest import ConduitServer

PASSWORD = "password123"
# RFC 9110: a strong validator is quoted, without the `W/` of a weak one.
STRONG_ETAG = re.compile(r'"[\x21\x23-\x7e\x80-\xff]*"')


class Profile(TypedDict):
    username: str
    bio: str | None
    image: str | None
    following: bool


class ListedArticle(TypedDict):
    slug: str
    title: str
    description: str
    tagList: list[str]
    createdAt: str
    updatedAt: str
    favorited: bool
    favoritesCount: int
    author: Profile


class Article(ListedArticle):
    body: str


class ArticlePage(TypedDict):
    articles: list[ListedArticle]
    articlesCount: int


class Comment(TypedDict):
    id: int
    createdAt: str
    updatedAt: str
    body: str
    author: Profile


@dataclass(frozen=True)
class User:
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}


# None reads anonymously.
Viewer = User | None


@dataclass(frozen=True)
class Servers:
    writer: ConduitServer
    reader: ConduitServer

    def diagnostics(self) -> str:
        if self.reader is self.writer:
            return self.writer.diagnostics()
        return f"{self.writer.diagnostics()}\n{self.reader.diagnostics()}"


def unique(word: str) -> str:
    return f"{word}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Api:
    """Writes on the writer, reads on the reader; each call asserts it succeeded."""

    http: httpx.AsyncClient
    servers: Servers

    def explain(self, viewer: Viewer = None) -> str:
        who = "anonymously" if viewer is None else f"as {viewer.username}"
        return f"read {who} on {self.servers.reader.base_url}\n{self.servers.diagnostics()}"

    def failed(self, response: httpx.Response) -> str:
        request = response.request
        return (
            f"{request.method} {request.url} answered {response.status_code}: {response.text}\n"
            f"{self.servers.diagnostics()}"
        )

    async def write(
        self, method: str, path: str, user: User, body: object = None
    ) -> httpx.Response:
        response = await self.http.request(
            method, f"{self.servers.writer.api_url}{path}", headers=user.headers, json=body
        )
        assert response.is_success, self.failed(response)
        return response

    async def register(self, role: str) -> User:
        username = unique(role)
        new = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
        response = await self.http.post(f"{self.servers.writer.api_url}/users", json={"user": new})
        assert response.status_code == 201, self.failed(response)
        return User(username, response.json()["user"]["token"])

    async def publish(self, author: User, *tags: str) -> Article:
        new = {"title": unique("Title"), "description": "About", "body": "All", "tagList": tags}
        response = await self.write("POST", "/articles", author, {"article": new})
        article: Article = response.json()["article"]
        return article

    async def comment(self, user: User, slug: str, body: str) -> Comment:
        response = await self.write(
            "POST", f"/articles/{slug}/comments", user, {"comment": {"body": body}}
        )
        comment: Comment = response.json()["comment"]
        return comment

    async def get(
        self,
        path: str,
        viewer: Viewer = None,
        *,
        headers: dict[str, str] | None = None,
        on: ConduitServer | None = None,
    ) -> httpx.Response:
        server = on or self.servers.reader
        credentials = {} if viewer is None else viewer.headers
        return await self.http.get(
            f"{server.api_url}{path}", headers={**credentials, **(headers or {})}
        )

    async def read(self, path: str, viewer: Viewer = None) -> httpx.Response:
        response = await self.get(path, viewer)
        assert response.status_code == 200, self.failed(response)
        return response

    async def warm(self, paths: Sequence[str], viewers: Sequence[Viewer]) -> None:
        """Read each path twice as each viewer, so that the reader holds what it would serve
        stale if a write failed to invalidate it."""
        for path in paths:
            for viewer in viewers:
                for _ in range(2):
                    response = await self.get(path, viewer)
                    assert response.status_code in {200, 404}, self.failed(response)

    async def article(self, slug: str, viewer: Viewer = None) -> Article:
        article: Article = (await self.read(f"/articles/{slug}", viewer)).json()["article"]
        return article

    async def page(self, path: str, viewer: Viewer = None) -> ArticlePage:
        page: ArticlePage = (await self.read(path, viewer)).json()
        return page

    async def comments(self, slug: str, viewer: Viewer = None) -> list[Comment]:
        response = await self.read(f"/articles/{slug}/comments", viewer)
        comments: list[Comment] = response.json()["comments"]
        return comments

    async def profile(self, username: str, viewer: Viewer = None) -> Profile:
        profile: Profile = (await self.read(f"/profiles/{username}", viewer)).json()["profile"]
        return profile

    async def tags(self) -> list[str]:
        tags: list[str] = (await self.read("/tags")).json()["tags"]
        return tags


def slugs(page: ArticlePage) -> list[str]:
    return [article["slug"] for article in page["articles"]]


def listed(page: ArticlePage, slug: str) -> ListedArticle:
    found = [article for article in page["articles"] if article["slug"] == slug]
    assert len(found) == 1, f"{slug} is listed {len(found)} times in {page}"
    return found[0]


def etag(response: httpx.Response) -> str:
    value: str | None = response.headers.get("etag")
    assert value is not None, f"no ETag on {response.request.url}"
    assert STRONG_ETAG.fullmatch(value), f"{value!r} is not a strong ETag"
    return value


def directives(response: httpx.Response, header: str) -> set[str]:
    """The comma-separated values of every `header` line, lower-cased."""
    values = response.headers.get_list(header, split_commas=True)
    return {value.strip().lower() for value in values}
