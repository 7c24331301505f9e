"""The read cache is exact: a read that starts after a write's response was received never sees
the state before the write, whoever reads and whichever process answers.

Each write goes to one server process and the reads go to another, after the reader has read
the same URLs (twice, anonymously and signed in) so that an entry a write failed to invalidate
would be served. Topologies: two processes sharing a Redis, two sharing Upstash's REST protocol
(`tests.upstash_rest` in front of that Redis), and the embedded default, one process caching in
its own memory, where writer and reader are the same server.
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from typing import Literal, assert_never, get_args

import httpx
import pytest

from tests.e2e.conduit_api import (
    Api,
    Profile,
    Servers,
    Viewer,
    directives,
    etag,
    listed,
    slugs,
    unique,
)
from tests.e2e.conftest import database_env, serving, shared_store_env

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

# Limits stay on, as in production, but out of reach of the suite's few hundred requests.
UNLIMITED = {
    f"CONDUIT_RATE_LIMIT_{policy}__QUOTA": "100000"
    for policy in ("ANONYMOUS", "READS", "WRITES", "SIGN_IN")
}
# Entries outlive the run: one a write failed to invalidate is served, not expired.
CACHE = {"CONDUIT_CACHE_ENABLED": "true", "CONDUIT_CACHE_TTL_SECONDS": "3600"}
# What `database_env` adds when TEST_REDIS_URL is set; each topology names its own store.
STORE_VARIABLES = frozenset({"REDIS_URL", "CONDUIT_REDIS_KEY_PREFIX"})

Topology = Literal["redis", "upstash", "memory"]
Resource = Literal["article", "articles", "feed", "comments", "profile", "tags"]


@contextmanager
def store(topology: Topology) -> Iterator[dict[str, str]]:
    if topology == "memory":
        yield {}
        return
    with shared_store_env(topology) as env:
        yield env


@pytest.fixture(scope="module", params=get_args(Topology))
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    """Started once per topology: the tests' users, articles and tags are their own."""
    topology: Topology = request.param
    workdir = tmp_path_factory.mktemp(f"cache-{topology}")
    with ExitStack() as stack:
        store_env = stack.enter_context(store(topology))
        database = stack.enter_context(database_env(workdir))
        env = {
            **{name: value for name, value in database.items() if name not in STORE_VARIABLES},
            **store_env,
            **UNLIMITED,
            **CACHE,
        }
        writer = stack.enter_context(serving(env, workdir, "writer"))
        if topology == "memory":
            yield Servers(writer, writer)
            return
        yield Servers(writer, stack.enter_context(serving(env, workdir, "reader")))


@pytest.fixture
async def api(servers: Servers) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
        yield Api(http, servers)


async def test_a_new_article_is_listed_at_once(api: Api) -> None:
    author, follower, other = [await api.register(role) for role in ("author", "fan", "other")]
    await api.write("POST", f"/profiles/{author.username}/follow", follower)
    earlier = await api.publish(author)
    tag = unique("tag")
    by_author, tagged = f"/articles?author={author.username}", f"/articles?tag={tag}"
    await api.warm(["/articles", by_author, tagged, "/tags"], [None, other, follower])
    await api.warm(["/articles/feed"], [follower])
    count = (await api.page("/articles"))["articlesCount"]

    article = await api.publish(author, tag)

    for viewer in (None, other, follower):
        everything = await api.page("/articles", viewer)
        assert everything["articlesCount"] == count + 1, api.explain(viewer)
        assert slugs(everything)[0] == article["slug"], api.explain(viewer)
        newest_first = [article["slug"], earlier["slug"]]
        assert slugs(await api.page(by_author, viewer)) == newest_first, api.explain(viewer)
        assert slugs(await api.page(tagged, viewer)) == [article["slug"]], api.explain(viewer)
    assert tag in await api.tags(), api.explain()
    feed = await api.page("/articles/feed", follower)
    assert slugs(feed) == [article["slug"], earlier["slug"]], api.explain(follower)


