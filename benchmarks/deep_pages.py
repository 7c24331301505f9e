"""A deep page against the first: EXPLAIN ANALYZE of the exact page statement Conduit runs for
`GET /api/articles` (anonymous, and filtered by author) and for a user's notifications, at offset 0
and at a deep offset, on a seeded PostgreSQL database (`conduit seed --scale medium`).

    DATABASE_URL=postgresql://... .tools/bin/uv run python -m benchmarks.deep_pages

Prints the median execution time of five runs of each (after one to warm the cache).
See docs/benchmarks.md ("Deep pages").
"""

import asyncio
import json
import statistics
import sys

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

from benchmarks.setup import database
from conduit.articles import reads as articles_reads
from conduit.database import Read
from conduit.notifications import reads as notifications_reads

_RUNS = 5
_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
_NOTIFICATIONS = """
INSERT INTO notifications (recipient_id, kind, actor_id, article_id, job_id, created_at)
SELECT 1, 'favorited', 2, articles.id, gen_random_uuid(), articles.created_at
FROM articles ORDER BY articles.id LIMIT 10000
"""
_NOTIFICATIONS_PAGE = notifications_reads._PAGE


async def _execution_ms(
    connection: asyncpg.Connection, read: Read[str], params: dict[str, object]
) -> float:
    compiled = read.compiled(_DIALECT)
    arguments = compiled.arguments(params)
    times = []
    for _ in range(_RUNS + 1):
        plan = await connection.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + compiled.sql, *arguments
        )
        times.append(float(json.loads(plan)[0]["Execution Time"]))
    return statistics.median(times[1:])


async def main() -> None:
    connection = await asyncpg.connect(database.driver_url())
    try:
        author = await connection.fetchval(
            "SELECT username FROM users JOIN articles ON articles.author_id = users.id"
            " GROUP BY username ORDER BY count(*) DESC LIMIT 1"
        )
        tag = await connection.fetchval(
            "SELECT name FROM tags JOIN article_tags ON article_tags.tag_id = tags.id"
            " GROUP BY name ORDER BY count(*) DESC LIMIT 1"
        )
        by_tag = articles_reads._page_read(
            signed_in=False, feed=False, tag=True, author=False, favorited_by=False
        )
        feed = articles_reads._page_read(
            signed_in=True, feed=True, tag=False, author=False, favorited_by=False
        )
        anonymous = articles_reads._page_read(
            signed_in=False, feed=False, tag=False, author=False, favorited_by=False
        )
        by_author = articles_reads._page_read(
            signed_in=False, feed=False, tag=False, author=True, favorited_by=False
        )
        cases = [
            ("list, limit 20 offset 0", anonymous, {"limit": 20, "offset": 0}),
            ("list, limit 100 offset 0", anonymous, {"limit": 100, "offset": 0}),
            ("list, limit 100 offset 9900", anonymous, {"limit": 100, "offset": 9900}),
            (
                "list, limit 20 offset 10000 (past the end)",
                anonymous,
                {"limit": 20, "offset": 10000},
            ),
            (f"author={author}, offset 0", by_author, {"author": author, "limit": 20, "offset": 0}),
            (
                f"author={author}, offset 10000",
                by_author,
                {"author": author, "limit": 20, "offset": 10000},
            ),
            (f"tag={tag}, limit 100 offset 0", by_tag, {"tag": tag, "limit": 100, "offset": 0}),
            (
                f"tag={tag}, limit 100 offset 10000",
                by_tag,
                {"tag": tag, "limit": 100, "offset": 10000},
            ),
            (
                "feed of user 1, limit 100 offset 0",
                feed,
                {"viewer_id": 1, "limit": 100, "offset": 0},
            ),
            (
                "feed of user 1, limit 100 offset 9900",
                feed,
                {"viewer_id": 1, "limit": 100, "offset": 9900},
            ),
        ]
        for label, read, params in cases:
            milliseconds = await _execution_ms(connection, read, params)
            sys.stdout.write(f"{label:60} {milliseconds:8.2f} ms\n")
        # The seed has no notifications: 10,000 for one user, in a transaction rolled back.
        transaction = connection.transaction()
        await transaction.start()
        try:
            await connection.execute(_NOTIFICATIONS)
            for offset in (0, 9900):
                params = {"viewer_id": 1, "limit": 100, "offset": offset}
                milliseconds = await _execution_ms(connection, _NOTIFICATIONS_PAGE, params)
                label = f"notifications (10,000), limit 100 offset {offset}"
                sys.stdout.write(f"{label:60} {milliseconds:8.2f} ms\n")
        finally:
            await transaction.rollback()
    finally:
        await connection.close()


if __name__ == "__main__":
    asyncio.run(main())
