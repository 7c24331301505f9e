"""What cached documents depend on, by name, and how writes say they changed it.

Every entry records the version of each name it depends on, read before its document was built
(`conduit.cache.core`); a write gives each name it changed a new version after it commits, and
every entry recorded under an older one is never served again, in any process.

| name | changed by | entries that depend on it |
|---|---|---|
| `articles` | article create/update/delete, favorite/unfavorite | article lists, feeds |
| `article:<slug>` | that article's update/delete/favorite/unfavorite | the article |
| `comments:<slug>` | comment create/delete on it, its deletion | its comments |
| `profiles` | a user's username, bio or image | every entry: all embed profiles |
| `tags` | article create, delete, change of tags | the tag list |
| `follows:<user id>` | that user's follow/unfollow | that user's feed |
| `epoch` | an invalidation that could not be delivered | every entry |
"""

from sqlalchemy.ext.asyncio import AsyncSession

from conduit.database import NotGiven, after_commit, state_of

ARTICLES = "articles"
PROFILES = "profiles"
TAGS = "tags"
EPOCH = "epoch"


def article(slug: str) -> str:
    return f"article:{slug}"


def comments(slug: str) -> str:
    return f"comments:{slug}"


def follows(user_id: int) -> str:
    return f"follows:{user_id}"


def changed(session: AsyncSession, *names: str) -> None:
    """Record that the session's unit of work changes what `names` name: they get new versions
    once it commits, before its response is sent, and keep theirs if it rolls back."""
    state = state_of(session)
    pending = state.changed
    if pending is None:
        cache = state.cache
        if cache is None:
            raise NotGiven("cache")
        pending = state.changed = set()

        async def invalidate() -> None:
            await cache.invalidate(pending)

        after_commit(session, invalidate)
    pending.update(names)