async def test_an_edited_article_reads_edited_everywhere(api: Api) -> None:
    author, other = await api.register("author"), await api.register("other")
    old_tag, new_tag = unique("old"), unique("new")
    slug = (await api.publish(author, old_tag))["slug"]
    by_author = f"/articles?author={author.username}"
    old_tagged, new_tagged = f"/articles?tag={old_tag}", f"/articles?tag={new_tag}"
    paths = [f"/articles/{slug}", by_author, old_tagged, new_tagged, "/tags"]
    await api.warm(paths, [None, other])
    title = unique("Edited")
    changes = {"title": title, "description": "Edited", "body": "Edited", "tagList": [new_tag]}

    await api.write("PUT", f"/articles/{slug}", author, {"article": changes})

    for viewer in (None, other):
        article = await api.article(slug, viewer)
        edited = (article["title"], article["description"], article["body"], article["tagList"])
        assert edited == (title, "Edited", "Edited", [new_tag]), api.explain(viewer)
        item = listed(await api.page(by_author, viewer), slug)
        edited_item = (item["title"], item["description"], item["tagList"])
        assert edited_item == (title, "Edited", [new_tag]), api.explain(viewer)
        assert slugs(await api.page(old_tagged, viewer)) == [], api.explain(viewer)
        assert slugs(await api.page(new_tagged, viewer)) == [slug], api.explain(viewer)
    tags = await api.tags()
    assert new_tag in tags, api.explain()
    assert old_tag not in tags, api.explain()


async def test_a_deleted_article_is_gone_everywhere(api: Api) -> None:
    author, other = await api.register("author"), await api.register("other")
    tag = unique("tag")
    slug = (await api.publish(author, tag))["slug"]
    await api.comment(other, slug, "First!")
    by_author = f"/articles?author={author.username}"
    single, comments = f"/articles/{slug}", f"/articles/{slug}/comments"
    await api.warm([single, comments, "/articles", by_author, "/tags"], [None, other])

    await api.write("DELETE", f"/articles/{slug}", author)

    for viewer in (None, other):
        for path in (single, comments):
            response = await api.get(path, viewer)
            assert response.status_code == 404, api.failed(response)
        assert slug not in slugs(await api.page("/articles", viewer)), api.explain(viewer)
        assert (await api.page(by_author, viewer))["articlesCount"] == 0, api.explain(viewer)
    assert tag not in await api.tags(), api.explain()


async def test_favorites_are_counted_and_flagged_at_once(api: Api) -> None:
    author, fan, other = [await api.register(role) for role in ("author", "fan", "other")]
    slug = (await api.publish(author))["slug"]
    by_author = f"/articles?author={author.username}"
    favorites = f"/articles?favorited={fan.username}"
    viewers = (None, fan, other)

    for method, count in (("POST", 1), ("DELETE", 0)):
        await api.warm([f"/articles/{slug}", by_author, favorites], viewers)
        await api.write(method, f"/articles/{slug}/favorite", fan)

        for viewer in viewers:
            expected = (viewer is fan and count == 1, count)
            article = await api.article(slug, viewer)
            item = listed(await api.page(by_author, viewer), slug)
            seen = [(each["favorited"], each["favoritesCount"]) for each in (article, item)]
            assert seen == [expected, expected], api.explain(viewer)
            favorited = slugs(await api.page(favorites, viewer))
            assert favorited == [slug] * count, api.explain(viewer)


async def test_comments_appear_and_disappear_at_once(api: Api) -> None:
    author, commenter, other = [await api.register(role) for role in ("author", "com", "other")]
    slug = (await api.publish(author))["slug"]
    viewers = (None, commenter, other)
    await api.warm([f"/articles/{slug}/comments"], viewers)

    comment = await api.comment(commenter, slug, "Well said")

    for viewer in viewers:
        assert await api.comments(slug, viewer) == [comment], api.explain(viewer)

    await api.warm([f"/articles/{slug}/comments"], viewers)
    await api.write("DELETE", f"/articles/{slug}/comments/{comment['id']}", commenter)

    for viewer in viewers:
        assert await api.comments(slug, viewer) == [], api.explain(viewer)


async def test_following_shows_at_once_to_the_follower_only(api: Api) -> None:
    author, follower, other = [await api.register(role) for role in ("author", "fan", "other")]
    slug = (await api.publish(author))["slug"]
    await api.comment(author, slug, "Author here")
    by_author = f"/articles?author={author.username}"
    paths = [f"/profiles/{author.username}", f"/articles/{slug}", f"/articles/{slug}/comments"]
    viewers = (None, follower, other)

    for method, following in (("POST", True), ("DELETE", False)):
        await api.warm([*paths, by_author], viewers)
        await api.warm(["/articles/feed"], [follower, other])
        await api.write(method, f"/profiles/{author.username}/follow", follower)

        for viewer in viewers:
            expected = following and viewer is follower
            seen = (
                (await api.profile(author.username, viewer))["following"],
                (await api.article(slug, viewer))["author"]["following"],
                listed(await api.page(by_author, viewer), slug)["author"]["following"],
                *(comment["author"]["following"] for comment in await api.comments(slug, viewer)),
            )
            assert seen == (expected,) * 4, api.explain(viewer)
        feed = slugs(await api.page("/articles/feed", follower))
        assert feed == ([slug] if following else []), api.explain(follower)
        assert slugs(await api.page("/articles/feed", other)) == [], api.explain(other)


async def test_a_changed_user_reads_changed_everywhere(api: Api) -> None:
    author, follower, other = [await api.register(role) for role in ("author", "fan", "other")]
    await api.write("POST", f"/profiles/{author.username}/follow", follower)
    slug = (await api.publish(author))["slug"]
    await api.comment(author, slug, "Author here")
    new_name = unique("renamed")
    old_profile, new_profile = f"/profiles/{author.username}", f"/profiles/{new_name}"
    old_list, new_list = f"/articles?author={author.username}", f"/articles?author={new_name}"
    paths = [old_profile, new_profile, old_list, new_list, "/articles"]
    viewers = (None, follower, other)
    await api.warm([*paths, f"/articles/{slug}", f"/articles/{slug}/comments"], viewers)
    await api.warm(["/articles/feed"], [follower])
    changes = {"username": new_name, "bio": "New bio", "image": "https://example.com/new.png"}

    await api.write("PUT", "/user", author, {"user": changes})

    for viewer in viewers:
        expected = Profile(
            username=new_name,
            bio="New bio",
            image="https://example.com/new.png",
            following=viewer is follower,
        )
        response = await api.get(old_profile, viewer)
        assert response.status_code == 404, api.failed(response)
        assert await api.profile(new_name, viewer) == expected, api.explain(viewer)
        assert (await api.article(slug, viewer))["author"] == expected, api.explain(viewer)
        authors = [comment["author"] for comment in await api.comments(slug, viewer)]
        assert authors == [expected], api.explain(viewer)
        for path in (new_list, "/articles"):
            item = listed(await api.page(path, viewer), slug)
            assert item["author"] == expected, api.explain(viewer)
        assert (await api.page(old_list, viewer))["articlesCount"] == 0, api.explain(viewer)
    feed = await api.page("/articles/feed", follower)
    assert listed(feed, slug)["author"]["username"] == new_name, api.explain(follower)


Write = Callable[[], Awaitable[object]]


async def changing(api: Api, resource: Resource) -> tuple[str, list[Viewer], Write]:
    """A URL of `resource`, who reads it, and a write that changes what they read."""
    author, follower = await api.register("author"), await api.register("fan")
    await api.write("POST", f"/profiles/{author.username}/follow", follower)
    slug = (await api.publish(author))["slug"]
    everyone: list[Viewer] = [None, follower]
    favorite = partial(api.write, "POST", f"/articles/{slug}/favorite", follower)
    publish = partial(api.publish, author, unique("tag"))
    match resource:
        case "article":
            return f"/articles/{slug}", everyone, favorite
        case "articles":
            return f"/articles?author={author.username}", everyone, favorite
        case "feed":
            return "/articles/feed", [follower], publish
        case "comments":
            return f"/articles/{slug}/comments", everyone, partial(api.comment, author, slug, "Hi")
        case "profile":
            bio = {"user": {"bio": unique("bio")}}
            return (
                f"/profiles/{author.username}",
                everyone,
                partial(api.write, "PUT", "/user", author, bio),
            )
        case "tags":
            return "/tags", everyone, publish
        case _:
            assert_never(resource)


@pytest.mark.parametrize("resource", get_args(Resource))
async def test_an_etag_from_before_a_write_no_longer_matches(api: Api, resource: Resource) -> None:
    path, viewers, change = await changing(api, resource)
    await api.warm([path], viewers)
    before = {viewer: await api.read(path, viewer) for viewer in viewers}
    for viewer, response in before.items():
        unchanged = await api.get(path, viewer, headers={"If-None-Match": etag(response)})
        assert (unchanged.status_code, unchanged.content) == (304, b""), api.failed(unchanged)

    await change()

    for viewer, old in before.items():
        fresh = await api.get(path, viewer, headers={"If-None-Match": etag(old)})
        assert fresh.status_code == 200, api.failed(fresh)
        assert fresh.json() != old.json(), api.explain(viewer)
        assert fresh.json() == (await api.read(path, viewer)).json(), api.explain(viewer)
        current = etag(fresh)
        assert current != etag(old), api.explain(viewer)
        again = await api.get(path, viewer, headers={"If-None-Match": current})
        assert (again.status_code, again.content, etag(again)) == (304, b"", current), api.failed(
            again
        )


async def test_an_etag_is_honoured_by_every_process(api: Api) -> None:
    author, fan = await api.register("author"), await api.register("fan")
    slug = (await api.publish(author))["slug"]
    await api.write("POST", f"/articles/{slug}/favorite", fan)
    paths = [
        f"/articles/{slug}",
        f"/articles?author={author.username}",
        f"/profiles/{author.username}",
    ]

    for path in [*paths, f"/articles/{slug}/comments", "/tags"]:
        for viewer in (None, fan):
            on_writer = await api.get(path, viewer, on=api.servers.writer)
            assert on_writer.status_code == 200, api.failed(on_writer)
            revalidated = await api.get(path, viewer, headers={"If-None-Match": etag(on_writer)})
            assert (revalidated.status_code, revalidated.content) == (304, b""), api.failed(
                revalidated
            )


async def test_cache_headers_say_who_may_keep_a_response(api: Api) -> None:
    author, reader = await api.register("author"), await api.register("reader")
    await api.write("POST", f"/profiles/{author.username}/follow", reader)
    slug = (await api.publish(author))["slug"]
    created = await api.write(
        "POST", "/user/api-keys", reader, {"apiKey": {"name": "cache", "scopes": ["read"]}}
    )
    api_key = {"X-API-Key": created.json()["apiKey"]["key"]}
    paths = [
        f"/articles/{slug}",
        "/articles",
        f"/articles?author={author.username}",
        f"/articles/{slug}/comments",
        f"/profiles/{author.username}",
        "/tags",
    ]

    for path in paths:
        anonymous = await api.read(path)
        assert directives(anonymous, "cache-control") == {"no-cache"}, api.failed(anonymous)
        assert "authorization" in directives(anonymous, "vary"), api.failed(anonymous)
    for path in [*paths, "/articles/feed"]:
        for credential in (reader.headers, api_key):
            signed_in = await api.get(path, headers=credential)
            assert signed_in.status_code == 200, api.failed(signed_in)
            # Never stored, as every credentialed response; the ETag still revalidates.
            assert directives(signed_in, "cache-control") == {"no-store"}, api.failed(signed_in)
            assert "etag" in signed_in.headers, api.failed(signed_in)
            assert "authorization" in directives(signed_in, "vary"), api.failed(signed_in)


async def test_each_viewer_reads_its_own_flags(api: Api) -> None:
    author, fan, other = [await api.register(role) for role in ("author", "fan", "other")]
    slug = (await api.publish(author))["slug"]
    await api.comment(author, slug, "Author here")
    await api.write("POST", f"/articles/{slug}/favorite", fan)
    await api.write("POST", f"/profiles/{author.username}/follow", fan)
    by_author = f"/articles?author={author.username}"

    for viewer in (fan, other, None, fan, other, None, fan):
        mine = viewer is fan
        article = await api.article(slug, viewer)
        item = listed(await api.page(by_author, viewer), slug)
        seen = (
            (article["favorited"], article["favoritesCount"], article["author"]["following"]),
            (item["favorited"], item["favoritesCount"], item["author"]["following"]),
            (await api.profile(author.username, viewer))["following"],
            [comment["author"]["following"] for comment in await api.comments(slug, viewer)],
        )
        assert seen == ((mine, 1, mine), (mine, 1, mine), mine, [mine]), api.explain(viewer)
